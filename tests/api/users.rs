//! `/api/users` (logto-compat §2): fields, search, pagination, uniqueness, passwords,
//! suspension, identities, roles, personal access tokens, and what the log keeps of it.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_ID, TestServer};

async fn create(server: &TestServer, body: Value) -> Value {
    server.post("/api/users", body).await.expect(200).clone()
}

fn id(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn create_returns_logtos_user_object_and_seals_personal_data() {
    let server = TestServer::start().await;
    let user = create(
        &server,
        json!({
            "primaryEmail": "ada@example.com",
            "primaryPhone": "610412345678",
            "username": "ada",
            "name": "Ada Lovelace",
            "avatar": "https://example.com/ada.png",
            "customData": {"plan": "pro"},
            "profile": {"givenName": "Ada", "address": {"country": "UK"}}
        }),
    )
    .await;
    assert_eq!(id(&user).len(), 12);
    assert_eq!(
        user["primaryPhone"], "61412345678",
        "E.164 digits, trunk zero dropped"
    );
    assert_eq!(user["hasPassword"], false);
    assert_eq!(user["isSuspended"], false);
    assert_eq!(user["identities"], json!({}));
    assert_eq!(user["lastSignInAt"], Value::Null);
    assert_eq!(user["applicationId"], Value::Null);
    assert!(user.get("passwordDigest").is_none());
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    for key in [
        "id",
        "username",
        "primaryEmail",
        "primaryPhone",
        "name",
        "avatar",
        "customData",
        "identities",
        "lastSignInAt",
        "createdAt",
        "updatedAt",
        "profile",
        "applicationId",
        "isSuspended",
        "hasPassword",
    ] {
        assert!(keys.iter().any(|k| *k == key), "missing {key}");
    }

    // Logto allows a user with no identifier at all.
    let empty = create(&server, json!({})).await;
    assert_eq!(empty["username"], Value::Null);

    let fetched = server.get(&format!("/api/users/{}", id(&user))).await;
    assert_eq!(fetched.expect(200)["name"], "Ada Lovelace");
    server
        .get("/api/users/nobody")
        .await
        .expect_error(404, "entity.not_found");

    // The log holds no personal value in the clear, yet reads back whole with the key.
    let stored = server.events().await;
    let created = stored
        .iter()
        .find(|e| e.event_type == "user.created" && e.stream_id == id(&user))
        .unwrap();
    let text = created.payload.to_string();
    for secret in ["ada@example.com", "Lovelace", "61412345678", "pro"] {
        assert!(!text.contains(secret), "{secret} in clear: {text}");
    }
    assert_eq!(created.ip, None, "IP sealed with the person's data");
    let recorded = server.recorded_events().await;
    let unsealed = recorded
        .iter()
        .find(|e| e.event_type == "user.created" && e.stream_id == id(&user))
        .unwrap();
    assert_eq!(unsealed.payload["primaryEmail"], "ada@example.com");
    assert_eq!(unsealed.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        unsealed.metadata.actor,
        domain::Actor::App(BOOTSTRAP_ID.into())
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn identifiers_are_validated_and_unique() {
    let server = TestServer::start().await;
    create(
        &server,
        json!({"primaryEmail": "Grace@Example.com", "username": "grace"}),
    )
    .await;
    server
        .post("/api/users", json!({"primaryEmail": "grace@example.COM"}))
        .await
        .expect_error(422, "user.email_already_in_use");
    server
        .post("/api/users", json!({"username": "grace"}))
        .await
        .expect_error(422, "user.username_already_in_use");
    create(&server, json!({"username": "Grace"})).await;
    create(&server, json!({"primaryPhone": "14155552671"})).await;
    server
        .post("/api/users", json!({"primaryPhone": "14155552671"}))
        .await
        .expect_error(422, "user.phone_already_in_use");
    server
        .post("/api/users", json!({"primaryPhone": "999"}))
        .await
        .expect_error(422, "user.invalid_phone");
    for bad in [
        json!({"primaryEmail": "not-an-email"}),
        json!({"username": "9lives"}),
        json!({"primaryPhone": "+14155552671"}),
        json!({"avatar": "not a url"}),
        json!({"profile": {"shoeSize": "42"}}),
        json!({"customData": []}),
    ] {
        server
            .post("/api/users", bad)
            .await
            .expect_error(400, "guard.invalid_input");
    }
    server
        .post(
            "/api/users",
            json!({"password": "a", "passwordDigest": "b"}),
        )
        .await
        .expect_error(400, "user.password_and_digest");
    server
        .post("/api/users", json!({"passwordDigest": "abc"}))
        .await
        .expect_error(400, "user.password_algorithm_required");
    server
        .post(
            "/api/users",
            json!({"passwordDigest": "[\"whirlpool\", [\"@\"], \"00\"]", "passwordAlgorithm": "Legacy"}),
        )
        .await
        .expect_error(400, "password.unsupported_legacy_hash_algorithm");
}

#[tokio::test]
async fn a_hundred_concurrent_creations_with_one_email_yield_one_user() {
    let server = Arc::new(TestServer::start().await);
    server.token().await;
    let before = server.events().await.len();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let email = if n % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            server
                .post("/api/users", json!({"primaryEmail": email}))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => created += 1,
            _ => reply.expect_error(422, "user.email_already_in_use"),
        }
    }
    assert_eq!(created, 1);
    let events = server.events().await;
    assert_eq!(events.len(), before + 1, "only the winner's event exists");
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=i64::try_from(events.len()).unwrap()).collect::<Vec<_>>()
    );
    let orphans: i64 = server
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM data_keys k WHERE NOT EXISTS \
             (SELECT 1 FROM events e WHERE e.subject_id = k.subject_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "no data key without an event");
    server.assert_replay_check();
}

