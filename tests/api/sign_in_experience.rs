//! The sign-in experience (`/api/sign-in-exp` and its public copy) and the brute-force counters
//! every node shares.

use domain::sign_in_experience::SentinelPolicy;
use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_ID, TestServer, database_url, fresh_database};

const EXP: &str = "/api/sign-in-exp";

async fn experience_events(server: &TestServer) -> Vec<crate::support::StoredEvent> {
    server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("sign_in_experience."))
        .collect()
}

#[tokio::test]
async fn a_fresh_server_serves_logtos_default_to_admins_and_sign_in_pages() {
    let server = TestServer::start().await;
    let body = server.get(EXP).await.expect(200).clone();
    assert_eq!(
        (body["tenantId"].as_str(), body["id"].as_str()),
        (Some("default"), Some("default"))
    );
    assert_eq!(
        body["signUp"],
        json!({"identifiers": ["username"], "password": true, "verify": false})
    );
    assert_eq!(
        body["signIn"],
        json!({"methods": [{"identifier": "username", "password": true,
            "verificationCode": false, "isPasswordPrimary": true}]})
    );
    assert_eq!(body["signInMode"], "SignInAndRegister");
    assert_eq!(
        body["mfa"],
        json!({"factors": [], "policy": "UserControlled"})
    );
    assert_eq!(
        body["sentinelPolicy"],
        json!({"maxAttempts": 100, "lockoutDuration": 60})
    );
    assert_eq!(
        body["verificationCodePolicy"],
        json!({"expirationDuration": 600, "maxRetryAttempts": 10})
    );
    assert_eq!(
        body["passwordPolicy"]["length"],
        json!({"min": 8, "max": 256})
    );
    assert_eq!(body["languageInfo"]["fallbackLanguage"], "en");
    assert!(body["termsOfUseUrl"].is_null());

    // The Management API needs a token; the sign-in pages' copy does not.
    server
        .call_with(None, EXP)
        .await
        .expect_error(401, "auth.authorization_header_missing");
    let public = server
        .call_with(None, "/api/.well-known/sign-in-exp")
        .await
        .expect(200)
        .clone();
    assert_eq!(public["signUp"], body["signUp"]);
    assert_eq!(
        public["forgotPassword"],
        json!({"email": false, "phone": false})
    );
    assert_eq!(public["socialConnectors"], json!([]));
    assert!(public.get("emailBlocklistPolicy").is_none());
    assert!(public.get("forgotPasswordMethods").is_none());

    // Nothing was recorded: the default needs no seeding event.
    assert!(experience_events(&server).await.is_empty());
    let swagger = server.call_with(None, "/api/swagger.json").await;
    let paths = &swagger.expect(200)["paths"];
    for path in [
        EXP,
        "/api/sign-in-exp/default/check-password",
        "/api/.well-known/sign-in-exp",
    ] {
        assert!(paths.get(path).is_some(), "{path} is documented");
    }
}

