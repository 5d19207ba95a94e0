//! Connectors (logto-compat §6) and verification codes through the Management API (§7), against
//! a real SMTP server (tests/api/smtp_server.rs): sealed secrets, Logto's replace semantics,
//! templates, TLS and AUTH, test sends and their failures, delivery from the log through an
//! outage and a restart, rate limits and tries.

use std::time::Duration;

use serde_json::{Value, json};

use crate::smtp_server::{Options, SmtpServer, Tls, code_in, header};
use crate::support::{StoredEvent, TestServer, pg_bin};

const SMTP_USER: &str = "mailer";
const SMTP_PASSWORD: &str = "smtp-Pa55word-never-logged";
const WAIT: Duration = Duration::from_secs(30);

/// Logto's four required templates plus one per other usage type, each naming itself.
pub fn templates(content_type: &str) -> Value {
    let all = [
        "SignIn",
        "Register",
        "ForgotPassword",
        "Generic",
        "OrganizationInvitation",
        "UserPermissionValidation",
        "BindNewIdentifier",
        "MfaVerification",
        "BindMfa",
    ];
    let mut list: Vec<Value> = all
        .iter()
        .map(|usage| {
            let content = if content_type == "text/html" {
                format!(
                    "<p>{usage}: your code is <b>{{{{code}}}}</b> for {{{{application.name}}}}</p>"
                )
            } else {
                format!(
                    "{usage}: your code is {{{{code}}}} for {{{{application.name}}}} {{{{link}}}}"
                )
            };
            json!({
                "usageType": usage,
                "contentType": content_type,
                "subject": format!("{usage} code"),
                "content": content,
            })
        })
        .collect();
    list.push(json!({
        "usageType": "SignIn", "contentType": "text/plain", "locale": "ja",
        "subject": "サインインコード", "content": "サインインのコードは {{code}} です",
    }));
    Value::Array(list)
}

fn smtp_login() -> Options {
    Options {
        login: Some((SMTP_USER, SMTP_PASSWORD)),
        ..Options::default()
    }
}

pub async fn create_email_connector(server: &TestServer, config: Value) -> Value {
    let reply = server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol", "config": config}),
        )
        .await;
    reply.expect(200).clone()
}

fn events_of<'a>(events: &'a [StoredEvent], event_type: &str) -> Vec<&'a StoredEvent> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

