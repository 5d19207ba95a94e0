//! `/api/applications`: routes, status codes and errors of logto-compat §5.

use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_ID, MANAGEMENT_API, TestServer};

async fn create(server: &TestServer, body: Value) -> Value {
    server
        .post("/api/applications", body)
        .await
        .expect(200)
        .clone()
}

#[tokio::test]
async fn create_get_update_delete() {
    let server = TestServer::start().await;
    let app = create(
        &server,
        json!({
            "name": "Billing",
            "type": "SPA",
            "description": "the billing portal",
            "oidcClientMetadata": {
                "redirectUris": ["https://billing.example.com/callback", "io.example.app:/cb"],
                "postLogoutRedirectUris": []
            },
            "customClientMetadata": {"idTokenTtl": 600, "unknownKey": true},
            "customData": {"team": "finance"}
        }),
    )
    .await;
    let id = app["id"].as_str().unwrap();
    assert_eq!(id.len(), 21);
    assert_eq!(app["tenantId"], "default");
    assert_eq!(app["type"], "SPA");
    assert_eq!(app["customClientMetadata"], json!({"idTokenTtl": 600}));
    assert_eq!(app["isThirdParty"], false);
    assert!(app["createdAt"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(app.get("secret").is_none());

    let fetched = server.get(&format!("/api/applications/{id}")).await;
    assert_eq!(fetched.expect(200)["isAdmin"], false);
    assert_eq!(fetched.body["customData"], json!({"team": "finance"}));

    let updated = server
        .patch(
            &format!("/api/applications/{id}"),
            json!({"name": "Billing 2", "description": null, "customData": {"replaced": 1}}),
        )
        .await;
    let body = updated.expect(200);
    assert_eq!(body["name"], "Billing 2");
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body["customData"], json!({"replaced": 1}));

    let merged = server
        .patch(
            &format!("/api/applications/{id}/custom-data"),
            json!({"more": true}),
        )
        .await;
    assert_eq!(merged.expect(200), &json!({"replaced": 1, "more": true}));

    server
        .patch(&format!("/api/applications/{id}"), json!({}))
        .await
        .expect_error(422, "entity.invalid_input");

    server
        .delete(&format!("/api/applications/{id}"))
        .await
        .expect(204);
    let gone = server.get(&format!("/api/applications/{id}")).await;
    gone.expect_error(404, "entity.not_exists_with_id");
    assert_eq!(
        gone.body["message"],
        format!("The application with ID `{id}` does not exist.")
    );
    // A command the store refuses for a missing stream names the entity and id just the same.
    let refused = server
        .patch(
            &format!("/api/applications/{id}/custom-data"),
            json!({"a": 1}),
        )
        .await;
    refused.expect_error(404, "entity.not_exists_with_id");
    assert_eq!(
        refused.body["message"],
        format!("The application with ID `{id}` does not exist.")
    );
    server
        .delete(&format!("/api/applications/{id}"))
        .await
        .expect_error(404, "entity.not_exists_with_id");

    // Every change is an event with the calling app as actor.
    let events = server.events().await;
    let ours: Vec<_> = events.iter().filter(|e| e.stream_id == id).collect();
    let types: Vec<&str> = ours.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "application.created",
            "application.updated",
            "application.custom_data_merged",
            "application.deleted"
        ]
    );
    for event in ours {
        assert_eq!(event.actor_kind, "app");
        assert_eq!(event.actor_id.as_deref(), Some(BOOTSTRAP_ID));
        assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(event.user_agent.as_deref(), Some("idledger-tests/1.0"));
        assert!(event.request_id.is_some());
    }
    server.assert_replay_check();
}

