//! Signing keys: rotation keeps the previous key verifying until it is deleted, every node
//! serves the same key set, and no secret sits in the database in the clear.

use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_SECRET, KEK, TestServer, pg_bin};

async fn jwks(server: &TestServer, base: &str) -> Value {
    server
        .http
        .get(format!("{base}/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_the_old_key_is_deleted() {
    let server = TestServer::start().await;
    let old_token = server.token().await;
    let before = kids(&jwks(&server, &server.base).await);
    assert_eq!(before.len(), 1);
    let key = &jwks(&server, &server.base).await["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("EC"), Some("P-384"), Some("ES384"))
    );
    assert!(key.get("d").is_none(), "no private part in the JWKS");

    let listed = server.get("/api/configs/oidc/private-keys").await;
    assert_eq!(listed.expect(200)[0]["id"], before[0].as_str());
    assert_eq!(listed.body[0]["signingKeyAlgorithm"], "EC");

    let rotated = server
        .post(
            "/api/configs/oidc/private-keys/rotate",
            json!({"signingKeyAlgorithm": "EC"}),
        )
        .await;
    let keys = rotated.expect(200).as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[1]["id"],
        before[0].as_str(),
        "the previous key stays, second"
    );
    let new_kid = keys[0]["id"].as_str().unwrap().to_owned();
    let after = kids(&jwks(&server, &server.base).await);
    assert_eq!(after.len(), 2);
    assert!(after.contains(&new_kid) && after.contains(&before[0]));

    // A second node on the same database serves the very same key set and honours the old
    // token; new tokens are signed with the new key.
    let node = server.second_node();
    assert_eq!(
        jwks(&server, &node.base).await,
        jwks(&server, &server.base).await
    );
    let reply = server
        .http
        .get(format!("{}/api/applications", node.base))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let fresh = server
        .token_for(crate::support::BOOTSTRAP_ID, BOOTSTRAP_SECRET)
        .await;
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );

    server
        .delete(&format!("/api/configs/oidc/private-keys/{new_kid}"))
        .await
        .expect_error(422, "oidc.key_required");
    server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/configs/oidc/private-keys/{}", before[0]),
            None,
        )
        .await
        .expect(204);
    assert_eq!(
        kids(&jwks(&server, &server.base).await),
        vec![new_kid.clone()]
    );
    server
        .call_with(Some(&format!("Bearer {old_token}")), "/api/applications")
        .await
        .expect_error(401, "auth.unauthorized");
    // The other node notices the deletion too (its key set reloads within seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = server
            .http
            .get(format!("{}/api/applications", node.base))
            .bearer_auth(&old_token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 kept accepting a deleted key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let rsa = server
        .http
        .post(server.url("/api/configs/oidc/private-keys/rotate"))
        .bearer_auth(&fresh)
        .json(&json!({"signingKeyAlgorithm": "RSA"}))
        .send()
        .await
        .unwrap();
    crate::support::Reply::from(rsa)
        .await
        .expect_error(400, "request.invalid_input");
    server.assert_replay_check();
}

#[tokio::test]
async fn a_database_dump_holds_no_secret_in_the_clear() {
    let server = TestServer::start().await;
    let app = server
        .post(
            "/api/applications",
            json!({"name": "dumped", "type": "MachineToMachine"}),
        )
        .await;
    let id = app.expect(200)["id"].as_str().unwrap().to_owned();
    let named = server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "extra"}),
        )
        .await;
    let extra = named.expect(201)["value"].as_str().unwrap().to_owned();
    let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
    let default_secret = secrets.expect(200)[0]["value"].as_str().unwrap().to_owned();
    server.token().await;

    // The private signing key, as the server holds it in memory.
    let db = server.db().await;
    let row = db
        .query_one(
            "SELECT v.ref, v.sealed FROM signing_keys k JOIN vault v ON v.ref = k.vault_ref",
            &[],
        )
        .await
        .unwrap();
    let keyring = idledger::crypto::Keyring::from_base64(KEK).unwrap();
    let pkcs8 = keyring.open_vault(row.get(0), row.get(1)).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = pkcs8.iter().map(|b| format!("{b:02x}")).collect();
    // The private scalar: ECPrivateKey { version 1, privateKey OCTET STRING (48 bytes) ... }.
    let marker = [0x02, 0x01, 0x01, 0x04, 0x30];
    let at = pkcs8.windows(5).position(|w| w == marker).unwrap() + marker.len();
    let scalar_hex: String = pkcs8[at..at + 48]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

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
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("COPY public.events"), "the dump has the log");
    for (what, needle) in [
        ("bootstrap secret", BOOTSTRAP_SECRET.to_owned()),
        ("default secret", default_secret),
        ("named secret", extra),
        ("private key (hex)", hex),
        ("private key scalar", scalar_hex),
        ("private key (base64)", b64.encode(&pkcs8)),
        ("key-encryption key", KEK.to_owned()),
    ] {
        assert!(!text.contains(&needle), "{what} found in the dump");
    }
}
