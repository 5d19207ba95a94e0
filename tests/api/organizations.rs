//! `/api/organizations` and `/api/organization-roles` (logto-compat §8): organizations, members,
//! member roles, just-in-time roles, cascades of deleted users and roles, and
//! `GET /users/:id/organizations` (§2.2).

use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_ID, Reply, StoredEvent, TestServer};

async fn organization(server: &TestServer, name: &str) -> String {
    let created = server
        .post("/api/organizations", json!({ "name": name }))
        .await;
    created.expect(201)["id"].as_str().unwrap().to_owned()
}

async fn user(server: &TestServer, username: &str) -> String {
    let created = server
        .post("/api/users", json!({ "username": username }))
        .await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

async fn organization_role(server: &TestServer, name: &str, role_type: &str) -> String {
    let created = server
        .post(
            "/api/organization-roles",
            json!({ "name": name, "type": role_type }),
        )
        .await;
    created.expect(201)["id"].as_str().unwrap().to_owned()
}

fn field(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap().to_owned())
        .collect()
}

/// Members who joined in the same millisecond tie, so member lists are compared as sets.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn links(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Every event of `streams` was appended by the bootstrap app, with the request's metadata.
fn assert_actor(events: &[StoredEvent], streams: &[&str]) {
    let ours: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| streams.contains(&e.stream_id.as_str()))
        .collect();
    assert!(!ours.is_empty());
    for event in ours {
        assert_eq!(event.actor_kind, "app", "{}", event.event_type);
        assert_eq!(event.actor_id.as_deref(), Some(BOOTSTRAP_ID));
        assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(event.user_agent.as_deref(), Some("idledger-tests/1.0"));
        assert!(event.request_id.is_some());
    }
}

fn types_of(events: &[StoredEvent], stream: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.stream_id == stream)
        .map(|e| e.event_type.clone())
        .collect()
}

#[tokio::test]
async fn organizations_are_created_listed_updated_and_deleted() {
    let server = TestServer::start().await;
    let created = server
        .post(
            "/api/organizations",
            json!({"name": "Acme", "description": "Rockets", "customData": {"tier": 1}}),
        )
        .await;
    let acme = created.expect(201).clone();
    let id = acme["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 12);
    assert_eq!(acme["tenantId"], "default");
    assert_eq!(acme["name"], "Acme");
    assert_eq!(acme["description"], "Rockets");
    assert_eq!(acme["customData"], json!({"tier": 1}));
    assert_eq!(acme["isMfaRequired"], false);
    assert_eq!(acme["color"], json!({}));
    assert_eq!(acme["branding"], json!({}));
    assert_eq!(acme["customCss"], Value::Null);
    assert!(acme["createdAt"].as_i64().unwrap() > 1_700_000_000_000);
    let mut keys: Vec<&String> = acme.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "branding",
            "color",
            "createdAt",
            "customCss",
            "customData",
            "description",
            "id",
            "isMfaRequired",
            "name",
            "tenantId"
        ]
    );
    let other = organization(&server, "Globex").await;

    let fetched = server.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(fetched.expect(200), &acme);

    // Mandatory pagination with Logto's headers; `q` matches name or id, case-insensitively.
    let all = server.get("/api/organizations?page_size=1").await;
    assert_eq!(field(all.expect(200), "id"), [other.as_str()]);
    assert_eq!(all.header("total-number"), Some("2"));
    let base = format!("{}/organizations?", server.endpoint);
    assert_eq!(
        links(&all),
        [
            format!("<{base}page_size=1&page=1>; rel=\"first\""),
            format!("<{base}page_size=1&page=2>; rel=\"next\""),
            format!("<{base}page_size=1&page=2>; rel=\"last\""),
        ]
    );
    let by_name = server.get("/api/organizations?q=acm").await;
    assert_eq!(field(by_name.expect(200), "id"), [id.as_str()]);
    assert_eq!(by_name.header("total-number"), Some("1"));
    let by_id = server
        .get(&format!("/api/organizations?q={}", &other[2..8]))
        .await;
    assert_eq!(field(by_id.expect(200), "id"), [other.as_str()]);
    let featured = server
        .get("/api/organizations?q=Acme&showFeatured=true")
        .await;
    assert_eq!(featured.expect(200)[0]["usersCount"], 0);
    assert_eq!(featured.body[0]["featuredUsers"], json!([]));
    assert!(by_name.body[0].get("usersCount").is_none());
    server
        .get("/api/organizations?page_size=101")
        .await
        .expect_error(400, "guard.invalid_pagination");

    server
        .post("/api/organizations", json!({"name": ""}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post("/api/organizations", json!({"name": "x".repeat(129)}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post("/api/organizations", json!({"description": "no name"}))
        .await
        .expect_error(400, "guard.invalid_input");

    let updated = server
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"name": "Acme Corp", "description": null, "customData": {"replaced": true},
                   "isMfaRequired": true, "color": {"primaryColor": "#000000"}}),
        )
        .await;
    let body = updated.expect(200);
    assert_eq!(body["name"], "Acme Corp");
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body["customData"], json!({"replaced": true}));
    assert_eq!(body["isMfaRequired"], true);
    assert_eq!(body["color"], json!({"primaryColor": "#000000"}));
    assert_eq!(body["createdAt"], acme["createdAt"]);
    server
        .patch(&format!("/api/organizations/{id}"), json!({}))
        .await
        .expect_error(422, "entity.invalid_input");
    server
        .patch("/api/organizations/missing", json!({"name": "x"}))
        .await
        .expect_error(404, "entity.not_exists");

    server
        .delete(&format!("/api/organizations/{id}"))
        .await
        .expect(204);
    let gone = server.get(&format!("/api/organizations/{id}")).await;
    gone.expect_error(404, "entity.not_exists_with_id");
    assert_eq!(
        gone.body["message"],
        format!("The organization with ID `{id}` does not exist.")
    );
    server
        .delete(&format!("/api/organizations/{id}"))
        .await
        .expect_error(404, "entity.not_found");

    let events = server.events().await;
    assert_eq!(
        types_of(&events, &id),
        [
            "organization.created",
            "organization.updated",
            "organization.deleted"
        ]
    );
    let created_event = events.iter().find(|e| e.stream_id == id).unwrap();
    assert_eq!(created_event.payload["name"], "Acme");
    assert_actor(&events, &[&id, &other]);
    server.assert_replay_check();
}

