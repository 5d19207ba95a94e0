//! Tamper evidence (the hash chain, signed checkpoints, `replay verify`) and erasure by
//! crypto-shredding (`POST /api/users/:id/erase`), on the real log written by the server.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::connectors::{create_email_connector, templates};
use crate::email_codes::other_code;
use crate::smtp_server::{Options, SmtpServer, code_in};
use crate::support::*;

/// `replay verify`'s standard output and exit code.
fn verify(server: &TestServer) -> (Option<i32>, Vec<String>) {
    let output = server.replay(&["verify"]);
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (output.status.code(), lines)
}

fn assert_verifies(server: &TestServer) {
    let (code, lines) = verify(server);
    assert_eq!(code, Some(0), "verify failed: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("verified: ")),
        "{lines:?}"
    );
}

/// Verify fails and its first finding is at `position`, saying `what`.
fn assert_first_finding(server: &TestServer, position: i64, what: &str) {
    let (code, lines) = verify(server);
    assert_eq!(code, Some(1), "verify should fail: {lines:?}");
    let first = lines.first().cloned().unwrap_or_default();
    assert!(
        first.starts_with(&format!("position {position}: ")) && first.contains(what),
        "first finding should name position {position} ({what}): {lines:?}"
    );
}

async fn create_people(server: &TestServer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = server
            .post(
                "/api/users",
                json!({
                    "username": format!("person{i}"),
                    "primaryEmail": format!("person{i}.secret@example.com"),
                    "primaryPhone": format!("6104123456{i:02}"),
                    "name": format!("Hedwig Quarrington {i}"),
                }),
            )
            .await;
        ids.push(created.expect(200)["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Runs `statement` with the append-only trigger off, as someone with the database would.
async fn tamper(server: &TestServer, statement: &str) {
    let db = server.db().await;
    db.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER events_append_only; {statement}; \
         ALTER TABLE events ENABLE TRIGGER events_append_only;"
    ))
    .await
    .unwrap();
}

async fn position_of(server: &TestServer, stream_id: &str, event_type: &str) -> i64 {
    server
        .db()
        .await
        .query_one(
            "SELECT position FROM events WHERE stream_id = $1 AND event_type = $2",
            &[&stream_id, &event_type],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn verify_names_the_position_of_an_altered_byte_a_deleted_event_and_swapped_events() {
    let server = TestServer::start().await;
    let ids = create_people(&server, 4).await;
    server
        .patch(
            &format!("/api/users/{}", ids[1]),
            json!({"name": "Renamed"}),
        )
        .await
        .expect(200);
    assert_verifies(&server);

    // Every appended event carries a 32-byte hash, and the head holds the last one.
    let db = server.db().await;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE length(hash) = 32), count(*), \
             (SELECT hash FROM event_head) = (SELECT hash FROM events ORDER BY position DESC LIMIT 1) \
             FROM events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1));
    assert!(row.get::<_, bool>(2));

    // One flipped bit of a sealed personal part (ciphertext, as stored).
    let altered = position_of(&server, &ids[1], "user.created").await;
    let flip = format!(
        "UPDATE events SET personal = set_byte(personal, 20, get_byte(personal, 20) # 1) \
         WHERE position = {altered}"
    );
    tamper(&server, &flip).await;
    assert_first_finding(&server, altered, "altered");
    tamper(&server, &flip).await;
    assert_verifies(&server);

    // A plain payload value changed.
    let renamed = position_of(&server, &ids[1], "user.updated").await;
    tamper(
        &server,
        &format!(
            "UPDATE events SET occurred_at = occurred_at + interval '1 microsecond' \
             WHERE position = {renamed}"
        ),
    )
    .await;
    assert_first_finding(&server, renamed, "altered");
    tamper(
        &server,
        &format!(
            "UPDATE events SET occurred_at = occurred_at - interval '1 microsecond' \
             WHERE position = {renamed}"
        ),
    )
    .await;
    assert_verifies(&server);

    // A deleted event.
    let deleted = position_of(&server, &ids[2], "user.created").await;
    tamper(
        &server,
        &format!(
            "CREATE TABLE kept AS SELECT * FROM events WHERE position = {deleted}; \
             DELETE FROM events WHERE position = {deleted}"
        ),
    )
    .await;
    assert_first_finding(&server, deleted, "missing");
    tamper(
        &server,
        "INSERT INTO events SELECT * FROM kept; DROP TABLE kept",
    )
    .await;
    assert_verifies(&server);

    // Two events of different streams swapped.
    let (a, b) = (
        position_of(&server, &ids[0], "user.created").await,
        position_of(&server, &ids[3], "user.created").await,
    );
    assert!(a < b);
    tamper(
        &server,
        &format!(
            "UPDATE events SET position = -1 WHERE position = {a}; \
             UPDATE events SET position = {a} WHERE position = {b}; \
             UPDATE events SET position = {b} WHERE position = -1"
        ),
    )
    .await;
    assert_first_finding(&server, a, &format!("recorded at position {b} (reordered)"));
}