#[tokio::test]
async fn connectors_are_events_with_sealed_secrets_and_one_email_connector_at_a_time() {
    let server = TestServer::start().await;
    let factories = server.get("/api/connector-factories").await;
    let smtp = factories
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "simple-mail-transfer-protocol")
        .cloned()
        .expect("the SMTP factory");
    assert_eq!(smtp["type"], "Email");
    assert_eq!(smtp["target"], "smtp");
    assert_eq!(smtp["isDemo"], false);
    server
        .get("/api/connector-factories/simple-mail-transfer-protocol")
        .await
        .expect(200);
    server
        .get("/api/connector-factories/nope")
        .await
        .expect_error(404, "entity.not_found");

    let mail = SmtpServer::start(smtp_login());
    let config = mail.config(templates("text/plain"));
    let first = create_email_connector(&server, config.clone()).await;
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["connectorId"], "simple-mail-transfer-protocol");
    assert_eq!(first["type"], "Email");
    assert_eq!(first["target"], "smtp");
    assert_eq!(
        first["config"], config,
        "the configuration comes back whole"
    );
    let listed = server.get("/api/connectors?target=smtp").await;
    assert_eq!(listed.expect(200).as_array().unwrap().len(), 1);
    let none = server.get("/api/connectors?target=github").await;
    assert!(none.expect(200).as_array().unwrap().is_empty());

    let events = server.events().await;
    let created = events_of(&events, "connector.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor_kind, "app");
    assert_eq!(created[0].ip.as_deref(), Some("127.0.0.1"));
    assert!(created[0].request_id.is_some());
    assert!(!created[0].payload.to_string().contains(SMTP_PASSWORD));
    assert_eq!(created[0].payload["secretPaths"], json!(["/auth/pass"]));

    // A new password: the old vault entry goes, the new one is sealed.
    let mut changed = config.clone();
    changed["auth"]["pass"] = json!("second-Secret-42");
    let patched = server
        .patch(&format!("/api/connectors/{id}"), json!({"config": changed}))
        .await;
    assert_eq!(
        patched.expect(200)["config"]["auth"]["pass"],
        "second-Secret-42"
    );
    let db = server.db().await;
    let vault: i64 = db
        .query_one(
            "SELECT count(*) FROM vault WHERE ref LIKE $1",
            &[&format!("connector/{id}/%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(vault, 1, "one configuration, one vault entry");
    let row: Value = db
        .query_one("SELECT to_jsonb(c) FROM connectors c WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(!row.to_string().contains("second-Secret-42"));

    // A second Email connector replaces the first (Logto's replace semantics).
    let second = create_email_connector(&server, config.clone()).await;
    assert_ne!(second["id"], first["id"]);
    server
        .get(&format!("/api/connectors/{id}"))
        .await
        .expect_error(404, "entity.not_exists_with_id");
    let all = server.get("/api/connectors").await;
    assert_eq!(all.expect(200).as_array().unwrap().len(), 1);
    let second_id = second["id"].as_str().unwrap();
    server
        .delete(&format!("/api/connectors/{second_id}"))
        .await
        .expect(204);
    let vault: i64 = db
        .query_one(
            "SELECT count(*) FROM vault WHERE ref LIKE 'connector/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(vault, 0, "deleted connectors leave no secret behind");
    server.assert_replay_check();
}

#[tokio::test]
async fn bad_requests_get_logtos_connector_errors() {
    let server = TestServer::start().await;
    let mail = SmtpServer::start(Options::default());
    let mut config = mail.config(templates("text/plain"));
    config["templates"] = json!([{"usageType": "SignIn", "contentType": "text/plain",
        "subject": "s", "content": "{{code}}"}]);
    let reply = server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol", "config": config}),
        )
        .await;
    reply.expect_error(400, "connector.invalid_config");
    assert!(
        reply.body["details"]
            .as_str()
            .unwrap()
            .contains("templates")
    );
    let mut config = mail.config(templates("text/plain"));
    config["port"] = json!("25");
    let reply = server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol", "config": config}),
        )
        .await;
    reply.expect_error(400, "connector.invalid_config");
    assert!(reply.body["details"].as_str().unwrap().contains("port"));
    server
        .post("/api/connectors", json!({"connectorId": "no-such-factory"}))
        .await
        .expect_error(422, "connector.not_found_with_connector_id");
    server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol",
                   "config": mail.config(templates("text/plain")),
                   "metadata": {"target": "x"}}),
        )
        .await
        .expect_error(
            400,
            "connector.cannot_overwrite_metadata_for_non_standard_connector",
        );
    server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol",
                   "config": mail.config(templates("text/plain")), "syncProfile": true}),
        )
        .await
        .expect_error(422, "connector.invalid_type_for_syncing_profile");
    server
        .patch("/api/connectors/missing", json!({}))
        .await
        .expect_error(404, "entity.not_exists_with_id");
    server
        .post(
            "/api/connectors/oidc-nope/test",
            json!({"email": "a@example.com", "config": {}}),
        )
        .await
        .expect_error(400, "connector.not_found");
    assert!(events_of(&server.events().await, "connector.created").is_empty());
}

async fn test_send(server: &TestServer, config: Value) -> crate::support::Reply {
    server
        .post(
            "/api/connectors/simple-mail-transfer-protocol/test",
            json!({"email": "tester@example.com", "config": config}),
        )
        .await
}