#[tokio::test]
async fn members_are_added_replaced_listed_and_removed() {
    let server = TestServer::start().await;
    let org = organization(&server, "Acme").await;
    let ada = user(&server, "ada").await;
    let bob = user(&server, "bob").await;
    let cy = user(&server, "cy").await;
    let members = format!("/api/organizations/{org}/users");

    let added = server
        .post(&members, json!({"userIds": [ada, bob, ada]}))
        .await;
    assert_eq!(added.expect(201), &json!({"userIds": [ada, bob, ada]}));
    let before = server.events().await.len();
    server
        .post(&members, json!({"userIds": [ada]}))
        .await
        .expect(201);
    assert_eq!(
        server.events().await.len(),
        before,
        "already-members are ignored"
    );
    server
        .post(&members, json!({"userIds": [ada, "nobody"]}))
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    server
        .post(
            "/api/organizations/missing/users",
            json!({"userIds": [ada]}),
        )
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    server
        .post(&members, json!({"userIds": []}))
        .await
        .expect_error(400, "guard.invalid_input");

    let listed = server.get(&members).await;
    assert_eq!(
        sorted(field(listed.expect(200), "id")),
        sorted(vec![ada.clone(), bob.clone()])
    );
    assert_eq!(listed.header("total-number"), Some("2"));
    assert!(listed.body[0]["username"].is_string());
    assert_eq!(listed.body[0]["organizationRoles"], json!([]));
    assert!(listed.body[0].get("hasPassword").is_none());
    let searched = server.get(&format!("{members}?q=BO")).await;
    assert_eq!(field(searched.expect(200), "id"), [bob.as_str()]);
    let featured = server.get("/api/organizations?showFeatured=1").await;
    assert_eq!(featured.expect(200)[0]["usersCount"], 2);
    assert_eq!(field(&featured.body[0]["featuredUsers"], "id").len(), 2);

    server
        .put(&members, json!({"userIds": [bob, cy]}))
        .await
        .expect(204);
    let replaced = server.get(&members).await;
    assert_eq!(
        sorted(field(replaced.expect(200), "id")),
        sorted(vec![bob.clone(), cy.clone()])
    );
    server
        .put(&members, json!({"userIds": ["nobody"]}))
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");

    server.delete(&format!("{members}/{bob}")).await.expect(204);
    server
        .delete(&format!("{members}/{bob}"))
        .await
        .expect_error(404, "entity.not_found");
    assert_eq!(
        field(server.get(&members).await.expect(200), "id"),
        [cy.as_str()]
    );

    // `GET /users` can leave out an organization's members, but not together with a role filter.
    let outside = server
        .get(&format!("/api/users?excludeOrganizationId={org}"))
        .await;
    assert_eq!(
        sorted(field(outside.expect(200), "id")),
        sorted(vec![ada.clone(), bob.clone()])
    );
    server
        .get(&format!(
            "/api/users?excludeOrganizationId={org}&excludeRoleId=r"
        ))
        .await
        .expect_error(400, "request.invalid_input");

    let of_cy = server.get(&format!("/api/users/{cy}/organizations")).await;
    let of_cy = of_cy.expect(200);
    assert_eq!(field(of_cy, "id"), [org.as_str()]);
    assert_eq!(of_cy[0]["name"], "Acme");
    assert_eq!(of_cy[0]["tenantId"], "default");
    assert_eq!(of_cy[0]["organizationRoles"], json!([]));
    let of_ada = server.get(&format!("/api/users/{ada}/organizations")).await;
    assert_eq!(of_ada.expect(200), &json!([]));
    server
        .get("/api/users/nobody/organizations")
        .await
        .expect_error(404, "entity.not_found");

    let events = server.events().await;
    assert_eq!(
        types_of(&events, &org),
        [
            "organization.created",
            "organization.member_added",
            "organization.member_added",
            "organization.member_removed",
            "organization.member_added",
            "organization.member_removed",
        ]
    );
    let removed = events
        .iter()
        .find(|e| e.event_type == "organization.member_removed")
        .unwrap();
    assert_eq!(removed.payload, json!({"userId": ada}));
    assert_actor(&events, &[&org]);
    server.assert_replay_check();
}

