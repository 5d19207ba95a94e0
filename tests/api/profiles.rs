//! User profiles the IBM App ID way: custom attributes (`customData`) that users may write
//! only where the custom data policy allows (the Account API, `/api/my-account`), App ID's
//! management routes (`/management/v4/{tenant}/...`) driven with App ID's own documented curl
//! calls, and users moved between two running instances (App ID's export/import, and replay's
//! `export-users` / `import-users` with password digests), each change and move in the log with
//! its actor.

use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::mfa::code_now;
use crate::oidc::{REDIRECT, app};
use crate::social_oidc::{self, Downstream, Upstream, social_sign_in};
use crate::support::{BOOTSTRAP_ID, Reply, TestServer};

const PASSWORD: &str = "Correct-Horse-42";
const USER_AGENT: &str = "profiles-tests/1.0";

/// A second factor to sign in with.
enum SecondFactor<'a> {
    /// A code of this TOTP secret.
    Totp(&'a str),
    BackupCode(&'a str),
}

/// Signs `username` in to a new confidential application through the Experience API (with
/// `second_factor` when given) and redeems the code: the opaque access token an application
/// would hold for the user.
async fn access_token(
    server: &TestServer,
    username: &str,
    password: &str,
    second_factor: Option<SecondFactor<'_>>,
) -> String {
    let (client_id, secret) = app(server, "Traditional").await;
    let browser = idledger::outbound::client_builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .user_agent(USER_AGENT)
        .build()
        .unwrap();
    let at = |path: &str| format!("{}{path}", server.endpoint);
    let redirect = form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>();
    let started = browser
        .get(at(&format!(
            "/oidc/auth?client_id={client_id}&redirect_uri={redirect}&response_type=code\
             &scope=openid%20profile%20custom_data&state=st4te"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 303);
    let send = |method: reqwest::Method, path: &str, body: Value| {
        let request = browser.request(method, at(path)).json(&body);
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    send(
        reqwest::Method::PUT,
        "/api/experience",
        json!({"interactionEvent": "SignIn"}),
    )
    .await
    .expect(204);
    let verified = send(
        reqwest::Method::POST,
        "/api/experience/verification/password",
        json!({"identifier": {"type": "username", "value": username}, "password": password}),
    )
    .await;
    let verification_id = verified.expect(200)["verificationId"].clone();
    send(
        reqwest::Method::POST,
        "/api/experience/identification",
        json!({"verificationId": verification_id}),
    )
    .await
    .expect(204);
    let verification = match second_factor {
        Some(SecondFactor::Totp(secret)) => Some(("totp", code_now(secret))),
        Some(SecondFactor::BackupCode(code)) => Some(("backup-code", code.to_owned())),
        None => None,
    };
    if let Some((kind, code)) = verification {
        send(
            reqwest::Method::POST,
            &format!("/api/experience/verification/{kind}/verify"),
            json!({ "code": code }),
        )
        .await
        .expect(200);
    }
    let submitted = send(reqwest::Method::POST, "/api/experience/submit", json!({})).await;
    let resume = submitted.expect(200)["redirectTo"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = browser.get(&resume).send().await.unwrap();
    assert_eq!(answered.status().as_u16(), 303);
    let target = url::Url::parse(answered.headers()["location"].to_str().unwrap()).unwrap();
    let code = target
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let tokens = server
        .token_request(
            Some((&client_id, secret.as_deref().unwrap())),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    tokens.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A call to the Account API with an end user's token.
async fn account(
    server: &TestServer,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = server
        .http
        .request(method, server.url(path))
        .header("user-agent", USER_AGENT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::from(request.send().await.unwrap()).await
}

async fn write_own(server: &TestServer, token: &str, custom_data: Value) -> Reply {
    account(
        server,
        Some(token),
        reqwest::Method::PATCH,
        "/api/my-account/custom-data",
        Some(json!({ "customData": custom_data })),
    )
    .await
}

async fn custom_data(server: &TestServer, id: &str) -> Value {
    server
        .get(&format!("/api/users/{id}/custom-data"))
        .await
        .expect(200)
        .clone()
}

#[tokio::test]
async fn users_write_only_the_custom_data_keys_the_policy_declares() {
    let server = TestServer::start().await;
    let user = server
        .post(
            "/api/users",
            json!({"username": "mallory", "password": PASSWORD,
                   "customData": {"role": "user", "points": 10}}),
        )
        .await;
    let id = user.expect(200)["id"].as_str().unwrap().to_owned();
    let token = access_token(&server, "mallory", PASSWORD, None).await;

    // The Account API knows its user by the token alone.
    let me = account(
        &server,
        Some(&token),
        reqwest::Method::GET,
        "/api/my-account",
        None,
    )
    .await;
    assert_eq!(me.expect(200)["id"], id.as_str());
    assert_eq!(me.body["customData"], json!({"role": "user", "points": 10}));
    account(&server, None, reqwest::Method::GET, "/api/my-account", None)
        .await
        .expect_error(401, "auth.authorization_header_missing");
    account(
        &server,
        Some("not-a-token"),
        reqwest::Method::GET,
        "/api/my-account",
        None,
    )
    .await
    .expect_error(401, "auth.unauthorized");

    // The classic attack: with no policy, every key is read-only, `role` included.
    let attack = write_own(&server, &token, json!({"role": "admin"})).await;
    attack.expect_error(403, "user.custom_data_key_not_writable");
    assert_eq!(attack.body["data"], json!({"keys": ["role"]}));
    assert!(attack.body["message"].as_str().unwrap().contains("role"));
    assert_eq!(
        custom_data(&server, &id).await,
        json!({"role": "user", "points": 10})
    );

    // The attempt is a fact: actor the user, from their address, in their request.
    let recorded = server.recorded_events().await;
    let refused = recorded
        .iter()
        .find(|e| e.event_type == "user.custom_data_change_refused")
        .unwrap();
    assert_eq!(refused.stream_id, id);
    assert_eq!(refused.metadata.actor, domain::Actor::User(id.clone()));
    assert_eq!(refused.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(refused.metadata.user_agent.as_deref(), Some(USER_AGENT));
    assert!(refused.metadata.request_id.is_some());
    assert_eq!(refused.payload["keys"], json!(["role"]));
    assert_eq!(refused.payload["attempted"], json!({"role": "admin"}));
    // ...whose attempted values are the person's data, sealed at rest.
    let stored = server.events().await;
    let sealed = stored
        .iter()
        .find(|e| e.event_type == "user.custom_data_change_refused")
        .unwrap();
    assert!(
        sealed.payload.get("attempted").is_none(),
        "{}",
        sealed.payload
    );

    // ...and /api/logs shows it.
    let logs = server
        .get(&format!(
            "/api/logs?userId={id}&logKey=Account.CustomData.Update"
        ))
        .await;
    let entry = &logs.expect(200)[0];
    assert_eq!(entry["payload"]["result"], "Error");
    assert_eq!(entry["payload"]["keys"], json!(["role"]));
    assert_eq!(entry["payload"]["userId"], id.as_str());
    assert_eq!(entry["payload"]["ip"], "127.0.0.1");
    assert_eq!(
        entry["payload"]["error"]["code"],
        "user.custom_data_key_not_writable"
    );

    // An administrator declares `nickname` user-writable, with a schema.
    let schema = json!({"type": "string", "maxLength": 20});
    server
        .put(
            "/api/configs/custom-data-policy",
            json!({"userWritable": {"nickname": {"schema": schema}, "theme": {}}}),
        )
        .await
        .expect(200);
    let policy = server.get("/api/configs/custom-data-policy").await;
    assert_eq!(
        policy.expect(200),
        &json!({"userWritable": {"nickname": {"schema": schema}, "theme": {}}})
    );
    for bad in [
        json!({"userWritable": {"nickname": {"schema": {"type": "no-such-type"}}}}),
        json!({"userWritable": {"nickname": {"schmea": {"type": "string"}}}}),
        json!({"userWritable": {"": {}}}),
    ] {
        server
            .put("/api/configs/custom-data-policy", bad)
            .await
            .expect_error(400, "guard.invalid_input");
    }
    let changed = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "custom_data_policy.replaced")
        .collect::<Vec<_>>();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor_id.as_deref(), Some(BOOTSTRAP_ID));

    let allowed = write_own(&server, &token, json!({"nickname": "Mal", "theme": [1, 2]})).await;
    assert_eq!(
        allowed.expect(200),
        &json!({"role": "user", "points": 10, "nickname": "Mal", "theme": [1, 2]})
    );
    let invalid = write_own(&server, &token, json!({"nickname": 42})).await;
    invalid.expect_error(400, "guard.invalid_input");
    assert_eq!(invalid.body["data"]["key"], "nickname");
    assert!(
        invalid.body["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("string"),
        "{}",
        invalid.body
    );
    let too_long = write_own(&server, &token, json!({"nickname": "x".repeat(21)})).await;
    too_long.expect_error(400, "guard.invalid_input");
    // A read-only key refuses the whole change, allowed keys and all.
    write_own(
        &server,
        &token,
        json!({"nickname": "Boss", "role": "admin"}),
    )
    .await
    .expect_error(403, "user.custom_data_key_not_writable");
    assert_eq!(
        custom_data(&server, &id).await,
        json!({"role": "user", "points": 10, "nickname": "Mal", "theme": [1, 2]})
    );
    let entries = server
        .get(&format!(
            "/api/logs?userId={id}&logKey=Account.CustomData.Update"
        ))
        .await;
    let results: Vec<Value> = entries
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["result"].clone())
        .collect();
    // Newest first.
    assert_eq!(results, [json!("Error"), json!("Success"), json!("Error")]);

    // Who changed the role attribute, when, from where: the administrator's change through
    // App ID's route, in the user's history with before and after.
    server
        .put(
            &format!("/management/v4/default/users/{id}/profile"),
            json!({"attributes": {"role": "admin"}}),
        )
        .await
        .expect(200);
    let history = server.get(&format!("/api/users/{id}/history")).await;
    let change = &history.expect(200)[0];
    assert_eq!(change["type"], "user.updated");
    assert_eq!(change["actor"]["id"], BOOTSTRAP_ID);
    assert_eq!(change["ip"], "127.0.0.1");
    assert_eq!(change["before"]["customData"]["role"], "user");
    assert_eq!(change["after"]["customData"], json!({"role": "admin"}));
    server.assert_replay_check();
}

/// Runs App ID's documented curl call (`args` as the documentation gives them, host and token
/// substituted) with the real `curl`; returns the status and the JSON body.
async fn curl(args: &[&str]) -> (u16, Value) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    (status.parse().unwrap(), body)
}

const DAVE: &str = "dave.test@domain.com";
const FACEBOOK_INFO: &str = r#"{ "id": "11122233344455566", "name": "David Test-user", "picture": { "data": { "height": 50, "is_silhouette": false, "url": "https://platform-lookaside.fbsbx.com/platform/profilepic/?asid=11122233344455566&height=50&width=50&ext=1569429199&hash=AaAaAAAAAaAAAaaA", "width": 50 } }, "first_name": "David", "last_name": "Test-user", "email": "dave.test@domain.com", "idpType": "facebook" }"#;

#[tokio::test]
async fn app_ids_documented_calls_work_against_idledger() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let bearer = format!("authorization: Bearer {token}");
    let host = &server.base;
    let tenant = "default";
    let role = server
        .post(
            "/api/roles",
            json!({"name": "admin", "description": "admins"}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    let picture = "https://platform-lookaside.fbsbx.com/platform/profilepic/?asid=11122233344455566&height=50&width=50&ext=1569429199&hash=AaAaAAAAAaAAAaaA";
    let dave = server
        .post(
            "/api/users",
            json!({"primaryEmail": DAVE, "name": "David Test-user", "avatar": picture,
                   "customData": {"role": "admin"}}),
        )
        .await;
    let dave_id = dave.expect(200)["id"].as_str().unwrap().to_owned();
    let facebook_info: Value = serde_json::from_str(FACEBOOK_INFO).unwrap();
    server
        .put(
            &format!("/api/users/{dave_id}/identities/facebook"),
            json!({"userId": "11122233344455566", "details": facebook_info}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("/api/users/{dave_id}/roles"),
            json!({"roleIds": [role_id]}),
        )
        .await
        .expect(201);

    // Finding the user id by email, both ways the documentation spells it.
    let (status, found) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/Users?query={DAVE}"),
        "-H",
        "accept: application/json",
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["users"][0]["id"], dave_id.as_str());
    let (status, scim) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/cloud_directory/Users?query=DAVE.test@domain.com"),
        "-H",
        "accept: application/json",
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!(status, 200, "{scim}");
    assert_eq!(scim["Resources"][0]["id"], dave_id.as_str());
    assert_eq!(scim["Resources"][0]["emails"][0]["value"], DAVE);
    let (status, none) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/users?query=nobody@domain.com"),
        "-H",
        "accept: application/json",
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!((status, &none["users"]), (200, &json!([])));

    // The full profile, exactly the documented example but for the id.
    let (status, profile) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/users/{dave_id}/profile"),
        "-H",
        "accept: application/json",
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile,
        json!({
            "id": dave_id,
            "name": "David Test-user",
            "email": DAVE,
            "picture": picture,
            "identities": [{"provider": "facebook", "id": "11122233344455566",
                            "idpUserInfo": facebook_info}],
            "attributes": {"role": "admin"},
            "roles": ["admin"],
        })
    );
    let (status, _) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/users/{dave_id}/profile"),
        "-H",
        "accept: application/json",
    ])
    .await;
    assert_eq!(status, 401, "the Management API token is required");
    let (status, other) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/e19a2778-3262/users/{dave_id}/profile"),
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!((status, &other["code"]), (404, &json!("entity.not_found")));

    // Setting attributes: the documented body is not JSON (`} {` between two objects), so it
    // is refused saying where; what it means is accepted.
    let documented = "{ \"attributes\": { \"points\": \"150\" } { \"role\": \"admin\" }}";
    let (status, refused) = curl(&[
        "-X",
        "PUT",
        &format!("{host}/management/v4/{tenant}/users/{dave_id}/profile"),
        "-H",
        "accept: application/json",
        "-H",
        "Content-Type: application/json",
        "-H",
        &bearer,
        "-d",
        documented,
    ])
    .await;
    assert_eq!(
        (status, &refused["code"]),
        (400, &json!("guard.invalid_input"))
    );
    assert!(
        refused["details"].as_str().unwrap().contains("column"),
        "{refused}"
    );
    let meant = "{ \"attributes\": { \"points\": \"150\", \"role\": \"admin\" }}";
    let (status, updated) = curl(&[
        "-X",
        "PUT",
        &format!("{host}/management/v4/{tenant}/users/{dave_id}/profile"),
        "-H",
        "accept: application/json",
        "-H",
        "Content-Type: application/json",
        "-H",
        &bearer,
        "-d",
        meant,
    ])
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["attributes"],
        json!({"points": "150", "role": "admin"})
    );
    let update = server
        .events()
        .await
        .into_iter()
        .rfind(|e| e.event_type == "user.updated" && e.stream_id == dave_id)
        .unwrap();
    assert_eq!(
        (update.actor_kind.as_str(), update.actor_id.as_deref()),
        ("app", Some(BOOTSTRAP_ID))
    );
    assert!(update.request_id.is_some());

    // Export: App ID's envelope, each user with identities, attributes and role names.
    let (status, exported) = curl(&[
        "-X",
        "GET",
        &format!("{host}/management/v4/{tenant}/users/export"),
        "--header",
        "Accept: application/json",
        "--header",
        &format!("Authorization: Bearer {token}"),
    ])
    .await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(exported["itemsPerPage"], 1);
    assert_eq!(exported["totalResults"], 1);
    assert_eq!(exported["requestOptions"], json!({}));
    assert_eq!(exported["users"][0]["roles"], json!(["admin"]));
    assert_eq!(
        exported["users"][0]["identities"][0]["id"],
        "11122233344455566"
    );
    let paged = server
        .get("/management/v4/default/users/export?startIndex=1&count=5")
        .await;
    assert_eq!(paged.expect(200)["users"], json!([]));
    assert_eq!(paged.body["totalResults"], 1);
    assert_eq!(
        paged.body["requestOptions"],
        json!({"startIndex": 1, "count": 5})
    );
    let export_logs = server
        .get("/api/logs?logKey=ManagementApi.User.Export")
        .await;
    assert_eq!(export_logs.expect(200).as_array().unwrap().len(), 2);
    assert_eq!(export_logs.body[1]["payload"]["count"], 1);
    assert_eq!(export_logs.body[1]["payload"]["actor"]["id"], BOOTSTRAP_ID);

    // Import: the documented body is not JSON either (`} {` and a bare `admin`); its meaning,
    // placeholders filled in, imports both users keeping their ids and identity ids.
    let documented = r#"{ "itemsPerPage": 2, "totalResults": 2, "requestOptions": {}, "users": [ { "id": "7ae804f3-0ed3-45f0-bc6b-1c6af868e6d6", "name": "App ID Google User profile", "email": "your@mail.com", "identities": [ { "provider": "google", "id": "105646725068605084546", "idpUserInfo": { "id": "{ID}", "email": "your@mail.com", "picture": "{profile.jpg}" } } ], "attributes": { "points": 150 } { "role": admin } } ]}"#;
    let import = |body: String| {
        let (host, bearer) = (host.clone(), bearer.clone());
        async move {
            curl(&[
                "-X",
                "POST",
                &format!("{host}/management/v4/{tenant}/users/import"),
                "-H",
                "accept: application/json",
                "-H",
                &bearer.replace("authorization", "Authorization"),
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
            ])
            .await
        }
    };
    let (status, refused) = import(documented.to_owned()).await;
    assert_eq!(
        (status, &refused["code"]),
        (400, &json!("guard.invalid_input"))
    );
    let meant = json!({
        "itemsPerPage": 2, "totalResults": 2, "requestOptions": {},
        "users": [
            {"id": "7ae804f3-0ed3-45f0-bc6b-1c6af868e6d6", "name": "App ID Google User profile",
             "email": "your@mail.com",
             "identities": [{"provider": "google", "id": "105646725068605084546",
                             "idpUserInfo": {"id": "105646725068605084546", "email": "your@mail.com",
                                             "picture": "profile.jpg"}}],
             "attributes": {"points": 150, "role": "admin"}},
            {"id": "1439d777-185d-4be1-8f4a-c4e8142b87ea", "name": "App ID Facebook User profile",
             "email": "mail@mail.com",
             "identities": [{"provider": "facebook", "id": "100195207128541",
                             "picture": {"data": {"height": 50, "width": 50,
                                                  "url": "https://example.com/pic.png"}},
                             "first_name": "AppID", "last_name": "Development"}],
             "attributes": {"points": 250, "role": "admin"}}
        ]
    });
    let (status, summary) = import(meant.to_string()).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (
            &summary["created"],
            &summary["skipped"],
            &summary["refused"]
        ),
        (&json!(2), &json!(0), &json!(0))
    );
    let google = server
        .get("/management/v4/default/users/7ae804f3-0ed3-45f0-bc6b-1c6af868e6d6/profile")
        .await;
    assert_eq!(
        google.expect(200)["identities"][0]["id"],
        "105646725068605084546"
    );
    assert_eq!(
        google.body["attributes"],
        json!({"points": 150, "role": "admin"})
    );
    let facebook = server
        .get("/api/users/1439d777-185d-4be1-8f4a-c4e8142b87ea")
        .await;
    assert_eq!(
        facebook.expect(200)["identities"]["facebook"],
        json!({"userId": "100195207128541",
               "details": {"picture": {"data": {"height": 50, "width": 50,
                                                "url": "https://example.com/pic.png"}},
                           "first_name": "AppID", "last_name": "Development"}})
    );
    // Their identities sign them in: the provider's id points at the imported user.
    let created = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.created" && e.stream_id.contains('-'))
        .collect::<Vec<_>>();
    assert_eq!(created.len(), 2);
    assert!(
        created
            .iter()
            .all(|e| e.actor_id.as_deref() == Some(BOOTSTRAP_ID))
    );

    // Again: nothing changes.
    let before = server.events().await.len();
    let (status, again) = import(meant.to_string()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["created"], &again["skipped"], &again["refused"]),
        (&json!(0), &json!(2), &json!(0))
    );
    let appended: Vec<String> = server.events().await[before..]
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(appended, ["user_transfer.imported"]);

    // A role missing here refuses the whole import, naming it; nothing is created.
    let mut with_roles = meant.clone();
    with_roles["users"][0]["id"] = json!("0f0f0f0f-0000-4000-8000-000000000001");
    with_roles["users"][0]["email"] = json!("new@mail.com");
    with_roles["users"][0]["identities"] = json!([]);
    with_roles["users"][0]["roles"] = json!(["admin", "auditor", "ghost"]);
    let users_before = server
        .get("/api/users")
        .await
        .header("total-number")
        .map(str::to_owned);
    let (status, missing) = import(with_roles.to_string()).await;
    assert_eq!(status, 422, "{missing}");
    assert_eq!(missing["code"], "user.import_references_missing");
    assert_eq!(missing["data"]["missingRoles"], json!(["auditor", "ghost"]));
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("auditor, ghost")
    );
    assert_eq!(
        server
            .get("/api/users")
            .await
            .header("total-number")
            .map(str::to_owned),
        users_before
    );
    let import_logs = server
        .get("/api/logs?logKey=ManagementApi.User.Import")
        .await;
    let results: Vec<Value> = import_logs
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["result"].clone())
        .collect();
    assert_eq!(
        results,
        [json!("Error"), json!("Success"), json!("Success")]
    );
    assert_eq!(
        import_logs.body[0]["payload"]["missingRoles"],
        json!(["auditor", "ghost"])
    );

    // A user here with other data is refused, the others go on.
    let mut changed = meant.clone();
    changed["users"][0]["name"] = json!("Renamed");
    changed["users"][1]["id"] = json!("0f0f0f0f-0000-4000-8000-000000000002");
    changed["users"][1]["email"] = json!("third@mail.com");
    changed["users"][1]["identities"] = json!([]);
    let (status, mixed) = import(changed.to_string()).await;
    assert_eq!(status, 200, "{mixed}");
    assert_eq!(
        (&mixed["created"], &mixed["refused"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        mixed["refusedUsers"][0],
        json!({"id": "7ae804f3-0ed3-45f0-bc6b-1c6af868e6d6", "code": "exists_with_different_data",
               "reason": "A user with this id exists here with other data; it was left unchanged."})
    );

    // Deleting the profile deletes the user.
    let (status, _) = curl(&[
        "-X",
        "DELETE",
        &format!("{host}/management/v4/{tenant}/users/{dave_id}/profile"),
        "-H",
        "accept: application/json",
        "-H",
        &bearer,
    ])
    .await;
    assert_eq!(status, 204);
    server
        .get(&format!("/api/users/{dave_id}"))
        .await
        .expect_error(404, "entity.not_found");
    server.assert_replay_check();
}

/// Creates what an import refers to by name on `server`: the role, the organization and its
/// role; returns the organization's id.
async fn references(server: &TestServer) -> String {
    server
        .post(
            "/api/roles",
            json!({"name": "editor", "description": "edits"}),
        )
        .await
        .expect(200);
    server
        .post("/api/organization-roles", json!({"name": "member"}))
        .await
        .expect(201);
    let organization = server
        .post("/api/organizations", json!({"name": "Acme"}))
        .await;
    organization.expect(201)["id"].as_str().unwrap().to_owned()
}

fn replay_ok(server: &TestServer, args: &[&str]) -> String {
    let output = server.replay(args);
    assert!(
        output.status.success(),
        "replay {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An instance of its own: its own database and its own key-encryption key, so nothing sealed
/// or keyed on another instance is readable or comparable here.
const OTHER_KEK: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/// The application redirect URI `social_oidc`'s visitor starts its sign-ins with.
const APP_REDIRECT: &str = "https://app.example.com/callback";

/// An instance whose users can sign in with `social_oidc`'s upstream connector.
async fn instance(env: &[(&str, &str)]) -> Downstream {
    let server = TestServer::start_with(env).await;
    let (client_id, client_secret) = social_oidc::application(&server, APP_REDIRECT).await;
    Downstream {
        server,
        client_id,
        client_secret,
    }
}

async fn total_users(server: &TestServer) -> String {
    let listed = server.get("/api/users").await;
    listed.header("total-number").unwrap().to_owned()
}

#[tokio::test]
async fn a_tenants_users_move_to_a_second_instance_and_sign_in_there() {
    // Three running instances, and an upstream OpenID provider all three trust.
    let source_side = instance(&[]).await;
    let target_side = instance(&[("IDLEDGER_KEK", OTHER_KEK)]).await;
    let app_id_side = instance(&[("IDLEDGER_KEK", OTHER_KEK)]).await;
    let upstream = Upstream::start(
        &source_side.callback(),
        json!({"username": "ada", "password": social_oidc::PASSWORD,
               "primaryEmail": "lin@upstream.example", "name": "Lin"}),
    )
    .await;
    upstream
        .server
        .patch(
            &format!("/api/applications/{}", upstream.client_id),
            json!({"oidcClientMetadata": {
                "redirectUris": [source_side.callback(), target_side.callback(),
                                 app_id_side.callback()],
                "postLogoutRedirectUris": []}}),
        )
        .await
        .expect(200);
    for side in [&source_side, &target_side, &app_id_side] {
        side.connect(upstream.config("client_secret_post"), json!({}))
            .await
            .expect(200);
    }
    let source = &source_side.server;
    let target = &target_side.server;

    let organization = references(source).await;
    let editor = source
        .get("/api/roles")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "editor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for (username, email) in [("ada", "ada@example.com"), ("grace", "grace@example.com")] {
        let user = source
            .post(
                "/api/users",
                json!({"username": username, "primaryEmail": email, "password": PASSWORD,
                       "name": username, "customData": {"plan": "pro"},
                       "profile": {"givenName": username}}),
            )
            .await;
        ids.push(user.expect(200)["id"].as_str().unwrap().to_owned());
    }
    let (ada, grace) = (ids[0].clone(), ids[1].clone());
    source
        .put(
            &format!("/api/users/{ada}/identities/google"),
            json!({"userId": "g-1001", "details": {"email": "ada@example.com"}}),
        )
        .await
        .expect(201);
    source
        .post(
            &format!("/api/users/{ada}/roles"),
            json!({"roleIds": [editor]}),
        )
        .await
        .expect(201);
    source
        .post(
            &format!("/api/organizations/{organization}/users"),
            json!({"userIds": [ada]}),
        )
        .await
        .expect(201);
    source
        .post(
            &format!("/api/organizations/{organization}/users/{ada}/roles"),
            json!({"organizationRoleNames": ["member"]}),
        )
        .await
        .expect(201);
    // Ada has a second factor: a TOTP authenticator, and backup codes.
    let totp = source
        .post(
            &format!("/api/users/{ada}/mfa-verifications"),
            json!({"type": "Totp"}),
        )
        .await;
    let totp_secret = totp.expect(200)["secret"].as_str().unwrap().to_owned();
    let codes = source
        .post(
            &format!("/api/users/{ada}/mfa-verifications"),
            json!({"type": "BackupCode"}),
        )
        .await;
    let backup_code = codes.expect(200)["codes"][0].as_str().unwrap().to_owned();
    let factors = source
        .get(&format!("/api/users/{ada}/mfa-verifications"))
        .await;
    let factor_ids: Vec<Value> = factors
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    // A user whose digest was imported from elsewhere keeps it as it is.
    let sha = source
        .post(
            "/api/users",
            json!({"username": "hedy", "passwordDigest": sha256_hex(PASSWORD),
                   "passwordAlgorithm": "SHA256"}),
        )
        .await;
    let hedy = sha.expect(200)["id"].as_str().unwrap().to_owned();
    source
        .patch(
            &format!("/api/users/{grace}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    // Lin registers with the upstream provider and has no password here.
    let lin = social_sign_in(&upstream, &source_side, "Register").await;
    let lin_identity =
        source.get(&format!("/api/users/{lin}")).await.body["identities"]["upstream"]["userId"]
            .clone();
    assert_eq!(lin_identity, upstream.user_id.as_str());

    let file = source.data_dir.join("users.jsonl");
    let file = file.to_str().unwrap();
    replay_ok(
        source,
        &["export-users", "--out", file, "--operator", "auditor"],
    );
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "idledger.users");
    assert_eq!(lines[0]["users"], 4);
    let ada_line = lines.iter().find(|l| l["id"] == ada.as_str()).unwrap();
    assert_eq!(ada_line["password"]["algorithm"], "Argon2id");
    assert_eq!(ada_line["roles"], json!(["editor"]));
    assert_eq!(
        ada_line["organizations"],
        json!([{"id": organization, "name": "Acme", "roles": ["member"]}])
    );
    assert_eq!(ada_line["mfa"][0]["type"], "Totp");
    assert_eq!(ada_line["mfa"][0]["secret"], totp_secret.as_str());
    assert_eq!(ada_line["mfa"][1]["type"], "BackupCode");
    assert_eq!(
        ada_line["mfa"][1]["unusedCodeHashes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let exported = source
        .get("/api/logs?logKey=ManagementApi.User.Export")
        .await;
    assert_eq!(
        exported.expect(200)[0]["payload"]["actor"]["id"],
        "replay:auditor"
    );
    assert_eq!(exported.body[0]["payload"]["format"], "idledger");

    // The second instance has the same role and organization names, not the same ids, nor
    // the same keys.
    let target_organization = references(target).await;
    assert_ne!(target_organization, organization);
    let before = target.events().await.len();
    let summary = replay_ok(target, &["import-users", file, "--operator", "auditor"]);
    assert!(
        summary.starts_with("created 4, skipped 0, refused 0 of 4 user(s)"),
        "{summary}"
    );
    // Backup code hashes verify only under the key that made them: they stay behind, and
    // the summary says for whom.
    assert!(
        summary.contains("backup codes left behind for 1 user(s)") && summary.contains(&ada),
        "{summary}"
    );
    let imported = target.get(&format!("/api/users/{ada}")).await;
    let user = imported.expect(200);
    assert_eq!(user["identities"]["google"]["userId"], "g-1001");
    assert_eq!(user["profile"], json!({"givenName": "ada"}));
    assert_eq!(user["hasPassword"], true);
    let moved_factors = target
        .get(&format!("/api/users/{ada}/mfa-verifications"))
        .await;
    assert_eq!(moved_factors.expect(200).as_array().unwrap().len(), 1);
    assert_eq!(moved_factors.body[0]["type"], "Totp");
    assert_eq!(moved_factors.body[0]["id"], factor_ids[0]);
    let roles = target.get(&format!("/api/users/{ada}/roles")).await;
    assert_eq!(roles.expect(200)[0]["name"], "editor");
    let orgs = target.get(&format!("/api/users/{ada}/organizations")).await;
    assert_eq!(orgs.expect(200)[0]["id"], target_organization.as_str());
    assert_eq!(orgs.body[0]["organizationRoles"][0]["name"], "member");
    assert_eq!(
        target.get(&format!("/api/users/{grace}")).await.body["isSuspended"],
        true
    );
    let created = target.events().await[before..]
        .iter()
        .filter(|e| e.event_type == "user.created")
        .map(|e| (e.actor_kind.clone(), e.actor_id.clone()))
        .collect::<Vec<_>>();
    assert_eq!(
        created,
        vec![("admin".to_owned(), Some("replay:auditor".to_owned())); 4]
    );
    let imported_logs = target
        .get("/api/logs?logKey=ManagementApi.User.Import")
        .await;
    assert_eq!(
        imported_logs.expect(200)[0]["payload"]["actor"]["id"],
        "replay:auditor"
    );
    assert_eq!(imported_logs.body[0]["payload"]["created"], 4);

    // The same people sign in there: with their passwords (and Ada's authenticator, whose
    // secret was re-sealed under this instance's key), and Lin with the upstream provider.
    access_token(
        target,
        "ada",
        PASSWORD,
        Some(SecondFactor::Totp(&totp_secret)),
    )
    .await;
    access_token(target, "hedy", PASSWORD, None).await;
    let verify = target
        .post(
            &format!("/api/users/{hedy}/password/verify"),
            json!({"password": "wrong"}),
        )
        .await;
    verify.expect_error(422, "session.invalid_credentials");
    assert_eq!(social_sign_in(&upstream, &target_side, "SignIn").await, lin);
    assert_eq!(
        total_users(target).await,
        "4",
        "Lin signed in, no one registered"
    );

    // Again: nothing changes but the record of the run.
    let before = target.events().await.len();
    let again = replay_ok(target, &["import-users", file, "--operator", "auditor"]);
    assert!(
        again.starts_with("created 0, skipped 4, refused 0"),
        "{again}"
    );
    let appended: Vec<String> = target.events().await[before..]
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(appended, ["user_transfer.imported"]);

    // An export naming a role the target lacks imports nothing. Once the role exists, the
    // import goes through; this instance shares the source's key, so Ada's unused backup
    // codes come along and work.
    let third = TestServer::start().await;
    third
        .post("/api/organizations", json!({"name": "Acme"}))
        .await
        .expect(201);
    third
        .post("/api/organization-roles", json!({"name": "member"}))
        .await
        .expect(201);
    let before = third.events().await.len();
    let output = third.replay(&["import-users", file, "--operator", "auditor"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("roles editor"), "{stderr}");
    assert!(stderr.contains("Nothing was imported"), "{stderr}");
    let appended: Vec<String> = third.events().await[before..]
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(appended, ["user_transfer.import_refused"]);
    assert_eq!(total_users(&third).await, "0");
    third
        .post(
            "/api/roles",
            json!({"name": "editor", "description": "edits"}),
        )
        .await
        .expect(200);
    let summary = replay_ok(&third, &["import-users", file, "--operator", "auditor"]);
    assert!(
        summary.starts_with("created 4, skipped 0, refused 0 of 4 user(s)")
            && !summary.contains("backup codes"),
        "{summary}"
    );
    let carried = third
        .get(&format!("/api/users/{ada}/mfa-verifications"))
        .await;
    let carried_codes = carried
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "BackupCode")
        .unwrap();
    assert_eq!(carried_codes["remainCodes"], 10);
    access_token(
        &third,
        "ada",
        PASSWORD,
        Some(SecondFactor::BackupCode(&backup_code)),
    )
    .await;
    third.assert_replay_check();

    // App ID's export from one instance imports into another through App ID's routes (no
    // passwords in App ID's shape), with ids and identity ids kept; Lin signs in there with
    // the upstream provider; a re-run changes nothing; a missing role imports nothing.
    let app_id = source.get("/management/v4/default/users/export").await;
    let app_id = app_id.expect(200).clone();
    assert_eq!(app_id["totalResults"], 4);
    let fourth = &app_id_side.server;
    let refused = fourth
        .post("/management/v4/default/users/import", app_id.clone())
        .await;
    refused.expect_error(422, "user.import_references_missing");
    assert_eq!(refused.body["data"]["missingRoles"], json!(["editor"]));
    assert_eq!(total_users(fourth).await, "0");
    fourth
        .post(
            "/api/roles",
            json!({"name": "editor", "description": "edits"}),
        )
        .await
        .expect(200);
    let summary = fourth
        .post("/management/v4/default/users/import", app_id.clone())
        .await;
    assert_eq!(summary.expect(200)["created"], 4, "{}", summary.body);
    let moved = fourth
        .get(&format!("/management/v4/default/users/{ada}/profile"))
        .await;
    assert_eq!(moved.expect(200)["identities"][0]["id"], "g-1001");
    assert_eq!(moved.body["roles"], json!(["editor"]));
    let lin_there = fourth
        .get(&format!("/management/v4/default/users/{lin}/profile"))
        .await;
    assert_eq!(
        lin_there.expect(200)["identities"][0],
        json!({"provider": "upstream", "id": lin_identity,
               "idpUserInfo": source.get(&format!("/api/users/{lin}")).await.body
                   ["identities"]["upstream"]["details"]})
    );
    assert_eq!(social_sign_in(&upstream, &app_id_side, "SignIn").await, lin);
    let again = fourth
        .post("/management/v4/default/users/import", app_id)
        .await;
    assert_eq!(
        (&again.expect(200)["created"], &again.body["skipped"]),
        (&json!(0), &json!(4))
    );
    assert_eq!(total_users(fourth).await, "4");
    let runs = fourth
        .get("/api/logs?logKey=ManagementApi.User.Import")
        .await;
    let runs: Vec<(Value, Value)> = runs
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["payload"]["result"].clone(),
                e["payload"]["actor"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (json!("Success"), json!(BOOTSTRAP_ID)),
            (json!("Success"), json!(BOOTSTRAP_ID)),
            (json!("Error"), json!(BOOTSTRAP_ID))
        ]
    );
    target.assert_replay_check();
    fourth.assert_replay_check();
}

fn sha256_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