#[tokio::test]
async fn a_signed_checkpoint_catches_a_log_rewritten_with_fresh_hashes() {
    let server = TestServer::start().await;
    create_people(&server, 2).await;

    let recorded = server.post("/api/audit/checkpoints", json!({})).await;
    let checkpoint = recorded.expect(201).clone();
    let head: i64 = server
        .db()
        .await
        .query_one("SELECT position FROM event_head", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(checkpoint["position"], json!(head));
    assert_eq!(
        checkpoint["recordedBy"],
        json!(format!("app:{BOOTSTRAP_ID}"))
    );
    // The same head is signed once.
    let again = server.post("/api/audit/checkpoints", json!({})).await;
    assert_eq!(again.expect(200)["signature"], checkpoint["signature"]);
    let listed = server.get("/api/audit/checkpoints").await;
    assert_eq!(listed.expect(200).as_array().unwrap().len(), 1);
    assert_verifies(&server);

    // Someone who knows the algorithm rewrites the last event's hash (and the head's) so the
    // chain is consistent again: only the signed checkpoint still knows better.
    let db = server.db().await;
    let forged: Vec<u8> = vec![9; 32];
    db.batch_execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        .await
        .unwrap();
    db.execute(
        "UPDATE events SET hash = $1 WHERE position = $2",
        &[&forged, &head],
    )
    .await
    .unwrap();
    db.execute("UPDATE event_head SET hash = $1", &[&forged])
        .await
        .unwrap();
    let (code, lines) = verify(&server);
    assert_eq!(code, Some(1));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("position {head}: the log's hash differs"))),
        "{lines:?}"
    );

    // A forged signature is named too.
    db.execute(
        "UPDATE chain_checkpoints SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1)",
        &[],
    )
    .await
    .unwrap();
    let (_, lines) = verify(&server);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("position {head}: checkpoint signature"))),
        "{lines:?}"
    );
}

/// `replay verify --trusted-key <file>`'s standard output and exit code.
fn verify_pinned(server: &TestServer, key_file: &std::path::Path) -> (Option<i32>, Vec<String>) {
    let output = server.replay(&["verify", "--trusted-key", key_file.to_str().unwrap()]);
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (output.status.code(), lines)
}