#[tokio::test]
async fn a_patch_replaces_the_keys_it_names_and_records_the_whole_object() {
    let server = TestServer::start().await;
    let color = json!({"primaryColor": "#112233", "isDarkModeEnabled": true,
        "darkPrimaryColor": "#445566"});
    let reply = server
        .http
        .patch(server.url(EXP))
        .bearer_auth(server.token().await)
        .header("x-request-id", "sie-patch-1")
        .json(&json!({
            "signInMode": "SignIn",
            "color": color,
            "sentinelPolicy": {"maxAttempts": 5, "lockoutDuration": 15},
            "passwordPolicy": {"length": {"min": 12}},
            "termsOfUseUrl": "https://example.com/terms",
        }))
        .send()
        .await
        .unwrap();
    let reply = crate::support::Reply::from(reply).await;
    let body = reply.expect(200).clone();
    assert_eq!(body["signInMode"], "SignIn");
    assert_eq!(body["color"], color);
    assert_eq!(
        body["sentinelPolicy"],
        json!({"maxAttempts": 5, "lockoutDuration": 15})
    );
    // A partial password policy is completed with Logto's defaults.
    assert_eq!(
        body["passwordPolicy"]["length"],
        json!({"min": 12, "max": 256})
    );
    assert_eq!(body["passwordPolicy"]["rejects"]["userInfo"], true);
    assert_eq!(body["termsOfUseUrl"], "https://example.com/terms");
    // Keys the PATCH did not name keep their values.
    assert_eq!(body["signUp"]["identifiers"], json!(["username"]));
    assert_eq!(server.get(EXP).await.expect(200), &body);
    assert_eq!(
        server
            .call_with(None, "/api/.well-known/sign-in-exp")
            .await
            .expect(200)["signInMode"],
        "SignIn"
    );

    let events = experience_events(&server).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, "sign_in_experience.updated");
    assert_eq!(event.stream_id, "default");
    assert_eq!(event.actor_kind, "app");
    assert_eq!(event.actor_id.as_deref(), Some(BOOTSTRAP_ID));
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.request_id.as_deref(), Some("sie-patch-1"));
    let mut recorded = body.clone();
    let object = recorded.as_object_mut().unwrap();
    object.remove("tenantId");
    object.remove("id");
    assert_eq!(
        event.payload, recorded,
        "the event carries the whole object"
    );

    // The same values again change nothing and record nothing; `id` from a GET is tolerated.
    server
        .patch(
            EXP,
            json!({"id": "default", "signInMode": "SignIn", "color": color}),
        )
        .await
        .expect(200);
    assert_eq!(experience_events(&server).await.len(), 1);
    // Null clears a nullable key.
    let cleared = server.patch(EXP, json!({"termsOfUseUrl": null})).await;
    assert!(cleared.expect(200)["termsOfUseUrl"].is_null());
    assert_eq!(experience_events(&server).await.len(), 2);
    server.assert_replay_check();
}

