//! Sink secrets at rest: no secret any sink kind was given appears in the SQLite files or the
//! server's log — after creation, a PATCH, failing deliveries and test deliveries, and a
//! `keys rotate` — and a rotation re-seals every secret under the new key, removes the old
//! ciphertexts from the database, and leaves sinks delivering.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::receiver::{Fault, Receiver};
use common::{send, send_text, TestServer};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A secret value that cannot occur by chance, for `kind`/`name`, generation `gen`.
fn value(kind: &str, name: &str, gen: u32) -> String {
    format!("s3cr3t-{kind}-{name}-g{gen}-7Hq2Zx")
}

/// A webhook signing secret (`whsec_` + base64 of a distinctive 32-byte key), and the raw key.
fn whsec(gen: u32) -> (String, Vec<u8>) {
    let raw = format!("webhook-signing-key-gen{gen}-AbCdEf").into_bytes();
    (format!("whsec_{}", B64.encode(&raw)), raw)
}

/// A Sentinel shared key (base64) and the raw key.
fn shared_key(gen: u32) -> (String, Vec<u8>) {
    let raw = format!("sentinel-shared-key-gen{gen}-QwErTy").into_bytes();
    (B64.encode(&raw), raw)
}

/// Every sink kind that takes secrets, pointed at `base`, with generation `gen` secrets. Returns
/// the sink bodies and every needle (secret values, and raw keys behind encoded ones).
fn sinks(base: &str, gen: u32) -> (Vec<Value>, Vec<Vec<u8>>) {
    let (hook, hook_raw) = whsec(gen);
    let (shared, shared_raw) = shared_key(gen);
    let v = |k: &str, n: &str| value(k, n, gen);
    let bodies = vec![
        json!({ "kind": "webhook", "config": { "url": format!("{base}/hook") }, "secrets": { "signing_secret": hook } }),
        json!({ "kind": "splunk_hec", "config": { "url": base }, "secrets": { "token": v("splunk", "token") } }),
        json!({ "kind": "elastic", "config": { "url": base, "auth": "api_key" }, "secrets": { "api_key": v("elastic", "api_key") } }),
        json!({ "kind": "elastic", "config": { "url": base, "auth": "basic", "username": "relay" }, "secrets": { "password": v("elastic", "password") } }),
        json!({ "kind": "datadog", "config": { "url": format!("{base}/api/v2/logs") }, "secrets": { "api_key": v("datadog", "api_key") } }),
        json!({ "kind": "sentinel", "config": { "mode": "logs_ingestion", "endpoint": base, "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
                "stream": "Custom-AuditRelay_CL", "authority_url": base, "azure_tenant_id": "tid", "client_id": "cid" },
               "secrets": { "client_secret": v("sentinel", "client_secret") } }),
        json!({ "kind": "sentinel", "config": { "mode": "data_collector", "url": format!("{base}/api/logs"),
                "workspace_id": "00000000-0000-0000-0000-000000000000", "log_type": "AuditRelay" },
               "secrets": { "shared_key": shared } }),
        json!({ "kind": "generic_https", "config": { "url": format!("{base}/generic"), "auth_header": "X-Api-Key" },
               "secrets": { "auth_value": v("generic", "auth_value") } }),
        json!({ "kind": "s3", "config": { "bucket": "audit", "region": "us-east-1", "endpoint": base, "path_style": true },
               "secrets": { "access_key_id": v("s3", "access_key_id"), "secret_access_key": v("s3", "secret_access_key") } }),
    ];
    let mut needles: Vec<Vec<u8>> = bodies
        .iter()
        .flat_map(|b| {
            b["secrets"]
                .as_object()
                .unwrap()
                .values()
                .map(|s| s.as_str().unwrap().as_bytes().to_vec())
        })
        .collect();
    needles.push(hook_raw);
    needles.push(shared_raw);
    (bodies, needles)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file of the data dir (the database, its -wal and -shm, key files), recursively.
fn data_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(data_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Asserts that no needle is in any data-dir file nor in the server log; `when` names the moment.
fn assert_nowhere(s: &TestServer, needles: &[Vec<u8>], when: &str) {
    let files = data_files(s.data_dir());
    assert!(
        files.iter().any(|p| p.file_name().unwrap() == "auditrelay.db"),
        "{when}: no database in {files:?}"
    );
    let log = s.log();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        for needle in needles {
            assert!(
                !contains(&bytes, needle),
                "{when}: secret {:?} found in {}",
                String::from_utf8_lossy(needle),
                path.display()
            );
        }
    }
    for needle in needles {
        assert!(
            !contains(log.as_bytes(), needle),
            "{when}: secret {:?} found in the server log",
            String::from_utf8_lossy(needle)
        );
    }
}

async fn create(s: &TestServer, mut body: Value, i: usize) -> String {
    body["name"] = json!(format!("secret-{i}"));
    body["tenant"] = json!("acme");
    body["start_at"] = json!("earliest");
    body["batch"] = json!({ "max_events": 10, "flush_interval_ms": 10 });
    body["retry"] = json!({ "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 });
    let (status, created) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&body)).await;
    assert_eq!(status, 201, "{body} → {created}");
    created["id"].as_str().unwrap().to_owned()
}

fn rotate(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditrelay"));
    cmd.args(["keys", "rotate", "--data-dir"]).arg(data_dir).args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUDITRELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// `(sink id, sealed blob)` of every sink, read from the stopped server's database.
fn sealed_blobs(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("auditrelay.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT id, sealed_secrets FROM sinks ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn wal_and_db(data_dir: &Path) -> Vec<u8> {
    let mut all = std::fs::read(data_dir.join("auditrelay.db")).unwrap();
    if let Ok(wal) = std::fs::read(data_dir.join("auditrelay.db-wal")) {
        all.extend(wal);
    }
    all
}

#[tokio::test]
async fn no_secret_of_any_kind_reaches_the_database_or_the_log() {
    let receiver = Receiver::start().await;
    // Every request fails: errors are where secrets like to leak.
    receiver.set_default(Some(Fault::Status(500, vec![])));
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let mut s = TestServer::spawn_with(&["--allow-private-networks"], &[("AUDITRELAY_LOG", "debug")]);
    s.create_tenant("acme").await;
    let (bodies, mut needles) = sinks(&base, 1);
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        ids.push(create(&s, body.clone(), i).await);
    }
    let key = s.create_key("acme", &["ingest"]).await;
    let (status, _) = s
        .post_json(&key, &json!([{ "type": "user.login" }, { "type": "user.logout" }]))
        .await;
    assert_eq!(status, 202);

    // A test delivery that fails, for every sink; its answer names no secret.
    for id in &ids {
        let (status, answer) = send(
            s.http
                .post(s.url(&format!("/v1/sinks/{id}/test")))
                .bearer_auth(&s.admin)
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_ne!(answer["delivered"], json!(true), "{answer}");
        for needle in &needles {
            assert!(
                !contains(answer.to_string().as_bytes(), needle),
                "test answer leaked: {answer}"
            );
        }
    }

    // PATCH every sink with new secrets: neither generation may appear anywhere.
    let (new_bodies, new_needles) = sinks(&base, 2);
    for (id, body) in ids.iter().zip(&new_bodies) {
        let (status, answer) = send(
            s.http
                .patch(s.url(&format!("/v1/sinks/{id}")))
                .bearer_auth(&s.admin)
                .json(&json!({ "secrets": body["secrets"] })),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        for needle in needles.iter().chain(&new_needles) {
            assert!(
                !contains(answer.to_string().as_bytes(), needle),
                "PATCH answer leaked: {answer}"
            );
        }
    }
    needles.extend(new_needles);
    for id in &ids {
        let (status, _) = send(
            s.http
                .post(s.url(&format!("/v1/sinks/{id}/test")))
                .bearer_auth(&s.admin)
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, 200);
    }
    // Failing deliveries (retries, dead letters, the delivery log flushed every 500 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.requests().len() >= ids.len(), "the sinks did try to deliver");
    // The needles are the real credentials: the receiver (and only it) saw them on the wire.
    let generic = value("generic", "auth_value", 2);
    assert!(
        receiver
            .requests()
            .iter()
            .any(|r| r.headers.get("x-api-key") == Some(&generic)),
        "the generic sink sent its (patched) credential"
    );

    let (_, list) = s.get_as_operator("/v1/sinks").await;
    let (_, metrics) = send_text(s.http.get(s.url("/metrics"))).await;
    let mut answers = list.to_string();
    for id in &ids {
        for path in ["", "/health", "/deliveries", "/dead-letters"] {
            let (_, got) = s.get_as_operator(&format!("/v1/sinks/{id}{path}")).await;
            answers.push_str(&got.to_string());
        }
    }
    for needle in &needles {
        assert!(
            !contains(answers.as_bytes(), needle),
            "an API answer leaked {:?}",
            String::from_utf8_lossy(needle)
        );
        assert!(!contains(metrics.as_bytes(), needle), "/metrics leaked a secret");
    }
    assert_nowhere(&s, &needles, "while running");

    assert!(s.sigterm().await.success());
    assert_nowhere(&s, &needles, "after a clean stop");
    let out = rotate(s.data_dir(), &[], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_nowhere(&s, &needles, "after keys rotate");
    for needle in &needles {
        assert!(
            !contains(&out.stdout, needle) && !contains(&out.stderr, needle),
            "keys rotate printed a secret"
        );
    }
}

#[tokio::test]
async fn keys_rotate_reseals_every_secret_and_sinks_keep_delivering() {
    let receiver = Receiver::start().await;
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let mut s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let auth_value = value("generic", "auth_value", 1);
    create(
        &s,
        json!({ "kind": "generic_https", "config": { "url": format!("{base}/generic"), "auth_header": "X-Api-Key" },
                "secrets": { "auth_value": auth_value } }),
        0,
    )
    .await;
    create(&s, json!({ "kind": "webhook", "config": { "url": format!("{base}/hook") }, "secrets": { "signing_secret": whsec(1).0 } }), 1).await;
    let key = s.create_key("acme", &["ingest"]).await;
    assert_eq!(
        s.post_json(&key, &json!({ "type": "user.login", "id": "before" }))
            .await
            .0,
        202
    );
    assert!(
        wait_for_requests(&receiver, 2).await,
        "both sinks delivered before the rotation"
    );

    // Refused while the server runs: it would go on sealing under the old key.
    let out = rotate(s.data_dir(), &[], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(s.sigterm().await.success());
    let before = sealed_blobs(s.data_dir());
    assert_eq!(before.len(), 2);
    let old_key = std::fs::read_to_string(s.data_dir().join("master.key")).unwrap();
    for (_, blob) in &before {
        assert_eq!(blob[0], 2, "sealed blobs carry a version");
    }
    let files = wal_and_db(s.data_dir());
    for (id, blob) in &before {
        assert!(
            contains(&files, &blob[9..]),
            "positive control: {id}'s ciphertext is findable before"
        );
    }
    let old_id = hex(&before[0].1[1..9]);
    assert!(
        before.iter().all(|(_, b)| hex(&b[1..9]) == old_id),
        "one key id for all"
    );

    let out = rotate(s.data_dir(), &[], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("re-sealed 2 sink(s)"), "{stdout}");
    assert!(stdout.contains(&old_id), "{stdout}");

    let after = sealed_blobs(s.data_dir());
    let new_id = hex(&after[0].1[1..9]);
    assert_ne!(new_id, old_id, "the key id changed");
    assert!(stdout.contains(&new_id), "{stdout}");
    assert!(
        after.iter().all(|(_, b)| b[0] == 2 && hex(&b[1..9]) == new_id),
        "every blob under the new key"
    );
    let files = wal_and_db(s.data_dir());
    for (id, blob) in &before {
        assert!(
            !contains(&files, &blob[9..]),
            "the old ciphertext of {id} is still in the database files"
        );
    }
    let new_key = std::fs::read_to_string(s.data_dir().join("master.key")).unwrap();
    assert_ne!(new_key.trim(), old_key.trim(), "master.key replaced");
    let retired = s.data_dir().join("master-keys").join(format!("{old_id}.key"));
    assert_eq!(
        std::fs::read_to_string(&retired).unwrap().trim(),
        old_key.trim(),
        "the old key is retired, not lost"
    );
    assert!(
        !stdout.contains(new_key.trim()),
        "the new key is not printed when it is kept in the data dir"
    );

    // The server reads the re-sealed secrets: both sinks deliver, with the right credential.
    s.restart();
    assert_eq!(
        s.post_json(&key, &json!({ "type": "user.login", "id": "after" }))
            .await
            .0,
        202
    );
    assert!(
        wait_for_requests(&receiver, 4).await,
        "both sinks delivered after the rotation"
    );
    let generic: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/generic")
        .collect();
    assert!(generic.len() >= 2);
    assert!(
        generic.iter().all(|r| r.headers.get("x-api-key") == Some(&auth_value)),
        "the decrypted credential is the original"
    );

    // A second rotation to a key the operator chose, then dropping retired keys.
    assert!(s.sigterm().await.success());
    let chosen = B64.encode([42u8; 32]);
    let key_file = s.data_dir().parent().unwrap().join("next.key");
    std::fs::write(&key_file, &chosen).unwrap();
    let out = rotate(
        s.data_dir(),
        &["--new-master-key-file", key_file.to_str().unwrap(), "--drop-retired"],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(s.data_dir().join("master.key")).unwrap().trim(),
        chosen
    );
    assert!(
        !s.data_dir().join("master-keys").exists(),
        "--drop-retired removed the retired keys"
    );
    s.restart();
    assert_eq!(
        s.post_json(&key, &json!({ "type": "user.login", "id": "again" }))
            .await
            .0,
        202
    );
    assert!(
        wait_for_requests(&receiver, 6).await,
        "both sinks delivered after the second rotation"
    );
}

#[tokio::test]
async fn keys_rotate_with_the_master_key_from_the_environment() {
    let receiver = Receiver::start().await;
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let k1 = B64.encode([1u8; 32]);
    let k2 = B64.encode([2u8; 32]);
    let mut s = TestServer::spawn_with(&["--allow-private-networks"], &[("AUDITRELAY_MASTER_KEY", &k1)]);
    s.create_tenant("acme").await;
    create(&s, json!({ "kind": "webhook", "config": { "url": format!("{base}/hook") }, "secrets": { "signing_secret": whsec(1).0 } }), 0).await;
    assert!(s.sigterm().await.success());
    assert!(
        !s.data_dir().join("master.key").exists(),
        "a configured key is never written to the data dir"
    );

    let key_file = s.data_dir().parent().unwrap().join("k2");
    std::fs::write(&key_file, &k2).unwrap();
    let out = rotate(
        s.data_dir(),
        &["--new-master-key-file", key_file.to_str().unwrap()],
        &[("AUDITRELAY_MASTER_KEY", &k1)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("set AUDITRELAY_MASTER_KEY"), "{stdout}");
    assert!(
        !stdout.contains(&k2) && !stdout.contains(&k1),
        "keys the operator supplied are not echoed"
    );
    assert!(!s.data_dir().join("master.key").exists() && !s.data_dir().join("master-keys").exists());

    // Restarted with the old key only, the server cannot open the sink; the log names the key
    // it lacks, and the sink is not paused for the server's mistake.
    s.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_id = auditrelay_engine::Keyring::new(&[2u8; 32]).current_id().to_string();
    assert!(
        s.log()
            .contains(&format!("master key {new_id}, which this server does not have")),
        "{}",
        s.log()
    );
    assert!(s.sigterm().await.success());

    // With the new key (and the old one as a previous key), it delivers.
    s.set_env("AUDITRELAY_MASTER_KEY", &k2);
    s.set_env("AUDITRELAY_PREVIOUS_MASTER_KEYS", &k1);
    s.restart();
    let key = s.create_key("acme", &["ingest"]).await;
    assert_eq!(s.post_json(&key, &json!({ "type": "user.login" })).await.0, 202);
    assert!(
        wait_for_requests(&receiver, 1).await,
        "the sink delivered under the new key"
    );

    // Generated new key in env mode: printed once, since only the operator can keep it.
    assert!(s.sigterm().await.success());
    let out = rotate(s.data_dir(), &[], &[("AUDITRELAY_MASTER_KEY", &k2)]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("auditrelay: the new master key (shown once; store it now): "))
        .expect("the generated key is printed")
        .to_owned();
    s.set_env("AUDITRELAY_MASTER_KEY", &printed);
    s.set_env("AUDITRELAY_PREVIOUS_MASTER_KEYS", "");
    s.restart();
    assert_eq!(s.post_json(&key, &json!({ "type": "user.login" })).await.0, 202);
    assert!(
        wait_for_requests(&receiver, 2).await,
        "the sink delivered under the generated key"
    );
}

async fn wait_for_requests(receiver: &Receiver, n: usize) -> bool {
    for _ in 0..1000 {
        if receiver.requests().iter().filter(|r| r.answered == 200).count() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let s = TestServer::spawn();
    let out = Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(s.data_dir())
        .env("AUDITRELAY_ADMIN_TOKEN", &s.admin)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop it first"), "{stderr}");
    assert!(s.healthy().await, "the first server is unaffected");
}

/// Invariant *credentials stored as hashes*: a tenant key and the operator token are in no
/// data-dir file and not in the log, and what the database holds is the key's SHA-256.
#[tokio::test]
async fn api_keys_and_the_operator_token_are_stored_only_as_hashes() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let key = s.create_key("acme", &["ingest", "read"]).await;
    let (status, _) = s.poll(&key, "after=0").await;
    assert_eq!(status, 200, "the key works");
    let needles = vec![key.as_bytes().to_vec(), common::ADMIN_TOKEN.as_bytes().to_vec()];
    assert_nowhere(&s, &needles, "after creating and using a key");
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()).into();
    assert!(
        contains(&wal_and_db(s.data_dir()), &hash),
        "the key's SHA-256 is what is stored"
    );
}