#[tokio::test]
async fn search_modes_fields_and_pagination_headers() {
    let server = TestServer::start().await;
    for (username, email, name) in [
        ("alice", "alice@wonder.land", "Alice Liddell"),
        ("bob", "bob@builder.io", "Bob"),
        ("carol", "carol@wonder.land", "Carol"),
    ] {
        create(
            &server,
            json!({"username": username, "primaryEmail": email, "name": name}),
        )
        .await;
    }
    let names = |reply: &crate::support::Reply| -> Vec<String> {
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = server.get("/api/users").await;
    assert_eq!(names(&all), ["carol", "bob", "alice"], "newest first");
    assert_eq!(all.header("total-number"), Some("3"));

    let like = server.get("/api/users?search=%25wonder%25").await;
    assert_eq!(names(&like), ["carol", "alice"]);
    // Logto never adds wildcards itself.
    assert_eq!(
        names(&server.get("/api/users?search=wonder").await),
        Vec::<String>::new()
    );
    let field = server.get("/api/users?search.name=%25lid%25").await;
    assert_eq!(names(&field), ["alice"]);
    let camel = server.get("/api/users?search.primaryEmail=bob%25").await;
    assert_eq!(names(&camel), ["bob"]);
    let exact = server
        .get("/api/users?search.username=ALICE&mode.username=exact")
        .await;
    assert_eq!(names(&exact), ["alice"]);
    let sensitive = server
        .get("/api/users?search.username=ALICE&mode.username=exact&isCaseSensitive=true")
        .await;
    assert_eq!(names(&sensitive), Vec::<String>::new());
    let repeated = server
        .get("/api/users?search.username=alice&search.username=bob&mode=exact")
        .await;
    assert_eq!(names(&repeated), ["bob", "alice"]);
    let posix = server
        .get("/api/users?search.name=%5E(Bob|Carol)%24&mode=posix")
        .await;
    assert_eq!(names(&posix), ["carol", "bob"]);
    let similar = server
        .get("/api/users?search.name=(Bob|Carol)&mode=similar_to&isCaseSensitive=true")
        .await;
    assert_eq!(names(&similar), ["carol", "bob"]);
    let and = server
        .get("/api/users?search.username=%25o%25&search.primaryEmail=%25wonder%25&joint=and")
        .await;
    assert_eq!(names(&and), ["carol"]);
    let or = server
        .get("/api/users?search.username=%25o%25&search.primaryEmail=%25wonder%25")
        .await;
    assert_eq!(names(&or), ["carol", "bob", "alice"]);

    for (query, why) in [
        (
            "search.username=a&search.username=b",
            "repeated in like mode",
        ),
        ("search=", "empty value"),
        ("search.password=x", "unknown field"),
        ("search=a&mode=similar_to", "case-insensitive similar_to"),
        ("search=a&mode=fuzzy", "unknown mode"),
    ] {
        let reply = server.get(&format!("/api/users?{query}")).await;
        assert_eq!(reply.status.as_u16(), 400, "{why}: {}", reply.body);
        assert_eq!(reply.body["code"], "request.invalid_input", "{why}");
    }
    server
        .get("/api/users?page=0")
        .await
        .expect_error(400, "guard.invalid_pagination");

    let page = server
        .get("/api/users?page=2&page_size=1&search.username=%25o%25")
        .await;
    assert_eq!(names(&page), ["bob"]);
    assert_eq!(page.header("total-number"), Some("2"));
    let links: Vec<String> = page
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let base = format!("{}/users?", server.endpoint);
    assert_eq!(
        links,
        vec![
            format!("<{base}page=1&page_size=1&search.username=%25o%25>; rel=\"first\""),
            format!("<{base}page=1&page_size=1&search.username=%25o%25>; rel=\"prev\""),
            format!("<{base}page=2&page_size=1&search.username=%25o%25>; rel=\"last\""),
        ]
    );
}

#[tokio::test]
async fn updates_replace_merges_merge_and_deletion_keeps_history() {
    let server = TestServer::start().await;
    let user = create(
        &server,
        json!({"username": "dan", "customData": {"a": 1}, "profile": {"nickname": "D"}}),
    )
    .await;
    let uid = id(&user);
    let path = format!("/api/users/{uid}");
    let merged = server
        .patch(
            &format!("{path}/custom-data"),
            json!({"customData": {"b": 2}}),
        )
        .await;
    assert_eq!(merged.expect(200), &json!({"a": 1, "b": 2}));
    let profile = server
        .patch(
            &format!("{path}/profile"),
            json!({"profile": {"locale": "ja"}}),
        )
        .await;
    assert_eq!(
        profile.expect(200),
        &json!({"nickname": "D", "locale": "ja"})
    );
    let replaced = server
        .patch(
            &path,
            json!({"customData": {"c": 3}, "username": null, "name": "Dan"}),
        )
        .await;
    let body = replaced.expect(200);
    assert_eq!(body["customData"], json!({"c": 3}));
    assert_eq!(body["username"], Value::Null);
    assert_eq!(body["name"], "Dan");
    assert!(body["updatedAt"].as_i64().unwrap() >= body["createdAt"].as_i64().unwrap());
    server
        .patch(&path, json!({}))
        .await
        .expect_error(422, "entity.invalid_input");
    assert_eq!(
        server.get(&format!("{path}/custom-data")).await.expect(200),
        &json!({"c": 3})
    );

    let suspended = server
        .patch(
            &format!("{path}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await;
    assert_eq!(suspended.expect(200)["isSuspended"], true);
    let back = server
        .patch(
            &format!("{path}/is-suspended"),
            json!({"isSuspended": false}),
        )
        .await;
    assert_eq!(back.expect(200)["isSuspended"], false);

    server.delete(&path).await.expect(204);
    server
        .get(&path)
        .await
        .expect_error(404, "entity.not_found");
    server
        .delete(&path)
        .await
        .expect_error(404, "entity.not_found");
    let history: Vec<String> = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.stream_id == uid)
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        history,
        [
            "user.created",
            "user.custom_data_merged",
            "user.profile_merged",
            "user.updated",
            "user.suspended",
            "user.reactivated",
            "user.deleted"
        ]
    );
    // Management API changes appear in the activity log with the calling app.
    let logs = server
        .get(&format!("/api/logs?userId={uid}&page_size=50"))
        .await;
    let keys: Vec<String> = logs
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        keys.contains(&"ManagementApi.User.Create".to_owned()),
        "{keys:?}"
    );
    assert!(keys.contains(&"ManagementApi.User.Suspend".to_owned()));
    assert!(keys.contains(&"ManagementApi.User.Delete".to_owned()));
    let entry = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "ManagementApi.User.Update")
        .unwrap();
    assert_eq!(entry["payload"]["applicationId"], BOOTSTRAP_ID);
    assert_eq!(entry["payload"]["ip"], "127.0.0.1");
    server.assert_replay_check();
}