#[tokio::test]
async fn invalid_patches_get_logtos_codes_and_record_nothing() {
    let server = TestServer::start().await;
    let method = |identifier: &str, password: bool, code: bool| {
        json!({"identifier": identifier, "password": password, "verificationCode": code,
            "isPasswordPrimary": password})
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"signInModes": "SignIn"}), 400, "guard.invalid_input"),
        (json!({"color": null}), 400, "guard.invalid_input"),
        (
            json!({"signInMode": "Anything"}),
            400,
            "guard.invalid_input",
        ),
        (
            json!({"color": {"primaryColor": "blue", "isDarkModeEnabled": false,
            "darkPrimaryColor": "#000"}}),
            400,
            "guard.invalid_input",
        ),
        (
            json!({"verificationCodePolicy": {"expirationDuration": 10}}),
            400,
            "guard.invalid_input",
        ),
        (
            json!({"supportEmail": "not-an-email"}),
            400,
            "guard.invalid_input",
        ),
        (
            json!({"signUp": {"identifiers": ["username", "username"], "password": true,
            "verify": false}}),
            400,
            "sign_in_experiences.duplicated_sign_up_identifiers",
        ),
        (
            json!({"signUp": {"identifiers": [], "password": true, "verify": false,
            "secondaryIdentifiers": [{"identifier": "username"}]}}),
            400,
            "sign_in_experiences.missing_sign_up_identifiers",
        ),
        (
            json!({"signUp": {"identifiers": ["email"], "password": false, "verify": false}}),
            400,
            "sign_in_experiences.passwordless_requires_verify",
        ),
        (
            json!({"signUp": {"identifiers": ["email"], "password": false, "verify": true}}),
            400,
            "sign_in_experiences.enabled_connector_not_found",
        ),
        (
            json!({"signIn": {"methods": [method("email", false, true)]}}),
            400,
            "sign_in_experiences.enabled_connector_not_found",
        ),
        (
            json!({"signIn": {"methods": [method("username", false, false)]}}),
            400,
            "sign_in_experiences.at_least_one_authentication_factor",
        ),
        (
            json!({"signUp": {"identifiers": ["username"], "password": false, "verify": true},
            "signIn": {"methods": [method("email", true, false)]}}),
            400,
            "sign_in_experiences.code_sign_in_must_be_enabled",
        ),
        (
            json!({"mfa": {"factors": ["BackupCode"], "policy": "UserControlled"}}),
            400,
            "sign_in_experiences.backup_code_cannot_be_enabled_alone",
        ),
        (
            json!({"mfa": {"factors": ["Totp", "Totp"], "policy": "UserControlled"}}),
            400,
            "sign_in_experiences.duplicated_mfa_factors",
        ),
        (
            json!({"mfa": {"factors": ["Totp"], "policy": "PromptOnlyAtSignInMandatory"}}),
            422,
            "sign_in_experiences.non_adaptive_mfa_requires_skippable_policy",
        ),
        (
            json!({"forgotPasswordMethods": ["EmailVerificationCode"]}),
            400,
            "sign_in_experiences.forgot_password_method_requires_connector",
        ),
        (
            json!({"passwordExpiration": {"enabled": true, "validPeriodDays": 90}}),
            422,
            "sign_in_experiences.password_expiration_requires_forgot_password",
        ),
        (
            json!({"languageInfo": {"autoDetect": true, "fallbackLanguage": "xx"}}),
            400,
            "sign_in_experiences.unsupported_default_language",
        ),
        (
            json!({"hideLogtoBranding": true}),
            400,
            "request.invalid_input",
        ),
    ];
    for (body, status, code) in cases {
        let reply = server.patch(EXP, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{body}");
        assert!(reply.body["message"].is_string());
    }
    let missing = server
        .patch(
            EXP,
            json!({"signUp": {"identifiers": ["email"], "password": false, "verify": true}}),
        )
        .await;
    assert_eq!(
        missing.body["message"],
        "Enabled Email connector not found."
    );

    // Usernames that differ only by case block the switch to case-insensitive usernames.
    for username in ["Alice", "alice"] {
        server
            .post("/api/users", json!({"username": username}))
            .await
            .expect(200);
    }
    let policy = json!({"usernamePolicy": {"caseSensitive": false, "minLength": 1,
        "maxLength": 128, "allowedChars": {"lowercase": true, "uppercase": true,
        "numbers": true, "underscore": true}}});
    let conflict = server.patch(EXP, policy).await;
    conflict.expect_error(
        409,
        "sign_in_experiences.username_policy_case_conflicts_exist",
    );
    assert_eq!(conflict.body["data"]["totalConflicts"], 1);
    assert_eq!(
        conflict.body["data"]["samples"][0]["usernameLower"],
        "alice"
    );
    let listed = server
        .get("/api/sign-in-exp/username-policy/case-sensitivity-conflicts?limit=5")
        .await;
    assert_eq!(listed.expect(200), &conflict.body["data"]);
    server
        .get("/api/sign-in-exp/username-policy/case-sensitivity-conflicts?limit=0")
        .await
        .expect_error(400, "guard.invalid_input");

    assert!(experience_events(&server).await.is_empty());
    assert_eq!(
        server.get(EXP).await.expect(200)["signInMode"],
        "SignInAndRegister"
    );
}