#[tokio::test]
async fn test_sends_use_generic_over_starttls_and_implicit_tls_and_failures_are_connector_errors() {
    let server = TestServer::start().await;
    let starttls = SmtpServer::start(Options {
        tls: Tls::Starttls,
        ..smtp_login()
    });
    test_send(&server, starttls.config(templates("text/html")))
        .await
        .expect(204);
    let received = starttls.messages();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message["tls"], true, "STARTTLS was used");
    assert_eq!(message["login"], SMTP_USER, "AUTH LOGIN");
    assert_eq!(message["rcpt_tos"], json!(["tester@example.com"]));
    assert_eq!(message["subject"], "Generic code");
    assert_eq!(message["content_type"], "text/html");
    assert!(message["body"].as_str().unwrap().contains("<b>000000</b>"));
    assert!(
        header(message, "From")
            .unwrap()
            .contains("no-reply@idledger.test")
    );
    assert!(
        header(message, "Message-ID")
            .unwrap()
            .ends_with("@idledger>")
    );

    let implicit = SmtpServer::start(Options {
        tls: Tls::Implicit,
        ..smtp_login()
    });
    let mut config = implicit.config(templates("text/plain"));
    config["customHeaders"] = json!({"X-Tenant": "acme", "X-Tags": ["a", "b"]});
    config["replyTo"] = json!("help@idledger.test");
    config["name"] = json!("mailer.idledger.test");
    test_send(&server, config).await.expect(204);
    let message = &implicit.messages()[0];
    assert_eq!(message["tls"], true);
    assert_eq!(message["content_type"], "text/plain");
    assert_eq!(header(message, "X-Tenant"), Some("acme"));
    assert_eq!(header(message, "Reply-To"), Some("help@idledger.test"));
    // A test send's payload is the code alone: other placeholders stay as written, as in Logto.
    assert!(
        message["body"]
            .as_str()
            .unwrap()
            .contains("000000 for {{application.name}} {{link}}"),
        "{message}"
    );

    // The SMTP server's reason, as connector.general: a wrong password...
    let mut wrong = starttls.config(templates("text/plain"));
    wrong["auth"]["pass"] = json!("wrong");
    let reply = test_send(&server, wrong).await;
    reply.expect_error(400, "connector.general");
    assert!(
        reply.body["message"].as_str().unwrap().contains("535"),
        "{}",
        reply.body
    );
    // ...a TLS handshake that fails (the server's CA is not trusted)...
    let mut untrusted = implicit.config(templates("text/plain"));
    untrusted["tls"] = json!({"ca": starttls.ca_pem()});
    let reply = test_send(&server, untrusted).await;
    reply.expect_error(400, "connector.general");
    // ...a server without STARTTLS when requireTLS is set...
    let plain = SmtpServer::start(Options::default());
    let mut required = plain.config(templates("text/plain"));
    required["requireTLS"] = json!(true);
    test_send(&server, required)
        .await
        .expect_error(400, "connector.general");
    // ...and nobody listening.
    let mut unreachable = plain.config(templates("text/plain"));
    unreachable["port"] = json!(free_port());
    let reply = test_send(&server, unreachable).await;
    reply.expect_error(400, "connector.general");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{}",
        reply.body
    );
    // XOAUTH2 with an access token.
    let oauth = SmtpServer::start(Options {
        mechanisms: "XOAUTH2",
        token: Some("ya29.test-access-token"),
        ..Options::default()
    });
    let mut config = oauth.config(templates("text/plain"));
    config["auth"] = json!({"type": "OAuth2", "user": "oauth@idledger.test",
        "accessToken": "ya29.test-access-token"});
    test_send(&server, config.clone()).await.expect(204);
    assert_eq!(oauth.messages()[0]["login"], "oauth@idledger.test");
    config["auth"]["accessToken"] = json!("expired");
    test_send(&server, config)
        .await
        .expect_error(400, "connector.general");
    // `rejectUnauthorized: false` accepts the untrusted certificate.
    let mut lax = implicit.config(templates("text/plain"));
    lax["tls"] = json!({"rejectUnauthorized": false});
    test_send(&server, lax).await.expect(204);
}

