//! The event store's promises, observed through the HTTP surface: gapless positions under
//! concurrent writers with conflicts and rollbacks, no lost or half-applied command, complete
//! metadata, and read models equal to their replay.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use crate::support::TestServer;

const WRITERS: usize = 16;
const ROUNDS: usize = 12;

#[tokio::test]
async fn sixteen_writers_with_conflicts_and_rollbacks_leave_no_gap_and_lose_nothing() {
    let server = Arc::new(TestServer::start().await);
    let app = server
        .post(
            "/api/applications",
            json!({"name": "contended", "type": "SPA"}),
        )
        .await;
    let app_id = app.expect(200)["id"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let server = server.clone();
        let app_id = app_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut merged = Vec::new();
            let mut refused_merges = 0;
            let mut roles_created = 0;
            for round in 0..ROUNDS {
                // Every writer merges into the same stream: optimistic-concurrency conflicts.
                let key = format!("w{writer}r{round}");
                let reply = server
                    .patch(
                        &format!("/api/applications/{app_id}/custom-data"),
                        json!({ key.clone(): round }),
                    )
                    .await;
                match reply.status.as_u16() {
                    200 => merged.push(key),
                    409 => {
                        reply.expect_error(409, "request.concurrent_modification");
                        refused_merges += 1;
                    }
                    other => panic!("unexpected {other}: {}", reply.body),
                }
                // Half the writers race for the same role names: the losers' events are
                // appended, then rolled back when the read model's unique name refuses them.
                let name = format!("role-{}-{round}", writer % (WRITERS / 2));
                let reply = server
                    .post("/api/roles", json!({"name": name, "description": "race"}))
                    .await;
                match reply.status.as_u16() {
                    200 => roles_created += 1,
                    422 => reply.expect_error(422, "role.name_in_use"),
                    other => panic!("unexpected {other}: {}", reply.body),
                }
            }
            (merged, refused_merges, roles_created)
        }));
    }
    let mut merged = BTreeSet::new();
    let mut refused = 0;
    let mut roles_created = 0;
    for task in tasks {
        let (keys, refusals, roles) = task.await.unwrap();
        merged.extend(keys);
        refused += refusals;
        roles_created += roles;
    }

    // Every acknowledged merge is in the read model, and nothing else is.
    let custom = server.get(&format!("/api/applications/{app_id}")).await;
    let data = custom.expect(200)["customData"]
        .as_object()
        .unwrap()
        .clone();
    let present: BTreeSet<String> = data.keys().cloned().collect();
    assert_eq!(
        present, merged,
        "{refused} merges were refused after retries"
    );
    assert_eq!(
        roles_created,
        (WRITERS / 2) * ROUNDS,
        "one winner per role name"
    );

    let events = server.events().await;
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    let expected: Vec<i64> = (1..=i64::try_from(events.len()).unwrap()).collect();
    assert_eq!(positions, expected, "positions must be 1..=n without holes");
    let merge_events = events
        .iter()
        .filter(|e| e.event_type == "application.custom_data_merged")
        .count();
    assert_eq!(
        merge_events,
        merged.len(),
        "one event per acknowledged merge"
    );
    let role_events = events
        .iter()
        .filter(|e| e.event_type == "role.created" && e.payload["description"] == "race")
        .count();
    assert_eq!(
        role_events, roles_created,
        "no event from a rejected command"
    );

    // Per-stream sequences are gapless too.
    let db = server.db().await;
    let holes: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT stream_id, max(sequence) AS top, count(*) AS n \
             FROM events GROUP BY stream_type, stream_id) s WHERE top <> n",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holes, 0);
    server.assert_replay_check();
}

#[tokio::test]
async fn every_event_says_who_from_where_and_which_request() {
    let server = TestServer::start().await;
    let reply = server
        .http
        .post(server.url("/api/roles"))
        .bearer_auth(server.token().await)
        .header("x-request-id", "trace-me-42")
        .header("user-agent", "auditor/2.0")
        .json(&json!({"name": "auditors", "description": "read the log"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let events = server.events().await;
    let created = events
        .iter()
        .find(|e| e.event_type == "role.created" && e.payload["name"] == "auditors")
        .unwrap();
    assert_eq!(created.request_id.as_deref(), Some("trace-me-42"));
    assert_eq!(created.user_agent.as_deref(), Some("auditor/2.0"));
    assert_eq!(created.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(created.actor_kind, "app");
    // Events written by the server itself (bootstrap) say so.
    assert!(
        events
            .iter()
            .any(|e| e.actor_kind == "system" && e.event_type == "resource.created")
    );
    for event in &events {
        assert!(
            event.actor_kind == "system"
                || (event.actor_id.is_some() && event.request_id.is_some()),
            "incomplete metadata: {event:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_command_appends_nothing() {
    let server = TestServer::start().await;
    server
        .post("/api/roles", json!({"name": "dup", "description": "first"}))
        .await
        .expect(200);
    let before = server.events().await.len();
    server
        .post(
            "/api/roles",
            json!({"name": "dup", "description": "second"}),
        )
        .await
        .expect_error(422, "role.name_in_use");
    let app = server
        .post("/api/applications", json!({"name": "a", "type": "SPA"}))
        .await;
    let id = app.expect(200)["id"].as_str().unwrap().to_owned();
    let after_create = server.events().await.len();
    assert_eq!(after_create, before + 1);
    server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "nope"}),
        )
        .await
        .expect_error(422, "entity.db_constraint_violated");
    assert_eq!(server.events().await.len(), after_create);
}

#[tokio::test]
async fn the_log_is_append_only_and_a_tampered_read_model_is_caught_and_repaired() {
    let server = TestServer::start().await;
    server
        .post(
            "/api/applications",
            json!({"name": "honest", "type": "SPA"}),
        )
        .await
        .expect(200);
    let db = server.db().await;
    let rewrite = db
        .execute("UPDATE events SET payload = '{}' WHERE position = 1", &[])
        .await;
    assert!(rewrite.is_err(), "stored events must not be rewritable");
    assert!(db.execute("DELETE FROM events", &[]).await.is_err());

    db.execute(
        "UPDATE applications SET name = 'forged' WHERE name = 'honest'",
        &[],
    )
    .await
    .unwrap();
    let check = server.replay(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains("forged") && report.contains("honest"),
        "{report}"
    );

    // A rebuild drops the indexes no fold reads through and builds them at the end: every
    // index and constraint of the read models must be back, exactly as the migrations made it.
    let schema = "SELECT string_agg(d, E'\\n' ORDER BY d) FROM ( \
                    SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' \
                    UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' \
                      || pg_get_constraintdef(oid) FROM pg_constraint \
                    WHERE connamespace = 'public'::regnamespace) s";
    let before: String = db.query_one(schema, &[]).await.unwrap().get(0);
    assert!(before.contains("logs_pkey") && before.contains("logs_created_at"));
    let rebuild = server.replay(&["rebuild"]);
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    let after: String = db.query_one(schema, &[]).await.unwrap().get(0);
    assert_eq!(before, after);
    server.assert_replay_check();
    let apps = server.get("/api/applications?search.name=honest").await;
    assert_eq!(apps.expect(200).as_array().unwrap().len(), 1);
}