#[tokio::test]
async fn check_password_applies_the_policy_in_force() {
    let server = TestServer::start().await;
    let check = "/api/sign-in-exp/default/check-password";
    // Rejecting user information needs a user to compare with.
    let refused = server.post(check, json!({"password": "johnny13"})).await;
    refused.expect_error(400, "request.invalid_input");
    assert_eq!(
        refused.body["data"]["message"],
        "User information data is required to check user information."
    );

    server
        .patch(
            EXP,
            json!({"passwordPolicy": {"length": {"min": 8, "max": 64},
                "characterTypes": {"min": 3},
                "rejects": {"pwned": true, "repetitionAndSequence": true, "userInfo": true}}}),
        )
        .await
        .expect(200);
    let user = server.post("/api/users", json!({"name": "Johnny"})).await;
    let user_id = user.expect(200)["id"].as_str().unwrap().to_owned();

    let weak = server
        .post(check, json!({"password": "123", "userId": user_id}))
        .await;
    assert_eq!(
        weak.expect(400),
        &json!({"result": false, "issues": [
            {"code": "password_rejected.too_short", "interpolation": {"min": 8}},
            {"code": "password_rejected.character_types", "interpolation": {"min": 3}},
            {"code": "password_rejected.restricted.sequence"},
        ]})
    );
    let personal = server
        .post(check, json!({"password": "johnny13", "userId": user_id}))
        .await;
    let codes: Vec<&str> = personal.expect(400)["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "password_rejected.character_types",
            "password_rejected.restricted.user_info"
        ]
    );
    let strong = server
        .post(
            check,
            json!({"password": "Vq7!rT2#pLm9", "userId": user_id}),
        )
        .await;
    assert_eq!(strong.expect(200), &json!({"result": true}));
    server
        .post(
            check,
            json!({"password": "Vq7!rT2#pLm9", "userId": "nobody"}),
        )
        .await
        .expect_error(404, "entity.not_found");
}

async fn pool() -> deadpool_postgres::Pool {
    let url = database_url(&fresh_database().await);
    idledger::app::pool(&url, 16).unwrap()
}

/// Ten seconds into a minute-long window: every hit at `NOW` falls in the same one.
const NOW: i64 = 1_699_999_990_000;

#[tokio::test]
async fn concurrent_hits_on_one_key_pass_exactly_the_limit() {
    let pool = pool().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                idledger::sentinel::hit(&pool, "test", "client-a", 10, 60, NOW).await
            })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => passed += 1,
            Err(limited) => assert_eq!(limited.retry_after_secs, 50),
        }
    }
    assert_eq!(passed, 10);
    // Other keys, other buckets and the next window count on their own.
    assert!(
        idledger::sentinel::hit(&pool, "test", "client-b", 10, 60, NOW)
            .await
            .is_ok()
    );
    assert!(
        idledger::sentinel::hit(&pool, "other", "client-a", 10, 60, NOW)
            .await
            .is_ok()
    );
    assert!(
        idledger::sentinel::hit(&pool, "test", "client-a", 10, 60, NOW + 50_000)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn concurrent_failures_lock_an_identifier_once_for_everyone() {
    let pool = pool().await;
    let policy = SentinelPolicy {
        max_attempts: 5,
        lockout_duration: 10,
    };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, policy) = (pool.clone(), policy.clone());
            tokio::spawn(async move {
                idledger::sentinel::record_failure(&pool, "hashed-id", &policy, NOW).await
            })
        })
        .collect();
    let mut unlocked = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_none() {
            unlocked += 1;
        }
    }
    assert_eq!(
        unlocked, 4,
        "the fifth failure locks, and every later one sees the lock"
    );
    let locked = idledger::sentinel::check_lockout(&pool, "hashed-id", NOW + 1000).await;
    assert_eq!(locked.unwrap_err().retry_after_secs, 599);
    // A success elsewhere does not lift a lock in force; the lock runs out on its own.
    idledger::sentinel::clear(&pool, "hashed-id").await.unwrap();
    assert!(
        idledger::sentinel::check_lockout(&pool, "hashed-id", NOW + 1000)
            .await
            .is_err()
    );
    assert!(
        idledger::sentinel::check_lockout(&pool, "other-id", NOW)
            .await
            .is_ok()
    );
    let later = NOW + 600_000;
    assert!(
        idledger::sentinel::check_lockout(&pool, "hashed-id", later)
            .await
            .is_ok()
    );
    let again = idledger::sentinel::record_failure(&pool, "hashed-id", &policy, later).await;
    assert_eq!(again.unwrap(), None, "counting starts afresh after a lock");
    // A success forgets the failures.
    idledger::sentinel::clear(&pool, "hashed-id").await.unwrap();
    for _ in 0..4 {
        let failure = idledger::sentinel::record_failure(&pool, "hashed-id", &policy, later).await;
        assert_eq!(failure.unwrap(), None);
    }
}
