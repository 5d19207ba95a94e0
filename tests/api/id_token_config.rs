//! `/api/configs/id-token` (logto-compat §9, "Scopes → claims"): Logto's seed, replacing the
//! setting, refusing unknown claim names, and ID tokens from a real code flow carrying only the
//! enabled extended claims while userinfo keeps every claim of the granted scopes.

use serde_json::{Value, json};

use crate::browser::{Browser, code_of};
use crate::oidc_flows::{Client, Tokens, tokens, userinfo, verified};
use crate::support::{BOOTSTRAP_ID, TestServer};

const PATH: &str = "/api/configs/id-token";
const PASSWORD: &str = "Correct-Horse-42";

fn logto_seed() -> Value {
    json!({"enabledExtendedClaims": ["roles", "organizations", "organization_roles"]})
}

#[tokio::test]
async fn the_setting_is_seeded_replaced_validated_and_survives_a_restart() {
    let mut server = TestServer::start().await;
    assert_eq!(server.get(PATH).await.expect(200), &logto_seed());

    let chosen = json!({"enabledExtendedClaims": ["custom_data", "roles", "organization_data"]});
    assert_eq!(server.put(PATH, chosen.clone()).await.expect(200), &chosen);
    assert_eq!(server.get(PATH).await.expect(200), &chosen);

    for bad in [
        json!({"enabledExtendedClaims": ["email"]}),
        json!({"enabledExtendedClaims": ["roles", "Roles"]}),
        json!({"enabledExtendedClaims": "roles"}),
        json!({"enabledExtendedClaims": [null]}),
    ] {
        let refused = server.put(PATH, bad.clone()).await;
        refused.expect_error(400, "guard.invalid_input");
        assert!(
            refused.body["details"]
                .to_string()
                .contains("enabledExtendedClaims"),
            "{bad} -> {}",
            refused.body
        );
    }
    assert_eq!(server.get(PATH).await.expect(200), &chosen);

    // Logto's guard strips unknown keys; without the list no extended claim is enabled.
    let emptied = server.put(PATH, json!({"somethingElse": true})).await;
    assert_eq!(emptied.expect(200), &json!({}));
    // Putting the same setting again records nothing.
    server.put(PATH, json!({})).await.expect(200);

    let recorded: Vec<_> = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "id_token_config.replaced")
        .collect();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert_eq!(recorded[0].actor_kind, "system");
    assert_eq!(recorded[0].payload, logto_seed());
    for (event, payload) in recorded[1..].iter().zip([chosen, json!({})]) {
        assert_eq!(event.actor_kind, "app");
        assert_eq!(event.actor_id.as_deref(), Some(BOOTSTRAP_ID));
        assert!(
            event.ip.is_some() && event.request_id.is_some(),
            "{event:?}"
        );
        assert_eq!(event.payload, payload);
    }

    // The seed at every start must not undo the administrator's choice.
    server.restart();
    assert_eq!(server.get(PATH).await.expect(200), &json!({}));
    server.assert_replay_check();
}

/// The claims of the ID token a token endpoint answer carries, verified as a relying party does.
async fn id_token_claims(server: &TestServer, client: &Client, issued: &Tokens) -> Value {
    let id_token = issued.id_token.as_deref().expect("an ID token");
    verified(server, id_token, &client.id).await.0
}

#[tokio::test]
async fn id_tokens_carry_only_the_enabled_extended_claims_and_userinfo_all() {
    let server = TestServer::start().await;
    let spa = Client::create(&server, "SPA", false).await;
    let created = server
        .post(
            "/api/users",
            json!({"username": "grace", "password": PASSWORD, "customData": {"team": "navy"}}),
        )
        .await;
    let grace = created.expect(200)["id"].as_str().unwrap().to_owned();
    let role = server.post(
        "/api/roles",
        json!({"name": "admiral", "description": "commands"}),
    );
    let role_id = role.await.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/users/{grace}/roles"),
            json!({"roleIds": [role_id]}),
        )
        .await
        .expect(201);

    let browser = Browser::new(&server);
    let started = browser
        .authorize(
            &spa,
            "openid roles custom_data offline_access",
            &[("prompt", "consent")],
        )
        .await;
    let answered = browser.sign_in_with_api(&started, "grace", PASSWORD).await;
    let mut issued = tokens(&spa.redeem(&server, &code_of(&server, &answered)).await);

    // Logto's seed: roles, but not custom data, although both scopes were granted.
    let claims = id_token_claims(&server, &spa, &issued).await;
    assert_eq!(claims["roles"], json!(["admiral"]), "{claims}");
    assert!(claims.get("custom_data").is_none(), "{claims}");

    server
        .put(
            PATH,
            json!({"enabledExtendedClaims": ["custom_data", "organizations"]}),
        )
        .await
        .expect(200);
    issued = tokens(
        &spa.refresh(&server, issued.refresh.as_deref().unwrap())
            .await,
    );
    let claims = id_token_claims(&server, &spa, &issued).await;
    assert!(claims.get("roles").is_none(), "{claims}");
    assert_eq!(claims["custom_data"], json!({"team": "navy"}), "{claims}");
    // Enabled, but its scope was not granted.
    assert!(claims.get("organizations").is_none(), "{claims}");
    let info = userinfo(&server, &issued.access).await;
    assert_eq!(info.expect(200)["roles"], json!(["admiral"]));
    assert_eq!(info.body["custom_data"], json!({"team": "navy"}));

    server.put(PATH, json!({})).await.expect(200);
    issued = tokens(
        &spa.refresh(&server, issued.refresh.as_deref().unwrap())
            .await,
    );
    let claims = id_token_claims(&server, &spa, &issued).await;
    assert!(
        claims.get("roles").is_none() && claims.get("custom_data").is_none(),
        "{claims}"
    );
    assert_eq!(claims["sub"], grace.as_str());
    let info = userinfo(&server, &issued.access).await;
    assert_eq!(info.expect(200)["roles"], json!(["admiral"]));
}
