//! Helpers shared by the delivery test files (`delivery_faults.rs`, `delivery_operations.rs`).
//! Each file uses a different subset.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::receiver::Receiver;
use crate::common::{accepted_ids, send, TestServer};
use serde_json::{json, Value};

/// A server that may deliver to loopback (the receivers live there).
pub(crate) fn server() -> TestServer {
    TestServer::spawn_with(&["--allow-private-networks"], &[])
}

/// Fast retries so fault scripts play out in milliseconds.
pub(crate) fn fast_retry() -> Value {
    json!({ "max_attempts": 30, "initial_backoff_ms": 5, "max_backoff_ms": 40 })
}

pub(crate) async fn create_sink(s: &TestServer, token: &str, body: Value) -> Value {
    let (status, sink) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(token).json(&body)).await;
    assert_eq!(status, 201, "creating sink: {sink}");
    sink
}

pub(crate) async fn webhook(s: &TestServer, tenant: &str, r: &Receiver, extra: Value) -> Value {
    let mut body = json!({
        "name": "test-hook", "kind": "webhook", "tenant": tenant,
        "config": { "url": r.url() },
        "start_at": "earliest",
        "batch": { "max_events": 10, "flush_interval_ms": 0 },
        "retry": fast_retry(),
        "breaker": { "failure_threshold": 5, "cooldown_ms": 100 },
        "timeout_ms": 500,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    create_sink(s, &s.admin, body).await
}

/// Ingests `n` events in requests of `per_request`; returns (id, offset) of every 202.
pub(crate) async fn ingest(s: &TestServer, tenant: &str, n: usize, per_request: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let batch: Vec<Value> = (i..(i + per_request).min(n))
            .map(|k| json!({ "type": "user.login", "action": "login", "metadata": { "k": k } }))
            .collect();
        i += batch.len();
        let (status, answer) = send(
            s.http
                .post(s.url(&format!("/v1/events?tenant={tenant}")))
                .bearer_auth(&s.admin)
                .json(&batch),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        out.extend(accepted_ids(&answer));
    }
    out
}

pub(crate) async fn get(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.get_as_operator(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

pub(crate) async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    send(s.http.post(s.url(path)).bearer_auth(&s.admin).json(&body)).await
}

pub(crate) async fn health(s: &TestServer, sink: &str) -> Value {
    get(s, &format!("/v1/sinks/{sink}/health")).await
}

pub(crate) async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Every accepted id reached the receiver, and (with one batch in flight) the first deliveries
/// came in offset order. Returns the number of duplicate deliveries.
pub(crate) fn assert_complete_and_ordered(r: &Receiver, accepted: &[(String, u64)]) -> usize {
    assert_complete(r, accepted, true)
}

pub(crate) fn assert_complete(r: &Receiver, accepted: &[(String, u64)], ordered: bool) -> usize {
    let got = r.accepted_events();
    let ids: HashSet<String> = got.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<_> = accepted.iter().filter(|(id, _)| !ids.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} accepted events never reached the receiver: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    for e in &got {
        if seen.insert(e["id"].as_str().unwrap().to_owned()) {
            firsts.push(e["offset"].as_u64().unwrap());
        }
    }
    if ordered {
        assert!(
            firsts.windows(2).all(|w| w[0] < w[1]),
            "first deliveries out of order: {firsts:?}"
        );
    }
    got.len() - seen.len()
}