#[tokio::test]
async fn member_roles_require_membership() {
    let server = TestServer::start().await;
    let org = organization(&server, "Acme").await;
    let ada = user(&server, "ada").await;
    let bob = user(&server, "bob").await;
    let admin = organization_role(&server, "admin", "User").await;
    let viewer = organization_role(&server, "viewer", "User").await;
    let bot = organization_role(&server, "bot", "MachineToMachine").await;
    server
        .post(
            &format!("/api/organizations/{org}/users"),
            json!({"userIds": [ada]}),
        )
        .await
        .expect(201);
    let ada_roles = format!("/api/organizations/{org}/users/{ada}/roles");
    let bob_roles = format!("/api/organizations/{org}/users/{bob}/roles");

    let assigned = server
        .post(
            &ada_roles,
            json!({"organizationRoleIds": [viewer], "organizationRoleNames": ["admin", "viewer"]}),
        )
        .await;
    assert_eq!(
        assigned.expect(201),
        &json!({"organizationRoleIds": [viewer, admin]})
    );
    let held = server.get(&ada_roles).await;
    assert_eq!(field(held.expect(200), "name"), ["admin", "viewer"]);
    assert_eq!(held.header("total-number"), None, "pagination is optional");
    assert_eq!(held.body[0]["tenantId"], "default");
    assert_eq!(held.body[0]["type"], "User");
    let paged = server.get(&format!("{ada_roles}?page=1&page_size=1")).await;
    assert_eq!(field(paged.expect(200), "name"), ["admin"]);
    assert_eq!(paged.header("total-number"), Some("2"));

    for reply in [
        server
            .post(&bob_roles, json!({"organizationRoleIds": [admin]}))
            .await,
        server
            .put(&bob_roles, json!({"organizationRoleIds": [admin]}))
            .await,
        server.get(&bob_roles).await,
        server.delete(&format!("{bob_roles}/{admin}")).await,
        server
            .get(&format!("/api/organizations/missing/users/{ada}/roles"))
            .await,
    ] {
        reply.expect_error(422, "organization.require_membership");
    }
    server
        .post(&ada_roles, json!({"organizationRoleNames": ["ghost"]}))
        .await
        .expect_error(422, "organization.role_names_not_found");
    server
        .post(&ada_roles, json!({"organizationRoleIds": ["ghost"]}))
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    server
        .post(&ada_roles, json!({"organizationRoleIds": [bot]}))
        .await
        .expect_error(422, "entity.db_constraint_violated");

    let members = server.get(&format!("/api/organizations/{org}/users")).await;
    assert_eq!(
        members.expect(200)[0]["organizationRoles"],
        json!([{"id": admin, "name": "admin"}, {"id": viewer, "name": "viewer"}])
    );
    let of_ada = server.get(&format!("/api/users/{ada}/organizations")).await;
    assert_eq!(
        of_ada.expect(200)[0]["organizationRoles"],
        json!([{"id": admin, "name": "admin"}, {"id": viewer, "name": "viewer"}])
    );

    server
        .put(&ada_roles, json!({"organizationRoleIds": [viewer]}))
        .await
        .expect(204);
    assert_eq!(
        field(server.get(&ada_roles).await.expect(200), "name"),
        ["viewer"]
    );
    server
        .delete(&format!("{ada_roles}/{viewer}"))
        .await
        .expect(204);
    server
        .delete(&format!("{ada_roles}/{viewer}"))
        .await
        .expect_error(404, "entity.not_found");

    // Several members at once, in one unit: every member must already belong.
    let bulk = format!("/api/organizations/{org}/users/roles");
    let before = server.events().await.len();
    server
        .post(
            &bulk,
            json!({"userIds": [ada, bob], "organizationRoleIds": [admin]}),
        )
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    assert_eq!(server.events().await.len(), before);
    server
        .post(
            &format!("/api/organizations/{org}/users"),
            json!({"userIds": [bob]}),
        )
        .await
        .expect(201);
    server
        .post(
            &bulk,
            json!({"userIds": [ada, bob], "organizationRoleIds": [admin, viewer]}),
        )
        .await
        .expect(201);
    server
        .post(&bulk, json!({"userIds": [ada], "organizationRoleIds": []}))
        .await
        .expect_error(400, "guard.invalid_input");
    let with_admin = server
        .get(&format!(
            "/api/organizations/{org}/users?organizationRoleId={admin}"
        ))
        .await;
    assert_eq!(
        sorted(field(with_admin.expect(200), "id")),
        sorted(vec![ada.clone(), bob.clone()])
    );
    let events = server.events().await;
    let bulk_events: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.event_type == "organization.member_roles_assigned")
        .rev()
        .take(2)
        .collect();
    assert_eq!(bulk_events[0].request_id, bulk_events[1].request_id);
    assert_eq!(
        bulk_events[1].payload,
        json!({"userId": ada, "organizationRoleIds": [admin, viewer]})
    );

    // Leaving drops the roles held here; coming back starts with none.
    server
        .delete(&format!("/api/organizations/{org}/users/{ada}"))
        .await
        .expect(204);
    server
        .post(
            &format!("/api/organizations/{org}/users"),
            json!({"userIds": [ada]}),
        )
        .await
        .expect(201);
    assert_eq!(server.get(&ada_roles).await.expect(200), &json!([]));
    assert_actor(&server.events().await, &[&org, &admin, &viewer, &bot]);
    server.assert_replay_check();
}