#[tokio::test]
async fn management_codes_are_mailed_checked_limited_and_never_stored_in_the_clear() {
    let server = TestServer::start().await;
    server
        .post(
            "/api/verification-codes",
            json!({"email": "ada@example.com"}),
        )
        .await
        .expect_error(501, "connector.not_found");
    let mail = SmtpServer::start(smtp_login());
    create_email_connector(&server, mail.config(templates("text/plain"))).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"verificationCodePolicy": {"expirationDuration": 600, "maxRetryAttempts": 2}}),
        )
        .await
        .expect(200);

    server
        .post(
            "/api/verification-codes",
            json!({"email": "ada@example.com"}),
        )
        .await
        .expect(204);
    let received = mail.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "the code arrived");
    assert_eq!(received[0]["subject"], "Generic code");
    let code = code_in(&received[0]);
    let verify = |code: String| {
        let server = &server;
        async move {
            server
                .post(
                    "/api/verification-codes/verify",
                    json!({"email": "ada@example.com", "verificationCode": code}),
                )
                .await
        }
    };
    let wrong = if code == "111111" { "222222" } else { "111111" };
    verify(wrong.to_owned())
        .await
        .expect_error(400, "verification_code.code_mismatch");
    verify(code.clone()).await.expect(204);
    verify(code.clone())
        .await
        .expect_error(400, "verification_code.not_found");
    server
        .post(
            "/api/verification-codes/verify",
            json!({"email": "bob@example.com", "verificationCode": code}),
        )
        .await
        .expect_error(400, "verification_code.not_found");

    // Two wrong tries exhaust `maxRetryAttempts`; even the right code is then refused.
    server
        .post(
            "/api/verification-codes",
            json!({"email": "ada@example.com"}),
        )
        .await
        .expect(204);
    let received = mail.wait_for(2, WAIT).await;
    let code = code_in(&received[1]);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    for _ in 0..2 {
        verify(wrong.to_owned())
            .await
            .expect_error(400, "verification_code.code_mismatch");
    }
    verify(code.clone())
        .await
        .expect_error(400, "verification_code.exceed_max_try");

    // The events hold hashes: a code-sent event, a queued and a sent message.
    let events = server.events().await;
    let sent = events_of(&events, "verification_code.sent");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].actor_kind, "app");
    assert!(sent[0].payload["codeHash"].is_string());
    assert_eq!(events_of(&events, "message.sent").len(), 2);
    let queued = events_of(&events, "message.queued");
    assert!(!queued[0].payload.to_string().contains("ada@example.com"));

    // The recipient's cap: 10 messages per 10 minutes (two sent already).
    for _ in 0..8 {
        server
            .post(
                "/api/verification-codes",
                json!({"email": "ada@example.com"}),
            )
            .await
            .expect(204);
    }
    let limited = server
        .post(
            "/api/verification-codes",
            json!({"email": "ada@example.com"}),
        )
        .await;
    limited.expect_error(429, "request.message_rate_limited");
    assert!(limited.header("retry-after").is_some());
    server
        .post(
            "/api/verification-codes",
            json!({"email": "eve@example.com"}),
        )
        .await
        .expect(204);

    let received = mail.wait_for(11, WAIT).await;
    assert_eq!(received.len(), 11);
    assert_no_secret_at_rest(&server, &received).await;
    server.assert_replay_check();
}

/// Neither a code nor the SMTP password is in a dump of the database or the server's log.
pub async fn assert_no_secret_at_rest(server: &TestServer, received: &[Value]) {
    let dump = std::process::Command::new(pg_bin("pg_dump"))
        .arg("--dbname")
        .arg(server.database_url())
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("COPY public.events"));
    let log = std::fs::read_to_string(server.data_dir.join("server.log")).unwrap();
    for (name, text) in [("dump", &dump), ("server log", &log)] {
        assert!(
            !text.contains(SMTP_PASSWORD),
            "the SMTP password is in the {name}"
        );
        for message in received {
            let code = code_in(message);
            assert!(
                !contains_number(text, &code),
                "code {code} is in the {name}"
            );
        }
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

/// `number` appears in `text` as a whole number (not inside a longer run of digits).
fn contains_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[tokio::test]
async fn mails_queued_during_an_outage_and_a_restart_arrive_exactly_once() {
    let mut server = TestServer::start().await;
    let mut mail = SmtpServer::start(smtp_login());
    create_email_connector(&server, mail.config(templates("text/plain"))).await;
    mail.stop();
    let recipients = ["one@example.com", "two@example.com", "three@example.com"];
    for email in &recipients[..2] {
        server
            .post("/api/verification-codes", json!({"email": email}))
            .await
            .expect(204);
    }
    // Failed attempts are recorded while the server is down...
    let db = server.db().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let failed: i64 = db
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'message.attempt_failed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if failed > 0 || std::time::Instant::now() > deadline {
            assert!(failed > 0, "no failed attempt recorded");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and idledger itself goes down and comes back, with one more code queued.
    server.restart();
    server
        .post("/api/verification-codes", json!({"email": recipients[2]}))
        .await
        .expect(204);
    mail.restart();
    let received = mail.wait_for(3, Duration::from_secs(90)).await;
    assert_eq!(received.len(), 3, "every queued mail arrived");
    // Every message is recorded as sent; none arrived twice.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let pending: i64 = db
            .query_one("SELECT count(*) FROM messages WHERE status <> 'sent'", &[])
            .await
            .unwrap()
            .get(0);
        if pending == 0 || std::time::Instant::now() > deadline {
            assert_eq!(pending, 0, "all messages recorded as sent");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = mail.messages();
    let mut to: Vec<String> = received
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    let mut expected: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
    expected.sort();
    assert_eq!(to, expected, "each mail exactly once");
    let ids: std::collections::HashSet<&str> = received
        .iter()
        .map(|m| header(m, "X-Idledger-Message-Id").unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    server.assert_replay_check();
}