#[tokio::test]
async fn invalid_input_is_refused_with_logtos_codes() {
    let server = TestServer::start().await;
    server
        .post("/api/applications", json!({"type": "SPA"}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post(
            "/api/applications",
            json!({"name": "x", "type": "Mainframe"}),
        )
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post("/api/applications", json!({"name": "x", "type": "SAML"}))
        .await
        .expect_error(400, "application.saml.use_saml_app_api");
    server
        .post(
            "/api/applications",
            json!({"name": "x", "type": "MachineToMachine", "isThirdParty": true}),
        )
        .await
        .expect_error(400, "application.invalid_third_party_application_type");
    server
        .post(
            "/api/applications",
            json!({"name": "x", "type": "SPA", "isThirdParty": true,
                   "customClientMetadata": {"allowTokenExchange": true}}),
        )
        .await
        .expect_error(
            422,
            "application.third_party_application_cannot_enable_token_exchange",
        );
    server
        .post(
            "/api/applications",
            json!({"name": "x", "type": "SPA", "customClientMetadata": {"isDeviceFlow": true}}),
        )
        .await
        .expect_error(422, "application.device_flow_native_only");
    let bad_uri = server
        .post(
            "/api/applications",
            json!({"name": "x", "type": "SPA",
                   "oidcClientMetadata": {"redirectUris": ["not a url"], "postLogoutRedirectUris": []}}),
        )
        .await;
    bad_uri.expect_error(400, "guard.invalid_input");
    assert!(
        bad_uri.body["details"]
            .as_str()
            .unwrap()
            .contains("redirectUris")
    );
    let malformed = server
        .http
        .post(server.url("/api/applications"))
        .bearer_auth(server.token().await)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "guard.invalid_input");
    // Nothing refused reached the log.
    assert!(
        server
            .events()
            .await
            .iter()
            .all(|e| e.event_type != "application.created" || e.payload["name"] != "x")
    );
}

#[tokio::test]
async fn secrets_are_shown_again_but_stored_sealed() {
    let server = TestServer::start().await;
    let app = create(&server, json!({"name": "svc", "type": "MachineToMachine"})).await;
    let id = app["id"].as_str().unwrap();
    let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
    let list = secrets.expect(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "Default secret");
    assert_eq!(list[0]["applicationId"], id);
    assert_eq!(list[0]["expiresAt"], Value::Null);
    let default_value = list[0]["value"].as_str().unwrap().to_owned();
    assert_eq!(default_value.len(), 32);

    let added = server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "ci"}),
        )
        .await;
    let ci = added.expect(201)["value"].as_str().unwrap().to_owned();
    assert_ne!(ci, default_value);
    server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "ci"}),
        )
        .await
        .expect_error(422, "application.secret_name_exists");
    server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "old", "expiresAt": 1_000}),
        )
        .await
        .expect_error(400, "request.invalid_input");

    let renamed = server
        .patch(
            &format!("/api/applications/{id}/secrets/ci"),
            json!({"name": "deploy"}),
        )
        .await;
    assert_eq!(renamed.expect(200)["name"], "deploy");
    assert_eq!(renamed.body["value"], ci.as_str());
    server
        .patch(
            &format!("/api/applications/{id}/secrets/missing"),
            json!({"name": "x"}),
        )
        .await
        .expect_error(404, "entity.not_found");

    // Both secrets authenticate the client.
    for secret in [&default_value, &ci] {
        server
            .token_request(
                Some((id, secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", MANAGEMENT_API),
                ],
            )
            .await
            .expect(200);
    }
    server
        .delete(&format!("/api/applications/{id}/secrets/deploy"))
        .await
        .expect(204);
    let refused = server
        .token_request(
            Some((id, &ci)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", MANAGEMENT_API),
            ],
        )
        .await;
    assert_eq!(refused.status.as_u16(), 401);

    // Public clients hold no secrets; legacy secrets never exist here.
    let spa = create(&server, json!({"name": "spa", "type": "SPA"})).await;
    let spa_id = spa["id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&format!("/api/applications/{spa_id}/secrets"))
            .await
            .expect(200),
        &json!([])
    );
    server
        .post(
            &format!("/api/applications/{spa_id}/secrets"),
            json!({"name": "x"}),
        )
        .await
        .expect_error(422, "entity.db_constraint_violated");
    server
        .delete(&format!("/api/applications/{spa_id}/legacy-secret"))
        .await
        .expect_error(400, "application.no_legacy_secret_found");

    // The deleted secret's sealed value is gone from the vault; no value is in the log.
    let db = server.db().await;
    let vault: i64 = db
        .query_one(
            "SELECT count(*) FROM vault WHERE ref LIKE 'app-secret-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(vault, 2, "bootstrap default secret + svc default secret");
    for event in server.events().await {
        let text = event.payload.to_string();
        assert!(
            !text.contains(&default_value) && !text.contains(&ci),
            "{text}"
        );
    }
    server.assert_replay_check();
}

#[tokio::test]
async fn listing_filters_searches_and_paginates_optionally() {
    let server = TestServer::start().await;
    for (name, kind) in [
        ("alpha", "SPA"),
        ("beta", "Native"),
        ("gamma", "Traditional"),
    ] {
        create(&server, json!({"name": name, "type": kind})).await;
    }
    // Every start seeds two applications besides these: the bootstrap machine-to-machine app
    // and the admin console's SPA.
    let all = server.get("/api/applications").await;
    assert_eq!(all.expect(200).as_array().unwrap().len(), 5);
    assert!(all.header("total-number").is_none(), "no pagination asked");
    let names: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..3], ["gamma", "beta", "alpha"], "newest first");

    let page = server.get("/api/applications?page=2&page_size=3").await;
    assert_eq!(page.expect(200).as_array().unwrap().len(), 2);
    assert_eq!(page.header("total-number"), Some("5"));
    let links: Vec<&str> = page
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links.len(), 3, "{links:?}");
    assert!(links[0].ends_with("rel=\"first\""));
    assert!(links[0].starts_with(&format!("<{}/applications?page=1", server.endpoint)));
    assert!(links[1].ends_with("rel=\"prev\""));
    assert!(links[2].ends_with("rel=\"last\""));

    let spa_native = server.get("/api/applications?types=SPA&types=Native").await;
    assert_eq!(
        spa_native.expect(200).as_array().unwrap().len(),
        3,
        "alpha, beta, the console"
    );
    let search = server.get("/api/applications?search=%25amm%25").await;
    assert_eq!(search.expect(200)[0]["name"], "gamma");
    let exact = server
        .get("/api/applications?search.name=ALPHA&mode.name=exact")
        .await;
    assert_eq!(exact.expect(200).as_array().unwrap().len(), 1);
    let sensitive = server
        .get("/api/applications?search.name=ALPHA&mode.name=exact&isCaseSensitive=true")
        .await;
    assert_eq!(sensitive.expect(200).as_array().unwrap().len(), 0);
    server
        .get("/api/applications?search.secret=x")
        .await
        .expect_error(400, "request.invalid_input");
    server
        .get("/api/applications?page_size=1000")
        .await
        .expect_error(400, "guard.invalid_pagination");
}