#[tokio::test]
async fn jit_roles_are_added_replaced_and_removed() {
    let server = TestServer::start().await;
    let org = organization(&server, "Acme").await;
    let admin = organization_role(&server, "admin", "User").await;
    let viewer = organization_role(&server, "viewer", "User").await;
    let jit = format!("/api/organizations/{org}/jit/roles");

    assert_eq!(server.get(&jit).await.expect(200), &json!([]));
    server
        .post(&jit, json!({"organizationRoleIds": [admin]}))
        .await
        .expect(201);
    let before = server.events().await.len();
    server
        .post(&jit, json!({"organizationRoleIds": [admin]}))
        .await
        .expect(201);
    assert_eq!(server.events().await.len(), before);
    server
        .post(&jit, json!({"organizationRoleIds": ["ghost"]}))
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    server
        .post(
            "/api/organizations/missing/jit/roles",
            json!({"organizationRoleIds": [admin]}),
        )
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");
    server
        .post(&jit, json!({"organizationRoleIds": []}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .get("/api/organizations/missing/jit/roles")
        .await
        .expect_error(404, "entity.not_exists_with_id");
    let listed = server.get(&jit).await;
    assert_eq!(field(listed.expect(200), "id"), [admin.as_str()]);
    assert_eq!(listed.body[0]["name"], "admin");

    server
        .put(&jit, json!({"organizationRoleIds": [viewer, admin]}))
        .await
        .expect(204);
    let paged = server.get(&format!("{jit}?page=2&page_size=1")).await;
    assert_eq!(field(paged.expect(200), "name"), ["viewer"]);
    assert_eq!(paged.header("total-number"), Some("2"));
    server
        .put(&jit, json!({"organizationRoleIds": [viewer]}))
        .await
        .expect(204);
    assert_eq!(
        field(server.get(&jit).await.expect(200), "id"),
        [viewer.as_str()]
    );
    server.delete(&format!("{jit}/{viewer}")).await.expect(204);
    server
        .delete(&format!("{jit}/{viewer}"))
        .await
        .expect_error(404, "entity.not_found");
    assert_eq!(server.get(&jit).await.expect(200), &json!([]));

    let events = server.events().await;
    assert_eq!(
        types_of(&events, &org),
        [
            "organization.created",
            "organization.jit_roles_added",
            "organization.jit_roles_added",
            "organization.jit_role_removed",
            "organization.jit_role_removed",
        ]
    );
    assert_actor(&events, &[&org]);
    server.assert_replay_check();
}

#[tokio::test]
async fn organization_roles_are_created_listed_updated_and_deleted() {
    let server = TestServer::start().await;
    let created = server
        .post(
            "/api/organization-roles",
            json!({"name": "admin", "description": "Runs the place"}),
        )
        .await;
    let admin = created.expect(201).clone();
    let id = admin["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 21);
    assert_eq!(
        admin,
        json!({"tenantId": "default", "id": id, "name": "admin",
               "description": "Runs the place", "type": "User"})
    );
    let bot = organization_role(&server, "bot", "MachineToMachine").await;

    let before = server.events().await.len();
    server
        .post("/api/organization-roles", json!({"name": "admin"}))
        .await
        .expect_error(422, "entity.unique_integrity_violation");
    assert_eq!(server.events().await.len(), before, "nothing appended");
    server
        .post("/api/organization-roles", json!({"name": ""}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post(
            "/api/organization-roles",
            json!({"name": "x", "type": "Robot"}),
        )
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post(
            "/api/organization-roles",
            json!({"name": "x", "organizationScopeIds": ["s1"]}),
        )
        .await
        .expect_error(422, "entity.relation_foreign_key_not_found");

    let listed = server.get("/api/organization-roles").await;
    assert_eq!(field(listed.expect(200), "name"), ["admin", "bot"]);
    assert_eq!(listed.header("total-number"), Some("2"));
    assert_eq!(listed.body[0]["scopes"], json!([]));
    assert_eq!(listed.body[0]["resourceScopes"], json!([]));
    let searched = server.get("/api/organization-roles?q=PLACE").await;
    assert_eq!(field(searched.expect(200), "id"), [id.as_str()]);

    assert_eq!(
        server
            .get(&format!("/api/organization-roles/{id}"))
            .await
            .expect(200),
        &admin
    );
    server
        .get("/api/organization-roles/missing")
        .await
        .expect_error(404, "entity.not_found");

    let updated = server
        .patch(
            &format!("/api/organization-roles/{id}"),
            json!({"name": "owner", "description": null}),
        )
        .await;
    let body = updated.expect(200);
    assert_eq!(body["name"], "owner");
    assert_eq!(body["description"], Value::Null);
    server
        .patch(
            &format!("/api/organization-roles/{id}"),
            json!({"name": "bot"}),
        )
        .await
        .expect_error(422, "entity.unique_integrity_violation");
    server
        .patch(&format!("/api/organization-roles/{id}"), json!({}))
        .await
        .expect_error(422, "entity.invalid_input");
    server
        .patch("/api/organization-roles/missing", json!({"name": "x"}))
        .await
        .expect_error(404, "entity.not_exists");

    server
        .delete(&format!("/api/organization-roles/{id}"))
        .await
        .expect(204);
    server
        .delete(&format!("/api/organization-roles/{id}"))
        .await
        .expect_error(404, "entity.not_found");
    server
        .get(&format!("/api/organization-roles/{id}"))
        .await
        .expect_error(404, "entity.not_found");

    let events = server.events().await;
    assert_eq!(
        types_of(&events, &id),
        [
            "organization_role.created",
            "organization_role.updated",
            "organization_role.deleted"
        ]
    );
    assert_actor(&events, &[&id, &bot]);
    server.assert_replay_check();
}

#[tokio::test]
async fn deleted_users_and_roles_leave_every_organization() {
    let server = TestServer::start().await;
    let acme = organization(&server, "Acme").await;
    let globex = organization(&server, "Globex").await;
    let ada = user(&server, "ada").await;
    let bob = user(&server, "bob").await;
    let admin = organization_role(&server, "admin", "User").await;
    let viewer = organization_role(&server, "viewer", "User").await;
    for org in [&acme, &globex] {
        server
            .post(
                &format!("/api/organizations/{org}/users"),
                json!({"userIds": [ada, bob]}),
            )
            .await
            .expect(201);
        server
            .post(
                &format!("/api/organizations/{org}/users/roles"),
                json!({"userIds": [ada, bob], "organizationRoleIds": [admin, viewer]}),
            )
            .await
            .expect(201);
        server
            .put(
                &format!("/api/organizations/{org}/jit/roles"),
                json!({"organizationRoleIds": [admin, viewer]}),
            )
            .await
            .expect(204);
    }

    server
        .delete(&format!("/api/organization-roles/{admin}"))
        .await
        .expect(204);
    for org in [&acme, &globex] {
        let members = server.get(&format!("/api/organizations/{org}/users")).await;
        for member in members.expect(200).as_array().unwrap() {
            assert_eq!(
                member["organizationRoles"],
                json!([{"id": viewer, "name": "viewer"}])
            );
        }
        let jit = server
            .get(&format!("/api/organizations/{org}/jit/roles"))
            .await;
        assert_eq!(field(jit.expect(200), "id"), [viewer.as_str()]);
    }

    server
        .delete(&format!("/api/users/{ada}"))
        .await
        .expect(204);
    for org in [&acme, &globex] {
        let members = server.get(&format!("/api/organizations/{org}/users")).await;
        assert_eq!(field(members.expect(200), "id"), [bob.as_str()]);
        server
            .get(&format!("/api/organizations/{org}/users/{ada}/roles"))
            .await
            .expect_error(422, "organization.require_membership");
    }
    let of_bob = server.get(&format!("/api/users/{bob}/organizations")).await;
    assert_eq!(
        sorted(field(of_bob.expect(200), "id")),
        sorted(vec![acme.clone(), globex.clone()])
    );

    server
        .delete(&format!("/api/organizations/{acme}"))
        .await
        .expect(204);
    let of_bob = server.get(&format!("/api/users/{bob}/organizations")).await;
    assert_eq!(field(of_bob.expect(200), "id"), [globex.as_str()]);
    assert_eq!(
        of_bob.body[0]["organizationRoles"],
        json!([{"id": viewer, "name": "viewer"}])
    );
    let db = server.db().await;
    let leftovers: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM organization_user_relations WHERE user_id = $1 \
               OR organization_id = $2) \
             + (SELECT count(*) FROM organization_role_user_relations \
                WHERE user_id = $1 OR organization_role_id = $3 OR organization_id = $2) \
             + (SELECT count(*) FROM organization_jit_roles \
                WHERE organization_role_id = $3 OR organization_id = $2)",
            &[&ada, &acme, &admin],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0);
    assert_actor(&server.events().await, &[&acme, &globex, &admin, &viewer]);
    server.assert_replay_check();
}
