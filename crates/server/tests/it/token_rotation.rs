//! Credentials. Operator token rotation without a restart: `POST /v1/admin/token/rotate` answers a new token
//! once, the old one is refused at once, and the new hash survives a restart — winning over the
//! token still set in the environment. Tenant keys: random, shown once, hashed, last use, revocable.

use crate::common;

use common::{assert_error, send, TestServer};
use serde_json::Value;

async fn list_tenants(s: &TestServer, token: &str) -> (u16, Value) {
    send(s.http.get(s.url("/v1/tenants")).bearer_auth(token)).await
}

/// Every byte of every file under `dir`, as lossy text.
fn data_dir_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).expect("reading the data dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).expect("reading a file")));
        }
    }
    out
}

#[tokio::test]
async fn the_operator_token_rotates_without_a_restart_and_the_rotation_survives_one() {
    let mut s = TestServer::spawn();
    s.create_tenant("acme").await;
    let key = s.create_key("acme", &["ingest", "read", "manage"]).await;

    // Tenant keys may not rotate it.
    let refused = send(s.http.post(s.url("/v1/admin/token/rotate")).bearer_auth(&key)).await;
    assert_error(&refused, 403, "forbidden");

    let old = s.admin.clone();
    let (status, body) = send(s.http.post(s.url("/v1/admin/token/rotate")).bearer_auth(&old)).await;
    assert_eq!(status, 200, "{body}");
    let new = body["token"].as_str().expect("the new token").to_owned();
    assert!(new.starts_with("aro_") && new.len() > 40, "token {new}");
    assert_ne!(new, old);

    assert_error(&list_tenants(&s, &old).await, 401, "unauthorized");
    assert_eq!(list_tenants(&s, &new).await.0, 200);
    // Tenant keys are untouched by a rotation.
    assert_eq!(s.poll(&key, "").await.0, 200);

    // Rotating again retires the second token too.
    let (status, body) = send(s.http.post(s.url("/v1/admin/token/rotate")).bearer_auth(&new)).await;
    assert_eq!(status, 200, "{body}");
    let newest = body["token"].as_str().expect("token").to_owned();
    assert_error(&list_tenants(&s, &new).await, 401, "unauthorized");

    // The data dir holds the hash, never a token.
    let stored = data_dir_text(s.data_dir());
    for t in [&old, &new, &newest] {
        assert!(!stored.contains(t.as_str()), "a token is stored in clear");
    }

    // A restart keeps the rotated token, although AUDITRELAY_ADMIN_TOKEN still holds the old one.
    assert!(s.sigterm().await.success());
    s.restart();
    assert_error(&list_tenants(&s, &old).await, 401, "unauthorized");
    assert_error(&list_tenants(&s, &new).await, 401, "unauthorized");
    assert_eq!(list_tenants(&s, &newest).await.0, 200);
    assert!(
        s.log().contains("the configured token is ignored"),
        "the server says why the configured token no longer works"
    );
}

#[tokio::test]
async fn tenant_keys_are_random_shown_once_stored_hashed_and_record_their_last_use() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let (id1, key1) = s.create_key_full("acme", &["read"]).await;
    let (_, key2) = s.create_key_full("acme", &["read"]).await;
    assert_ne!(key1, key2);
    for k in [&key1, &key2] {
        // `ark_` + 32 random bytes in base64url.
        assert!(k.starts_with("ark_") && k.len() == 4 + 43, "key {k}");
    }
    // Shown once: the list shows ids and metadata, never the secret.
    let (status, list) = send(s.http.get(s.url("/v1/tenants/acme/keys")).bearer_auth(&s.admin)).await;
    assert_eq!(status, 200, "{list}");
    assert!(!list.to_string().contains(&key1) && !list.to_string().contains(&key2));
    let listed = |list: &Value| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|k| k["id"] == id1.as_str())
            .cloned()
            .expect("key listed")
    };
    assert_eq!(listed(&list)["last_used_at"], Value::Null, "never used yet");

    // Using it records when (written in the background, at most once a minute per key).
    assert_eq!(s.poll(&key1, "").await.0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = send(s.http.get(s.url("/v1/tenants/acme/keys")).bearer_auth(&s.admin)).await;
        if listed(&list)["last_used_at"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at was never set: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Revoked: refused at once, still listed with its revocation time.
    let resp = s
        .http
        .delete(s.url(&format!("/v1/tenants/acme/keys/{id1}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .expect("revoking");
    assert_eq!(resp.status(), 204);
    assert_error(&s.poll(&key1, "").await, 401, "unauthorized");
    assert_eq!(s.poll(&key2, "").await.0, 200, "another key is unaffected");

    // The store holds hashes only (the SQLite files under the data dir).
    let stored = data_dir_text(s.data_dir());
    assert!(
        !stored.contains(&key1) && !stored.contains(&key2),
        "a key is stored in clear"
    );
}