/// `replay checkpoint-key`'s PEM, written where an auditor would keep it.
fn pin_checkpoint_key(server: &TestServer, name: &str) -> (std::path::PathBuf, String) {
    let output = server.replay(&["checkpoint-key"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let pem = String::from_utf8(output.stdout).unwrap();
    let file = server.data_dir.join(name);
    std::fs::write(&file, &pem).unwrap();
    (file, pem)
}

#[tokio::test]
async fn a_checkpoint_key_pinned_outside_the_database_catches_a_replaced_key() {
    let server = TestServer::start().await;
    // No checkpoint, no key: nothing to pin yet.
    assert_eq!(server.replay(&["checkpoint-key"]).status.code(), Some(2));
    create_people(&server, 2).await;
    let checkpoint = server
        .post("/api/audit/checkpoints", json!({}))
        .await
        .expect(201)
        .clone();
    let head = checkpoint["position"].as_i64().unwrap();
    let (pinned, pem) = pin_checkpoint_key(&server, "auditor.pem");
    assert_eq!(
        pem.matches("-----BEGIN PUBLIC KEY-----").count(),
        1,
        "{pem}"
    );
    assert!(pem.contains(checkpoint["keyId"].as_str().unwrap()), "{pem}");

    let (code, lines) = verify_pinned(&server, &pinned);
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines.contains(&format!(
            "newest checkpoint signed by a trusted key: position {head}"
        )),
        "{lines:?}"
    );

    // Someone with the database cuts off the last event (the chain stays consistent), replaces
    // the checkpoint key and has the new head signed.
    let db = server.db().await;
    db.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;          DELETE FROM events WHERE position = {head};          UPDATE event_head SET position = {head} - 1,              hash = (SELECT hash FROM events WHERE position = {head} - 1);          ALTER TABLE events ENABLE TRIGGER events_append_only;          DELETE FROM chain_checkpoints; DELETE FROM chain_keys"
    ))
    .await
    .unwrap();
    let resigned = server
        .post("/api/audit/checkpoints", json!({}))
        .await
        .expect(201)
        .clone();
    assert_eq!(resigned["position"], json!(head - 1));
    assert_ne!(resigned["keyId"], checkpoint["keyId"]);
    // The database alone vouches for the forgery...
    assert_verifies(&server);
    // ...the pinned key does not, and names the checkpoint.
    let (code, lines) = verify_pinned(&server, &pinned);
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(
        lines.first().is_some_and(|l| l.starts_with(&format!(
            "position {}: checkpoint not signed by a trusted key",
            head - 1
        ))),
        "{lines:?}"
    );
    // The replaced key is another key.
    let (_, replaced) = pin_checkpoint_key(&server, "replaced.pem");
    assert_ne!(replaced, pem);

    // Deleting every checkpoint instead leaves nothing for the pinned key to vouch for.
    db.batch_execute("DELETE FROM chain_checkpoints")
        .await
        .unwrap();
    let (code, lines) = verify_pinned(&server, &pinned);
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(
        lines.first().is_some_and(|l| l.starts_with(&format!(
            "position {}: no checkpoint up to the head is signed by a trusted key",
            head - 1
        ))),
        "{lines:?}"
    );

    // A file holding no key is a usage error naming the file, not a verdict.
    let garbage = server.data_dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let output = server.replay(&["verify", "--trusted-key", garbage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("garbage.pem"));
}

/// Every occurrence of the people's personal values in `text`.
fn leaks<'a>(text: &str, values: &'a [String]) -> Vec<&'a str> {
    values
        .iter()
        .filter(|v| text.contains(v.as_str()))
        .map(String::as_str)
        .collect()
}

fn personal_values(i: usize) -> Vec<String> {
    vec![
        format!("person{i}.secret@example.com"),
        format!("6104123456{i:02}"),
        format!("Hedwig Quarrington {i}"),
        format!("person{i}"),
    ]
}

