//! A hand-written table of malformed OAuth requests (issue 14, item 4): bad encodings,
//! repeated parameters, huge values, unknown grant types and wrong content types at every
//! OIDC endpoint, each answered with the OAuth error RFC 6749, 6750, 7009 and 7662 name.

use reqwest::Method;

use crate::oidc::{REDIRECT, app, browser};
use crate::support::{MANAGEMENT_API, Reply, TestServer};

/// How a row authenticates.
#[derive(Clone, Copy)]
enum Auth {
    None,
    /// HTTP Basic as the machine-to-machine client (client credentials).
    Client,
    /// HTTP Basic as the traditional web client (authorization codes).
    Web,
    /// HTTP Basic with the web client's id and a wrong secret.
    WrongSecret,
    /// A raw `Authorization` header value.
    Raw(&'static str),
}

/// What a row expects back.
#[derive(Clone, Copy)]
enum Expect {
    /// An OAuth error body `{"error": ...}` with this status.
    OAuth(u16, &'static str),
    /// A 401 from a protected resource: the error in `WWW-Authenticate` (RFC 6750 §3).
    Bearer(u16, &'static str),
    /// A page (the authorization endpoint cannot trust the redirect) naming the error code.
    Page(u16, &'static str),
    /// A redirect back to the client carrying `error`.
    Redirect(&'static str),
    /// A success with this status whose body has `active: false` (introspection of garbage) or
    /// is empty (revocation of garbage).
    Ok(u16),
    /// A token granting no scope: unknown scope values are dropped, as Logto drops them.
    NoScope,
}

struct Row {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    /// The raw query string or body; `{client}` stands for the confidential client's id and
    /// `{invalid-utf8}` for bytes that are not UTF-8.
    payload: String,
    auth: Auth,
    expect: Expect,
}

fn row(
    name: &'static str,
    method: &Method,
    path: &'static str,
    content_type: Option<&'static str>,
    payload: impl Into<String>,
    auth: Auth,
    expect: Expect,
) -> Row {
    Row {
        name,
        method: method.clone(),
        path,
        content_type,
        payload: payload.into(),
        auth,
        expect,
    }
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

// One row a line reads as the table it is.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Auth::{Client, None as Anonymous, Raw, Web, WrongSecret};
    use Expect::{Bearer, NoScope, OAuth, Ok, Page, Redirect};
    let (get, post) = (Method::GET, Method::POST);
    let json = Some("application/json");
    let huge = "a".repeat(200 * 1024);
    let big = &huge[..20 * 1024];
    let redirect = form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>();
    let auth = format!("client_id={{client}}&redirect_uri={redirect}&response_type=code&scope=openid&state=s1");
    let token = "/oidc/token";
    let introspection = "/oidc/token/introspection";
    let revocation = "/oidc/token/revocation";
    let credentials = &format!(
        "grant_type=client_credentials&resource={}",
        form_urlencoded::byte_serialize(MANAGEMENT_API.as_bytes()).collect::<String>()
    );
    vec![
        // /oidc/token: grant types, repeated parameters, encodings, sizes, content types, client authentication.
        row("unknown grant type", &post, token, FORM, "grant_type=urn:example:teleport", Client, OAuth(400, "unsupported_grant_type")),
        row("no grant type", &post, token, FORM, "scope=all", Client, OAuth(400, "invalid_request")),
        row("grant type twice", &post, token, FORM, format!("{credentials}&{credentials}"), Client, OAuth(400, "invalid_request")),
        row("scope twice", &post, token, FORM, format!("{credentials}&scope=all&scope=all"), Client, OAuth(400, "invalid_request")),
        row("broken percent-encoding", &post, token, FORM, "grant_type=client%ZZcredentials", Client, OAuth(400, "unsupported_grant_type")),
        row("percent-encoded invalid UTF-8", &post, token, FORM, "grant_type=%FF%FE", Client, OAuth(400, "unsupported_grant_type")),
        row("raw invalid UTF-8 body", &post, token, FORM, format!("{credentials}&scope={{invalid-utf8}}"), Client, OAuth(400, "invalid_request")),
        row("NUL in a parameter", &post, token, FORM, format!("{credentials}&scope=a%00"), Client, OAuth(400, "invalid_request")),
        row("a 200 KiB scope of unknown values", &post, token, FORM, format!("{credentials}&scope={huge}"), Client, NoScope),
        row("a 200 KiB code", &post, token, FORM, format!("grant_type=authorization_code&redirect_uri={redirect}&code={huge}"), Web, OAuth(400, "invalid_grant")),
        row("text/plain body", &post, token, Some("text/plain"), credentials, Client, OAuth(400, "invalid_request")),
        row("multipart body", &post, token, Some("multipart/form-data; boundary=x"), "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--", Client, OAuth(400, "invalid_request")),
        row("JSON that is not an object", &post, token, json, "[\"grant_type\", \"client_credentials\"]", Client, OAuth(400, "invalid_request")),
        row("JSON that does not parse", &post, token, json, "{\"grant_type\": ", Client, OAuth(400, "invalid_request")),
        row("Basic credentials that are not base64", &post, token, FORM, credentials, Raw("Basic !!!not-base64!!!"), OAuth(400, "invalid_request")),
        row("Basic credentials without a colon", &post, token, FORM, credentials, Raw("Basic bm8tY29sb24="), OAuth(400, "invalid_request")),
        row("an unknown client", &post, token, FORM, credentials, Raw("Basic d2hvOndoYXQ="), OAuth(400, "invalid_client")),
        row("a known client with a wrong secret", &post, token, FORM, credentials, WrongSecret, OAuth(401, "invalid_client")),
        row("two client authentication methods", &post, token, FORM, format!("{credentials}&client_id={{client}}&client_secret=also"), Client, OAuth(400, "invalid_request")),
        row("no client authentication", &post, token, FORM, credentials, Anonymous, OAuth(400, "invalid_request")),
        // /oidc/token/introspection (RFC 7662): garbage tokens are simply inactive.
        row("introspection without a token", &post, introspection, FORM, "", Client, OAuth(400, "invalid_request")),
        row("introspection with the token twice", &post, introspection, FORM, "token=a&token=b", Client, OAuth(400, "invalid_request")),
        row("introspection with a text/plain body", &post, introspection, Some("text/plain"), "token=a", Client, OAuth(400, "invalid_request")),
        row("introspection without client authentication", &post, introspection, FORM, "token=a", Anonymous, OAuth(400, "invalid_request")),
        row("introspection of a 200 KiB token", &post, introspection, FORM, format!("token={huge}"), Client, Ok(200)),
        row("introspection of an unsigned JWT", &post, introspection, FORM, "token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Client, Ok(200)),
        row("introspection of broken encoding", &post, introspection, FORM, "token=%ZZ%", Client, Ok(200)),
        // /oidc/token/revocation (RFC 7009): revoking garbage succeeds.
        row("revocation without a token", &post, revocation, FORM, "token_type_hint=refresh_token", Client, OAuth(400, "invalid_request")),
        row("revocation with the token twice", &post, revocation, FORM, "token=a&token=b", Client, OAuth(400, "invalid_request")),
        row("revocation with a JSON array", &post, revocation, json, "[]", Client, OAuth(400, "invalid_request")),
        row("revocation without client authentication", &post, revocation, FORM, "token=a", Anonymous, OAuth(400, "invalid_request")),
        row("revocation of a 200 KiB token", &post, revocation, FORM, format!("token={huge}"), Client, Ok(200)),
        // /oidc/me (RFC 6750).
        row("userinfo without a token", &get, "/oidc/me", None, "", Anonymous, OAuth(400, "invalid_request")),
        row("userinfo with an empty bearer", &get, "/oidc/me", None, "", Raw("Bearer "), OAuth(400, "invalid_request")),
        row("userinfo with another scheme", &get, "/oidc/me", None, "", Raw("Basic d2hvOndoYXQ="), OAuth(400, "invalid_request")),
        row("userinfo with a token in header and body", &post, "/oidc/me", FORM, "access_token=x", Raw("Bearer x"), OAuth(400, "invalid_request")),
        row("userinfo with a malformed JWT", &get, "/oidc/me", None, "", Raw("Bearer a.b.c"), Bearer(401, "invalid_token")),
        row("userinfo with an unsigned JWT", &get, "/oidc/me", None, "", Raw("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), Bearer(401, "invalid_token")),
        row("userinfo with a 200 KiB token", &post, "/oidc/me", FORM, format!("access_token={huge}"), Anonymous, Bearer(401, "invalid_token")),
        row("userinfo by POST with a text/plain body", &post, "/oidc/me", Some("text/plain"), "access_token=x", Anonymous, OAuth(400, "invalid_request")),
        // /oidc/auth: shown as a page until client and redirect URI are known good, then redirected.
        row("authorization with client_id twice", &get, "/oidc/auth", None, format!("client_id={{client}}&{auth}"), Anonymous, Page(400, "oidc.invalid_request")),
        row("authorization with redirect_uri twice", &get, "/oidc/auth", None, format!("{auth}&redirect_uri={redirect}"), Anonymous, Page(400, "oidc.invalid_request")),
        row("authorization with broken encoding in client_id", &get, "/oidc/auth", None, auth.replace("{client}", "%ZZ"), Anonymous, Page(400, "oidc.invalid_client")),
        row("authorization with a NUL in client_id", &get, "/oidc/auth", None, auth.replace("{client}", "%00"), Anonymous, Page(400, "oidc.invalid_request")),
        row("authorization with a 20 KiB client_id", &get, "/oidc/auth", None, auth.replace("{client}", big), Anonymous, Page(400, "oidc.invalid_client")),
        row("authorization with a 20 KiB redirect_uri", &get, "/oidc/auth", None, auth.replace(&redirect, big), Anonymous, Page(400, "oidc.invalid_redirect_uri")),
        row("authorization with scope twice", &get, "/oidc/auth", None, format!("{auth}&scope=openid"), Anonymous, Redirect("invalid_request")),
        row("authorization with an unknown response type", &get, "/oidc/auth", None, auth.replace("response_type=code", "response_type=teleport"), Anonymous, Redirect("unsupported_response_type")),
        row("authorization with a 20 KiB response type", &get, "/oidc/auth", None, auth.replace("response_type=code", &format!("response_type={big}")), Anonymous, Redirect("unsupported_response_type")),
        row("authorization by POST with a text/plain body", &post, "/oidc/auth", Some("text/plain"), auth.clone(), Anonymous, Page(400, "oidc.invalid_request")),
        row("authorization by POST with a JSON array", &post, "/oidc/auth", json, "[]", Anonymous, Page(400, "oidc.invalid_request")),
    ]
}

#[tokio::test]
async fn malformed_oauth_requests_get_the_right_oauth_error() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "Traditional").await;
    let secret = secret.unwrap();
    let (robot, robot_secret) = app(&server, "MachineToMachine").await;
    let robot_secret = robot_secret.unwrap();
    let http = browser();
    let mut wrong = Vec::new();
    for row in table() {
        let payload = row.payload.replace("{client}", &client);
        let body = match payload.split_once("{invalid-utf8}") {
            Some((before, after)) => [before.as_bytes(), b"\xC3\x28", after.as_bytes()].concat(),
            None => payload.clone().into_bytes(),
        };
        let mut request = if row.method == Method::GET {
            http.get(format!("{}?{payload}", server.url(row.path)))
        } else {
            http.request(row.method.clone(), server.url(row.path))
                .body(body)
        };
        if let Some(content_type) = row.content_type {
            request = request.header("content-type", content_type);
        }
        request = match row.auth {
            Auth::None => request,
            Auth::Client => request.basic_auth(&robot, Some(&robot_secret)),
            Auth::Web => request.basic_auth(&client, Some(&secret)),
            Auth::WrongSecret => request.basic_auth(&client, Some("not-the-secret")),
            Auth::Raw(value) => request.header("authorization", value),
        };
        let reply = Reply::from(request.send().await.unwrap()).await;
        if let Err(problem) = check(&reply, row.expect) {
            wrong.push(format!(
                "{}: {problem}; got {} {} {:?}",
                row.name,
                reply.status,
                reply.body.to_string().chars().take(300).collect::<String>(),
                reply.header("www-authenticate")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows failed:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn check(reply: &Reply, expect: Expect) -> Result<(), String> {
    let status = reply.status.as_u16();
    let text = reply.body.as_str().unwrap_or_default();
    match expect {
        Expect::OAuth(want, error) => {
            if status != want || reply.body["error"] != error {
                return Err(format!("want {want} {error}"));
            }
            if !reply.body["error_description"].is_string() {
                return Err("no error_description".into());
            }
        }
        Expect::Bearer(want, error) => {
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            if status != want || !challenge.contains(&format!("error=\"{error}\"")) {
                return Err(format!(
                    "want {want} with WWW-Authenticate error=\"{error}\""
                ));
            }
        }
        Expect::Page(want, code) => {
            if status != want || !text.contains(code) || reply.header("location").is_some() {
                return Err(format!("want a {want} page naming {code}, no redirect"));
            }
        }
        Expect::Redirect(error) => {
            let target = reply.header("location").unwrap_or_default();
            let url =
                url::Url::parse(target).map_err(|_| format!("want a redirect with {error}"))?;
            let found = url
                .query_pairs()
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.into_owned());
            if status != 303 || !target.starts_with(REDIRECT) || found.as_deref() != Some(error) {
                return Err(format!("want a 303 to the client with error={error}"));
            }
        }
        Expect::NoScope => {
            let scope = reply.body["scope"].as_str().unwrap_or_default();
            if status != 200 || !reply.body["access_token"].is_string() || !scope.is_empty() {
                return Err("want a token with no scope".into());
            }
        }
        Expect::Ok(want) => {
            let inactive = reply.body["active"] == false;
            let empty = reply.body.is_null() || reply.body.as_str() == Some("");
            if status != want || !(inactive || empty) {
                return Err(format!("want {want} with active=false or nothing"));
            }
        }
    }
    Ok(())
}
