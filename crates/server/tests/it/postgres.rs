#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The real binary on the PostgreSQL backend (`--database-url postgres://…`): serving, an
//! outage of the database under load, and wake-ups across two nodes on one database.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::{FreshDatabase, PgProxy};
use common::{accepted_ids, assert_error, offsets, send, TestServer};
use serde_json::{json, Value};

/// Same operator token on every node (the test harness sets it); same master key so any node
/// can open any sink's secrets.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The checkpoint signing key of the chain test's nodes.
const INTEGRITY_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn node(url: &str) -> TestServer {
    TestServer::spawn_with(&["--database-url", url], &[("AUDITRELAY_MASTER_KEY", MASTER_KEY)])
}

async fn readyz(server: &TestServer) -> u16 {
    match server
        .http
        .get(server.url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While the database is cut away, ingest answers 503 with our JSON error (never 202) and
/// /readyz says so; when it comes back everything resumes without a restart, and every event
/// that got a 202 — before, during or after the outage — is in the log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_answers_503_never_a_false_202_and_recovers() {
    let db = FreshDatabase::create("outage");
    let proxy = PgProxy::start().await;
    let server = Arc::new(node(&db.url_via(proxy.port)));
    server.create_tenant("acme").await;
    let key = server.create_key("acme", &["ingest", "read"]).await;
    let (status, body) = server.post_json(&key, &json!({"type": "a.b", "id": "first"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(readyz(&server).await, 200);

    // Steady load with client ids, so every answer can be checked against the log.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..4 {
        let (server, key, stop) = (server.clone(), key.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answers: Vec<(String, u16)> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("load-{w}-{i}");
                let got = server
                    .post_json(
                        &key,
                        &json!([{"type": "a.b", "id": id}, {"type": "a.c", "id": format!("{id}-b")}]),
                    )
                    .await;
                match got.0 {
                    202 => {}
                    503 => assert_error(&got, 503, "unavailable"),
                    other => panic!("ingest answered {other} during the outage test: {}", got.1),
                }
                answers.push((id, got.0));
                i += 1;
                if got.0 == 503 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    proxy.cut();
    let cut_at = Instant::now();
    eventually(
        Duration::from_secs(15),
        "ingest answers 503 while the database is gone",
        || async {
            let got = server.post_json(&key, &json!({"type": "a.b"})).await;
            if got.0 == 503 {
                assert_error(&got, 503, "unavailable");
            }
            got.0 == 503
        },
    )
    .await;
    eprintln!("first 503 {:?} after the cut", cut_at.elapsed());
    assert_eq!(readyz(&server).await, 503, "readiness reflects the database");
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.restore();
    let restored_at = Instant::now();
    eventually(
        Duration::from_secs(20),
        "ingest answers 202 again on its own",
        || async { server.post_json(&key, &json!({"type": "a.b"})).await.0 == 202 },
    )
    .await;
    eprintln!("first 202 {:?} after the restore", restored_at.elapsed());
    assert_eq!(readyz(&server).await, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);

    let mut answers = Vec::new();
    for task in load {
        answers.extend(task.await.unwrap());
    }
    let log = server.read_log("acme").await;
    let n = log.len() as u64;
    assert_eq!(offsets(&log), (1..=n).collect::<Vec<_>>(), "offsets stay gapless");
    let mut stored: HashMap<String, u32> = HashMap::new();
    for e in &log {
        *stored.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(stored.values().all(|&c| c == 1), "an id stored twice");
    let accepted: Vec<&String> = answers.iter().filter(|(_, s)| *s == 202).map(|(id, _)| id).collect();
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    assert!(refused > 0, "the load saw the outage");
    assert!(accepted.len() > 10, "the load ran before and after: {}", accepted.len());
    for id in accepted {
        assert_eq!(stored.get(id.as_str()), Some(&1), "202'd event {id} is stored");
        assert_eq!(stored.get(&format!("{id}-b")), Some(&1), "202'd event {id}-b is stored");
    }
    eprintln!(
        "{} answers, {refused} refused with 503, {n} events stored",
        answers.len()
    );
}

/// A long-poll waiting on node B answers within milliseconds of an ingest on node A.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_on_one_node_wakes_on_ingest_at_another() {
    let db = FreshDatabase::create("wake");
    let a = node(&db.url());
    let b = node(&db.url());
    a.create_tenant("acme").await;
    let key = a.create_key("acme", &["ingest", "read"]).await;
    // B answers for a tenant and a key created on A.
    let (status, body) = b.poll(&key, "after=0&wait=0").await;
    assert_eq!(
        (status, body["events"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );

    let mut latencies = Vec::new();
    for round in 0..5u64 {
        let waiting = {
            let (http, url, key) = (
                b.http.clone(),
                b.url(&format!("/v1/events?after={round}&wait=20")),
                key.clone(),
            );
            tokio::spawn(async move {
                let got = send(http.get(url).bearer_auth(key)).await;
                (got, Instant::now())
            })
        };
        // Let the long-poll reach its wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        let (status, body) = a
            .post_json(&key, &json!({"type": "a.b", "id": format!("ev-{round}")}))
            .await;
        assert_eq!(status, 202, "{body}");
        let acked = Instant::now();
        let ((status, page), answered) = waiting.await.unwrap();
        assert_eq!(status, 200, "{page}");
        let events: Vec<Value> = page["events"].as_array().unwrap().clone();
        assert_eq!(offsets(&events), vec![round + 1]);
        assert_eq!(events[0]["id"], format!("ev-{round}"));
        assert_eq!(accepted_ids(&body)[0].1, round + 1);
        let after_ack = answered.saturating_duration_since(acked);
        latencies.push((answered - sent, after_ack));
        assert!(
            after_ack < Duration::from_millis(250),
            "node B answered {after_ack:?} after node A's 202"
        );
    }
    eprintln!("ingest on A -> long-poll answer on B (from send, after A's 202): {latencies:?}");
}

/// `auditrelay verify --url …` against the live log, as a tenant key → (success, output).
fn verify_live(base: &str, key: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .args(["verify", "--url", base, "--token", key])
        .env_remove("AUDITRELAY_TOKEN")
        .env_remove("AUDITRELAY_URL")
        .output()
        .expect("running auditrelay verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The hash chain on PostgreSQL, end to end: events appended by two nodes at once chain into
/// one history per tenant, a signed checkpoint covers it, and `verify` names the offset of an
/// event altered or deleted in the database behind the servers' backs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hash_chain_verifies_across_nodes_and_tampering_is_named() {
    let db = FreshDatabase::create("chain");
    let args = ["--database-url", &db.url(), "--checkpoint-interval-secs", "1"];
    // One signer per log: every node runs with the same integrity key.
    let env = [
        ("AUDITRELAY_MASTER_KEY", MASTER_KEY),
        ("AUDITRELAY_INTEGRITY_KEY", INTEGRITY_KEY),
    ];
    let a = TestServer::spawn_with(&args, &env);
    let b = TestServer::spawn_with(&args, &env);
    a.create_tenant("acme").await;
    let key = a.create_key("acme", &["ingest", "read"]).await;
    let batch = |node: &str, n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({ "type": "user.login", "actor": { "id": format!("usr_{node}{i}") } }))
                .collect(),
        )
    };
    let mut sends = Vec::new();
    for round in 0..5 {
        for (node, server) in [("a", &a), ("b", &b)] {
            let body = batch(&format!("{node}{round}_"), 4);
            let req = server.http.post(server.url("/v1/events")).bearer_auth(&key).json(&body);
            sends.push(tokio::spawn(send(req)));
        }
    }
    for s in sends {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 202, "{body}");
    }
    eventually(Duration::from_secs(15), "a checkpoint at offset 40", || {
        let (a, key) = (&a, key.clone());
        async move {
            let (_, page) = send(a.http.get(a.url("/v1/integrity/checkpoints")).bearer_auth(&key)).await;
            page["checkpoints"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["offset"] == 40))
        }
    })
    .await;
    for server in [&a, &b] {
        let (ok, out) = verify_live(&server.url(""), &key);
        assert!(
            ok && out.contains("intact: 40 events, offsets 1..40, last checkpoint signed at"),
            "{out}"
        );
    }

    // A node started with a key of its own says at once that the log has another signer.
    let stray = TestServer::spawn_with(&args, &[("AUDITRELAY_MASTER_KEY", MASTER_KEY)]);
    assert!(
        stray.log().contains("signed by another integrity key"),
        "{}",
        stray.log()
    );
    drop(stray);

    let original = db.query("SELECT body FROM events WHERE tenant_id = 'acme' AND seq = 7");
    db.query(
        "UPDATE events SET body = replace(body, 'user.login', 'user.logout') WHERE tenant_id = 'acme' AND seq = 7",
    );
    let (ok, out) = verify_live(&b.url(""), &key);
    assert!(!ok && out.contains("altered or inserted event at offset 7"), "{out}");
    db.query(&format!(
        "UPDATE events SET body = '{}' WHERE tenant_id = 'acme' AND seq = 7",
        original.trim().replace('\'', "''")
    ));
    let (ok, out) = verify_live(&a.url(""), &key);
    assert!(ok, "restored: {out}");

    db.query("DELETE FROM events WHERE tenant_id = 'acme' AND seq = 9");
    let (ok, out) = verify_live(&a.url(""), &key);
    assert!(!ok && out.contains("offset 9 is missing"), "{out}");
}