#[tokio::test]
async fn passwords_set_verify_generate_and_imports_rehash() {
    let server = TestServer::start().await;
    let user = create(
        &server,
        json!({"username": "eve", "password": "first-Pa55"}),
    )
    .await;
    let uid = id(&user);
    assert_eq!(user["hasPassword"], true);
    let verify = |password: &str| {
        let path = format!("/api/users/{uid}/password/verify");
        let body = json!({ "password": password });
        let server = &server;
        async move { server.post(&path, body).await }
    };
    verify("first-Pa55").await.expect(204);
    verify("wrong")
        .await
        .expect_error(422, "session.invalid_credentials");
    verify("").await.expect_error(400, "guard.invalid_input");
    server
        .patch(
            &format!("/api/users/{uid}/password"),
            json!({"password": "second-Pa55"}),
        )
        .await
        .expect(200);
    verify("first-Pa55")
        .await
        .expect_error(422, "session.invalid_credentials");
    verify("second-Pa55").await.expect(204);
    let hashed = server
        .get(&format!("/api/users/{uid}?includePasswordHash=true"))
        .await;
    assert_eq!(hashed.expect(200)["passwordAlgorithm"], "Argon2id");
    assert!(
        hashed.body["passwordDigest"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );

    let reset = server
        .patch(
            &format!("/api/users/{uid}/password"),
            json!({"generatePassword": true}),
        )
        .await;
    let generated = reset.expect(200)["generatedPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 20);
    verify(&generated).await.expect(204);
    assert!(
        server
            .get(&format!("/api/users/{uid}"))
            .await
            .body
            .get("generatedPassword")
            .is_none()
    );
    let born = create(
        &server,
        json!({"username": "fay", "generatePassword": true}),
    )
    .await;
    let initial = born["generatedPassword"].as_str().unwrap();
    server
        .post(
            &format!("/api/users/{}/password/verify", id(&born)),
            json!({"password": initial}),
        )
        .await
        .expect(204);

    let nopass = create(&server, json!({"username": "gil"})).await;
    assert_eq!(
        server
            .get(&format!("/api/users/{}/has-password", id(&nopass)))
            .await
            .expect(200),
        &json!({"hasPassword": false})
    );
    server
        .post(
            &format!("/api/users/{}/password/verify", id(&nopass)),
            json!({"password": "x"}),
        )
        .await
        .expect_error(422, "session.invalid_credentials");

    // Imported digests verify and are re-encoded as argon2id on success.
    let bcrypt = bcrypt::hash("imported-pw", 4).unwrap();
    let argon2i = {
        use argon2::PasswordHasher;
        argon2::Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password_with_salt(b"imported-pw", b"somesalt12345678")
        .unwrap()
        .to_string()
    };
    let imports = [
        ("Bcrypt", bcrypt),
        ("Argon2i", argon2i),
        ("SHA256", sha256_hex("imported-pw")),
        ("MD5", md5_hex("imported-pw")),
    ];
    for (algorithm, digest) in imports {
        let imported = create(
            &server,
            json!({"passwordDigest": digest, "passwordAlgorithm": algorithm}),
        )
        .await;
        let iid = id(&imported);
        server
            .post(
                &format!("/api/users/{iid}/password/verify"),
                json!({"password": "nope"}),
            )
            .await
            .expect_error(422, "session.invalid_credentials");
        server
            .post(
                &format!("/api/users/{iid}/password/verify"),
                json!({"password": "imported-pw"}),
            )
            .await
            .expect(204);
        let after = server
            .get(&format!("/api/users/{iid}?includePasswordHash=1"))
            .await;
        assert_eq!(
            after.expect(200)["passwordAlgorithm"],
            "Argon2id",
            "{algorithm} rehashed"
        );
        server
            .post(
                &format!("/api/users/{iid}/password/verify"),
                json!({"password": "imported-pw"}),
            )
            .await
            .expect(204);
    }
    // No password value in the log, even sealed: only digests, under the user's key.
    for event in server.recorded_events().await {
        let text = event.payload.to_string();
        assert!(
            !text.contains("first-Pa55") && !text.contains("imported-pw"),
            "{text}"
        );
    }
    server.assert_replay_check();
}

fn sha256_hex(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn md5_hex(text: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn identities_roles_and_personal_access_tokens() {
    let server = TestServer::start().await;
    let user = create(&server, json!({"username": "hal"})).await;
    let uid = id(&user);
    let base = format!("/api/users/{uid}");

    let linked = server
        .put(
            &format!("{base}/identities/github"),
            json!({"userId": "gh-1", "details": {"login": "hal"}}),
        )
        .await;
    assert_eq!(linked.status.as_u16(), 201);
    assert_eq!(linked.body["github"]["userId"], "gh-1");
    let relinked = server
        .put(
            &format!("{base}/identities/github"),
            json!({"userId": "gh-1"}),
        )
        .await;
    assert_eq!(relinked.status.as_u16(), 200);
    let one = server.get(&format!("{base}/identities/github")).await;
    assert_eq!(one.expect(200)["identity"]["userId"], "gh-1");
    let all = server.get(&format!("{base}/all-identities")).await;
    assert_eq!(all.expect(200)["socialIdentities"][0]["target"], "github");
    let other = create(&server, json!({"username": "ivy"})).await;
    server
        .put(
            &format!("/api/users/{}/identities/github", id(&other)),
            json!({"userId": "gh-1"}),
        )
        .await
        .expect_error(422, "user.identity_already_in_use");
    // hal keeps no other way in (a username without a password), yet Logto's Management API
    // removes the identity: only the Account API refuses the last sign-in method.
    let removed = server.delete(&format!("{base}/identities/github")).await;
    assert_eq!(removed.expect(200)["identities"], json!({}));
    server
        .delete(&format!("{base}/identities/github"))
        .await
        .expect_error(404, "user.identity_not_exist");

    let role = server
        .post(
            "/api/roles",
            json!({"name": "editor", "description": "edits"}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    let m2m = server
        .post(
            "/api/roles",
            json!({"name": "robot", "description": "m2m", "type": "MachineToMachine"}),
        )
        .await;
    let m2m_id = m2m.expect(200)["id"].as_str().unwrap().to_owned();
    let assigned = server
        .post(
            &format!("{base}/roles"),
            json!({"roleIds": [role_id, role_id]}),
        )
        .await;
    assert_eq!(
        assigned.expect(201),
        &json!({"roleIds": [role_id], "addedRoleIds": [role_id]})
    );
    let again = server
        .post(&format!("{base}/roles"), json!({"roleIds": [role_id]}))
        .await;
    assert_eq!(again.expect(201)["addedRoleIds"], json!([]));
    let wrong = server
        .post(&format!("{base}/roles"), json!({"roleIds": [m2m_id]}))
        .await;
    wrong.expect_error(422, "user.invalid_role_type");
    assert_eq!(wrong.body["data"]["roleId"], m2m_id.as_str());
    server
        .post(&format!("{base}/roles"), json!({"roleIds": ["missing"]}))
        .await
        .expect_error(404, "entity.not_exists_with_id");
    let held = server.get(&format!("{base}/roles")).await;
    assert_eq!(held.expect(200)[0]["name"], "editor");
    let roles = server.get("/api/roles?type=User").await;
    let editor = roles
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "editor")
        .unwrap()
        .clone();
    assert_eq!(editor["usersCount"], 1);
    assert_eq!(editor["featuredUsers"][0]["id"], uid.as_str());
    let holders = server.get(&format!("/api/roles/{role_id}/users")).await;
    assert_eq!(holders.expect(200)[0]["id"], uid.as_str());
    server
        .put(&format!("{base}/roles"), json!({"roleIds": []}))
        .await
        .expect(200);
    server
        .delete(&format!("{base}/roles/{role_id}"))
        .await
        .expect_error(404, "entity.not_found");

    // A default role reaches every new user.
    let default = server
        .post(
            "/api/roles",
            json!({"name": "member", "description": "all", "isDefault": true}),
        )
        .await;
    let default_id = default.expect(200)["id"].as_str().unwrap().to_owned();
    let newcomer = create(&server, json!({"username": "joe"})).await;
    let newcomer_roles = server
        .get(&format!("/api/users/{}/roles", id(&newcomer)))
        .await;
    assert_eq!(newcomer_roles.expect(200)[0]["id"], default_id.as_str());

    let pat = server
        .post(
            &format!("{base}/personal-access-tokens"),
            json!({"name": "ci"}),
        )
        .await;
    let value = pat.expect(201)["value"].as_str().unwrap().to_owned();
    assert!(value.starts_with("pat_") && value.len() == 36, "{value}");
    assert_eq!(pat.body["userId"], uid.as_str());
    server
        .post(
            &format!("{base}/personal-access-tokens"),
            json!({"name": "ci"}),
        )
        .await
        .expect_error(422, "user.personal_access_token_name_exists");
    server
        .post(
            &format!("{base}/personal-access-tokens"),
            json!({"name": "old", "expiresAt": 1}),
        )
        .await
        .expect_error(400, "request.invalid_input");
    let listed = server.get(&format!("{base}/personal-access-tokens")).await;
    assert_eq!(listed.expect(200)[0]["value"], value.as_str());
    let renamed = server
        .patch(
            &format!("{base}/personal-access-tokens"),
            json!({"currentName": "ci", "name": "deploy"}),
        )
        .await;
    assert_eq!(renamed.expect(200)["name"], "deploy");
    let legacy = server
        .patch(
            &format!("{base}/personal-access-tokens/deploy"),
            json!({"name": "release"}),
        )
        .await;
    assert_eq!(legacy.expect(200)["value"], value.as_str());
    server
        .post(
            &format!("{base}/personal-access-tokens/delete"),
            json!({"name": "release"}),
        )
        .await
        .expect(204);
    server
        .delete(&format!("{base}/personal-access-tokens/release"))
        .await
        .expect_error(404, "entity.not_found");
    let vault: i64 = server
        .db()
        .await
        .query_one("SELECT count(*) FROM vault WHERE ref LIKE 'pat-%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(vault, 0, "a deleted token's value is destroyed");
    for event in server.events().await {
        assert!(!event.payload.to_string().contains(&value));
    }
    server.assert_replay_check();
}

/// The list's index-shaped conditions (issue 5) keep Logto's meaning: `_` stays a wildcard in
/// `like` and a plain character in `exact`, case-insensitive `exact` matches whole values on
/// any column, and `Total-Number` stays exact without a search (the projection's own count,
/// through a deletion) and past the last page of a search.
#[tokio::test]
async fn index_shaped_searches_keep_logtos_meaning_and_exact_totals() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for (username, name) in [
        ("seed_1", "Bench One"),
        ("seedx1", "Bench Onex"),
        ("seed_12", "Bench Twelve"),
        ("Seed_123", "Other"),
    ] {
        let user = create(&server, json!({"username": username, "name": name})).await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let names = |reply: &crate::support::Reply| -> Vec<String> {
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let like = server.get("/api/users?search=%25seed_12%25").await;
    assert_eq!(names(&like), ["Seed_123", "seed_12"]);
    assert_eq!(like.header("total-number"), Some("2"));
    // `_` is a wildcard in `like`: `seed_1` also matches `seedx1`.
    let wildcard = server.get("/api/users?search.username=seed_1").await;
    assert_eq!(names(&wildcard), ["seedx1", "seed_1"]);
    let sensitive = server
        .get("/api/users?search.username=%25seed_12%25&isCaseSensitive=true")
        .await;
    assert_eq!(names(&sensitive), ["seed_12"]);
    // In `exact` it is a character; case is ignored unless asked for.
    let exact = server
        .get("/api/users?search.username=SEED_1&mode.username=exact")
        .await;
    assert_eq!(names(&exact), ["seed_1"]);
    let exact_name = server
        .get("/api/users?search.name=bench%20one&mode.name=exact")
        .await;
    assert_eq!(names(&exact_name), ["seed_1"]);
    let bare_exact = server.get("/api/users?search=seed_123&mode=exact").await;
    assert_eq!(names(&bare_exact), ["Seed_123"]);
    let past = server
        .get("/api/users?search=%25seed%25&page=9&page_size=2")
        .await;
    assert_eq!(names(&past), Vec::<String>::new());
    assert_eq!(past.header("total-number"), Some("4"));

    assert_eq!(
        server.get("/api/users").await.header("total-number"),
        Some("4")
    );
    server
        .delete(&format!("/api/users/{}", ids[1]))
        .await
        .expect(204);
    let all = server.get("/api/users?page_size=1").await;
    assert_eq!(names(&all), ["Seed_123"]);
    assert_eq!(all.header("total-number"), Some("3"));
    server.assert_replay_check();
}