fn dump(server: &TestServer) -> String {
    let output = std::process::Command::new(pg_bin("pg_dump"))
        .arg("--dbname")
        .arg(server.database_url())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn replay_out(server: &TestServer, args: &[&str]) -> String {
    let output = server.replay(args);
    assert!(
        output.status.success(),
        "replay {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A webhook receiver that answers every request with its body: the response the log keeps
/// then holds the person's data too.
async fn echoing_receiver() -> String {
    let app =
        axum::Router::new().route("/hook", axum::routing::post(|body: String| async { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Person `i` leaves traces beyond the users table: a one-time token (magic link) for their
/// email, and a sign-in through the Experience API with a wrong password then the right one and
/// a mailed code entered wrong then right (interaction, lockout counter, message, session,
/// grant, a `PostSignIn` webhook).
async fn live_a_signed_in_life(server: &TestServer, mail: &SmtpServer, i: usize) {
    let email = format!("person{i}.secret@example.com");
    crate::one_time_tokens::create(server, json!({"email": email})).await;
    let app = crate::experience::app(server, "Traditional").await;
    let browser = Browser::new(server);
    browser.start(&app, "openid email profile", &[]).await;
    let username = format!("person{i}");
    browser
        .verify_password(&username, "Not-Their-Password-1")
        .await
        .expect_error(422, "session.invalid_credentials");
    browser
        .verify_password(&username, "Their-Password-1")
        .await
        .expect(200);
    let verification_id = browser.send_code_to(&email, "SignIn").await;
    let received = mail.wait_for(i + 1, Duration::from_secs(30)).await;
    let code = code_in(&received[i]);
    browser
        .verify_code_to(&email, &verification_id, other_code(&code))
        .await
        .expect_error(400, "verification_code.code_mismatch");
    browser
        .verify_code_to(&email, &verification_id, &code)
        .await
        .expect(200);
    browser.identify(&verification_id).await;
    browser.submit_and_resume(server).await;
}

#[tokio::test]
async fn erasure_shreds_a_persons_data_everywhere_but_keeps_the_facts_and_the_chain() {
    let server = TestServer::start().await;
    let receiver = echoing_receiver().await;
    let hook = server
        .post(
            "/api/hooks",
            json!({"name": "Audit", "config": {"url": receiver},
                   "events": ["User.Created", "User.Data.Updated", "User.Deleted", "PostSignIn"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = SmtpServer::start(Options::default());
    create_email_connector(&server, mail.config(templates("text/plain"))).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"signIn": {"methods": [
                {"identifier": "email", "password": false, "verificationCode": true,
                 "isPasswordPrimary": false},
                {"identifier": "username", "password": true, "verificationCode": false,
                 "isPasswordPrimary": true}]}}),
        )
        .await
        .expect(200);
    let ids = create_people(&server, 2).await;
    let (erased, kept) = (&ids[0], &ids[1]);
    for (i, id) in ids.iter().enumerate() {
        server
            .patch(
                &format!("/api/users/{id}/password"),
                json!({"password": "Their-Password-1"}),
            )
            .await
            .expect(200);
        live_a_signed_in_life(&server, &mail, i).await;
    }
    server
        .patch(
            &format!("/api/users/{erased}"),
            json!({"name": "Hedwig Quarrington 0"}),
        )
        .await
        .expect(200);
    server
        .patch(
            &format!("/api/users/{erased}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    let events_before: Vec<String> = server
        .events()
        .await
        .into_iter()
        .filter(|e| &e.stream_id == erased)
        .map(|e| e.event_type)
        .collect();

    crate::hooks::follower_caught_up(&server).await;
    let delivered = server.get(&format!("/api/hooks/{hook}/recent-logs")).await;
    assert!(
        leaks(&delivered.body.to_string(), &personal_values(0)).len() >= 2,
        "the webhook deliveries carried the person's data: {}",
        delivered.body
    );

    let reply = server
        .post(&format!("/api/users/{erased}/erase"), json!({}))
        .await;
    reply.expect(204);

    // Audited: the erasure is an event of the user's stream, with who erased and from where.
    let events = server.events().await;
    let erasure = events
        .iter()
        .find(|e| &e.stream_id == erased && e.event_type == "user.erased")
        .expect("user.erased recorded");
    assert_eq!(erasure.actor_kind, "app");
    assert_eq!(erasure.actor_id.as_deref(), Some(BOOTSTRAP_ID));
    assert!(erasure.request_id.is_some());
    assert!(
        erasure.ip.is_some(),
        "the eraser's IP is kept (it is not the person's)"
    );
    // The data key is gone; the row says when.
    let key = server
        .db()
        .await
        .query_one(
            "SELECT wrapped_key IS NULL, destroyed_at IS NOT NULL FROM data_keys WHERE subject_id = $1",
            &[erased],
        )
        .await
        .unwrap();
    assert!(key.get::<_, bool>(0) && key.get::<_, bool>(1));
    // So are the keys of the traces it names by id: the interaction they signed in through,
    // their address (its one-time token and mail), and the webhook deliveries about them.
    let traces = &erasure.payload;
    for (what, at_least) in [
        ("interactions", 1),
        ("addresses", 1),
        ("oneTimeTokens", 1),
        ("hookDeliveries", 2),
    ] {
        let named = traces[what].as_array().map_or(0, Vec::len);
        assert!(named >= at_least, "{what} in {traces}");
    }
    let subjects: Vec<String> = traces["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| format!("interaction:{}", id.as_str().unwrap()))
        .chain(
            traces["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned()),
        )
        .collect();
    let live: i64 = server
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM data_keys WHERE subject_id = ANY($1) AND wrapped_key IS NOT NULL",
            &[&subjects],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "{subjects:?}");
    // The webhook follower is not stuck on the deletion it cannot record about an erased person.
    crate::hooks::follower_caught_up(&server).await;

    // The user is gone from the API; erasing again or writing to them is refused.
    server
        .get(&format!("/api/users/{erased}"))
        .await
        .expect_error(404, "entity.not_found");
    server
        .post(&format!("/api/users/{erased}/erase"), json!({}))
        .await
        .expect_error(404, "entity.not_found");

    // Non-personal facts remain: every event, its type and time.
    let erased_events: Vec<String> = server
        .events()
        .await
        .into_iter()
        .filter(|e| &e.stream_id == erased)
        .map(|e| e.event_type)
        .collect();
    assert!(
        erased_events.starts_with(&events_before),
        "{erased_events:?}"
    );
    assert_eq!(
        erased_events.last().map(String::as_str),
        Some("user.erased")
    );

    let secrets = personal_values(0);
    // The other person is untouched (and proves the greps can find something).
    let dumped = dump(&server);
    assert_eq!(leaks(&dumped, &secrets), Vec::<&str>::new(), "pg_dump");
    assert!(
        leaks(&dumped, &personal_values(1)).len() >= 2,
        "the dump shows the kept user's data"
    );
    let exported = replay_out(&server, &["export"]);
    assert_eq!(leaks(&exported, &secrets), Vec::<&str>::new(), "export");
    assert!(exported.contains("user.erased"));
    assert!(exported.contains("person1.secret@example.com"));
    let csv = replay_out(&server, &["export", "--format", "csv"]);
    assert_eq!(leaks(&csv, &secrets), Vec::<&str>::new(), "csv export");
    let shown = server.replay(&["user", erased]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&shown.stdout),
        String::from_utf8_lossy(&shown.stderr)
    );
    assert_eq!(leaks(&shown, &secrets), Vec::<&str>::new(), "replay user");
    let history = server.get(&format!("/api/users/{erased}/history")).await;
    assert_eq!(
        leaks(&history.body.to_string(), &secrets),
        Vec::<&str>::new(),
        "history"
    );
    let logs = server.get("/api/logs?page_size=100").await;
    let logs = logs.expect(200).to_string();
    assert!(logs.contains("Interaction."), "the log lists the sign-ins");
    assert_eq!(leaks(&logs, &secrets), Vec::<&str>::new(), "logs");
    let delivered = server.get(&format!("/api/hooks/{hook}/recent-logs")).await;
    let delivered = delivered.expect(200).to_string();
    assert_eq!(leaks(&delivered, &secrets), Vec::<&str>::new(), "hook logs");
    assert!(
        leaks(&delivered, &personal_values(1)).len() >= 2,
        "the kept person's deliveries stay"
    );

    // The folds cope with payloads that no longer open: a rebuild gives the same read models,
    // and no personal value comes back.
    server.assert_replay_check();
    replay_out(&server, &["rebuild"]);
    assert_eq!(
        leaks(&dump(&server), &secrets),
        Vec::<&str>::new(),
        "after rebuild"
    );
    server.assert_replay_check();
    server.get(&format!("/api/users/{kept}")).await.expect(200);

    // Erasure destroyed a key, not a stored byte: the chain still verifies.
    assert_verifies(&server);

    // The address is not burnt: whoever uses it next gets its next key generation.
    let token =
        crate::one_time_tokens::create(&server, json!({"email": "person0.secret@example.com"}))
            .await;
    let subject: String = server
        .db()
        .await
        .query_one(
            "SELECT subject_id FROM events WHERE stream_id = $1",
            &[&token["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(subject.ends_with("#1"), "{subject}");
}

/// Whether the data key of each subject is still whole.
async fn keys_whole(server: &TestServer, subjects: &[String]) -> Vec<bool> {
    let db = server.db().await;
    let mut whole = Vec::new();
    for subject in subjects {
        let row = db
            .query_one(
                "SELECT wrapped_key IS NOT NULL FROM data_keys WHERE subject_id = $1",
                &[subject],
            )
            .await
            .unwrap();
        whole.push(row.get(0));
    }
    whole
}

#[tokio::test]
async fn erasure_reaches_abandoned_interactions_and_addresses_typed_only_in_a_sign_in() {
    let server = TestServer::start().await;
    let mail = SmtpServer::start(Options::default());
    create_email_connector(&server, mail.config(templates("text/plain"))).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"signIn": {"methods": [
                {"identifier": "email", "password": false, "verificationCode": true,
                 "isPasswordPrimary": false},
                {"identifier": "username", "password": true, "verificationCode": false,
                 "isPasswordPrimary": true}]}}),
        )
        .await
        .expect(200);
    let person = create_people(&server, 1).await.remove(0);
    server
        .patch(
            &format!("/api/users/{person}/password"),
            json!({"password": "Their-Password-1"}),
        )
        .await
        .expect(200);
    let app = crate::experience::app(&server, "Traditional").await;
    let address = "person0.secret@example.com";
    let typed_only = "person0.typed-only@example.com";
    let strangers = "stranger.abandoned@example.com";

    // 1. Mails a code to the person's address and is abandoned before it names an account.
    let abandoned = Browser::new(&server);
    abandoned.start(&app, "openid", &[]).await;
    abandoned.send_code_to(address, "SignIn").await;
    // 2. The person's sign-in, where they first asked for a code at an address no account has.
    let signed_in = Browser::new(&server);
    signed_in.start(&app, "openid", &[]).await;
    signed_in.send_code_to(typed_only, "SignIn").await;
    let verified = signed_in
        .verify_password("person0", "Their-Password-1")
        .await;
    let verification_id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    signed_in.identify(&verification_id).await;
    signed_in.submit_and_resume(&server).await;
    // 3. A stranger's abandoned interaction: not the person's to erase.
    let stranger = Browser::new(&server);
    stranger.start(&app, "openid", &[]).await;
    stranger.send_code_to(strangers, "SignIn").await;
    mail.wait_for(3, Duration::from_secs(30)).await;
    // 4. The person, renamed, tries their former username: no account has it any more, so the
    //    failure names none; abandoned.
    server
        .patch(
            &format!("/api/users/{person}"),
            json!({"username": "person0_renamed"}),
        )
        .await
        .expect(200);
    let former = Browser::new(&server);
    former.start(&app, "openid", &[]).await;
    former
        .verify_password("person0", "Their-Password-1")
        .await
        .expect_error(422, "session.invalid_credentials");

    let started: Vec<String> = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "interaction.started")
        .map(|e| e.stream_id)
        .collect();
    assert_eq!(started.len(), 4, "{started:?}");
    let subjects: Vec<String> = started.iter().map(|i| format!("interaction:{i}")).collect();
    assert_eq!(keys_whole(&server, &subjects).await, [true; 4]);
    // What finds the last one: the typed username's keyed hash, beside the sealed username.
    let failed = server
        .events()
        .await
        .into_iter()
        .find(|e| e.stream_id == started[3] && e.event_type == "interaction.verification_failed")
        .expect("the failed attempt is recorded");
    let key = failed.payload["identifierKey"].as_str().unwrap_or_default();
    assert_eq!(key.len(), 64, "{}", failed.payload);
    assert!(
        !failed.payload.to_string().contains("person0"),
        "{}",
        failed.payload
    );
    let exported = replay_out(&server, &["export"]);
    for value in [address, typed_only, strangers] {
        assert!(exported.contains(value), "the export shows {value} before");
    }

    server
        .post(&format!("/api/users/{person}/erase"), json!({}))
        .await
        .expect(204);

    let events = server.events().await;
    let erasure = events
        .iter()
        .find(|e| e.stream_id == person && e.event_type == "user.erased")
        .expect("user.erased recorded");
    let mut named: Vec<&str> = erasure.payload["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    named.sort_unstable();
    let mut expected = vec![
        started[0].as_str(),
        started[1].as_str(),
        started[3].as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(named, expected, "the person's interactions, and only those");
    assert_eq!(
        erasure.payload["addresses"].as_array().unwrap().len(),
        2,
        "their primary email and the address they typed: {}",
        erasure.payload
    );
    assert_eq!(
        keys_whole(&server, &subjects).await,
        [false, false, true, false]
    );

    let exported = replay_out(&server, &["export"]);
    for value in [address, typed_only, "\"person0\""] {
        assert!(!exported.contains(value), "the export still shows {value}");
    }
    assert!(exported.contains(strangers), "the stranger's data stays");
    let dumped = dump(&server);
    assert_eq!(leaks(&dumped, &personal_values(0)), Vec::<&str>::new());
    assert!(!dumped.contains(typed_only));
    server.assert_replay_check();
    assert_verifies(&server);
}

#[tokio::test]
async fn the_audit_report_of_the_test_data_is_photographed() {
    let python = crate::sdk_e2e::python();
    let server = TestServer::start().await;
    let ids = create_people(&server, 3).await;
    server
        .patch(
            &format!("/api/users/{}", ids[1]),
            json!({"name": "Renamed"}),
        )
        .await
        .expect(200);
    server
        .patch(
            &format!("/api/users/{}/is-suspended", ids[2]),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    server
        .post(&format!("/api/users/{}/erase", ids[0]), json!({}))
        .await
        .expect(204);

    // Untracked (under target/), kept after the run for a reviewer to look at.
    let artefacts = crate::sdk_e2e::workspace().join("target/artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let (html, png) = (
        artefacts.join("audit-report.html"),
        artefacts.join("audit-report.png"),
    );
    let _ = std::fs::remove_file(&png);
    let to = (now_s() * 1000 + 1000).to_string();
    replay_out(
        &server,
        &[
            "report",
            "--from",
            "2000-01-01",
            "--to",
            &to,
            "--out",
            html.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&html).unwrap();
    for (id, expected) in [("suspensions", 1), ("erasures", 1)] {
        assert!(
            text.contains(&format!("id=\"{id}\">{expected}<")),
            "{id} should be {expected}"
        );
    }
    assert_eq!(leaks(&text, &personal_values(0)), Vec::<&str>::new());

    let output = std::process::Command::new(&python)
        .args(["-m", "pytest", "tests/e2e/test_report.py"])
        .args(["-v", "-p", "no:cacheprovider", "--tb=short"])
        .current_dir(crate::sdk_e2e::workspace())
        .env("REPORT_HTML", &html)
        .env("SCREENSHOT", &png)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "no PNG at {}",
        png.display()
    );
}