#[tokio::test]
async fn machine_to_machine_roles() {
    let server = TestServer::start().await;
    let app = create(
        &server,
        json!({"name": "worker", "type": "MachineToMachine"}),
    )
    .await;
    let id = app["id"].as_str().unwrap();
    let role = server
        .post(
            "/api/roles",
            json!({"name": "reporting", "description": "reads", "type": "MachineToMachine"}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    let user_role = server
        .post(
            "/api/roles",
            json!({"name": "people", "description": "humans"}),
        )
        .await;
    let user_role_id = user_role.expect(200)["id"].as_str().unwrap().to_owned();
    assert_eq!(user_role.body["type"], "User");

    server
        .post(
            &format!("/api/applications/{id}/roles"),
            json!({"roleIds": [role_id]}),
        )
        .await
        .expect(201);
    let held = server.get(&format!("/api/applications/{id}/roles")).await;
    assert_eq!(held.expect(200)[0]["id"], role_id.as_str());
    assert_eq!(held.header("total-number"), Some("1"));

    let wrong_type = server
        .post(
            &format!("/api/applications/{id}/roles"),
            json!({"roleIds": [user_role_id]}),
        )
        .await;
    wrong_type.expect_error(422, "application.invalid_role_type");
    server
        .post(
            &format!("/api/applications/{id}/roles"),
            json!({"roleIds": ["missing"]}),
        )
        .await
        .expect_error(404, "entity.not_exists_with_id");

    server
        .put(
            &format!("/api/applications/{id}/roles"),
            json!({"roleIds": []}),
        )
        .await
        .expect(200);
    assert_eq!(
        server
            .get(&format!("/api/applications/{id}/roles"))
            .await
            .expect(200),
        &json!([])
    );
    server
        .delete(&format!("/api/applications/{id}/roles/{role_id}"))
        .await
        .expect_error(404, "entity.not_found");

    // isAdmin grants and withdraws Management API access.
    let promoted = server
        .patch(&format!("/api/applications/{id}"), json!({"isAdmin": true}))
        .await;
    assert_eq!(promoted.expect(200)["isAdmin"], true);
    let secret = server
        .get(&format!("/api/applications/{id}/secrets"))
        .await
        .expect(200)[0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = server.token_for(id, &secret).await;
    server
        .call_with(Some(&format!("Bearer {token}")), "/api/applications")
        .await
        .expect(200);
    let demoted = server
        .patch(
            &format!("/api/applications/{id}"),
            json!({"isAdmin": false}),
        )
        .await;
    assert_eq!(demoted.expect(200)["isAdmin"], false);

    // Deleting a role takes it from every holder.
    server
        .post(
            &format!("/api/roles/{role_id}/applications"),
            json!({"applicationIds": [id]}),
        )
        .await
        .expect(201);
    let roles = server.get("/api/roles?type=MachineToMachine").await;
    let listed = roles
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["applicationsCount"], 1);
    assert_eq!(listed["featuredApplications"][0]["id"], id);
    server
        .delete(&format!("/api/roles/{role_id}"))
        .await
        .expect(204);
    let refused = server
        .patch(&format!("/api/roles/{role_id}"), json!({"name": "again"}))
        .await;
    refused.expect_error(404, "entity.not_exists_with_id");
    assert_eq!(
        refused.body["message"],
        format!("The role with ID `{role_id}` does not exist.")
    );
    assert_eq!(
        server
            .get(&format!("/api/applications/{id}/roles"))
            .await
            .expect(200),
        &json!([])
    );
    server.assert_replay_check();
}
