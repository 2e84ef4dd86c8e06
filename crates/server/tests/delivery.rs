#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The delivery engine end to end: the real binary, a real webhook receiver on loopback with
//! scripted faults, everything over HTTP.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::receiver::{Fault, Receiver};
use common::{accepted_ids, assert_error, send, TestServer};
use serde_json::{json, Value};

/// A server that may deliver to loopback (the receivers live there).
fn server() -> TestServer {
    TestServer::spawn_with(&["--allow-private-networks"], &[])
}

/// Fast retries so fault scripts play out in milliseconds.
fn fast_retry() -> Value {
    json!({ "max_attempts": 30, "initial_backoff_ms": 5, "max_backoff_ms": 40 })
}

async fn create_sink(s: &TestServer, token: &str, body: Value) -> Value {
    let (status, sink) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(token).json(&body)).await;
    assert_eq!(status, 201, "creating sink: {sink}");
    sink
}

async fn webhook(s: &TestServer, tenant: &str, r: &Receiver, extra: Value) -> Value {
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
async fn ingest(s: &TestServer, tenant: &str, n: usize, per_request: usize) -> Vec<(String, u64)> {
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

async fn get(s: &TestServer, path: &str) -> Value {
    let (status, body) = send(s.http.get(s.url(path)).bearer_auth(&s.admin)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    send(s.http.post(s.url(path)).bearer_auth(&s.admin).json(&body)).await
}

async fn health(s: &TestServer, sink: &str) -> Value {
    get(s, &format!("/v1/sinks/{sink}/health")).await
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
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
fn assert_complete_and_ordered(r: &Receiver, accepted: &[(String, u64)]) -> usize {
    assert_complete(r, accepted, true)
}

fn assert_complete(r: &Receiver, accepted: &[(String, u64)], ordered: bool) -> usize {
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

#[tokio::test]
async fn every_event_arrives_in_order_through_every_kind_of_fault() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.push([
        Fault::status(503),
        Fault::status(503),
        Fault::status(503),
        Fault::Reset,
        Fault::Hang(Duration::from_millis(900)),
        Fault::Status(429, vec![("retry-after", "1".into())]),
        Fault::SlowBody(Duration::from_millis(1500)),
        Fault::status(500),
        Fault::status(502),
        Fault::status(408),
    ]);
    let sink = webhook(&s, "acme", &r, json!({})).await;
    let id = sink["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 400, 25).await;
    assert!(
        r.wait_for(400, Duration::from_secs(30)).await,
        "only {} of 400 arrived",
        r.accepted_ids().len()
    );
    let duplicates = assert_complete_and_ordered(&r, &accepted);
    // A late answer (hang, slow body) can be a delivery the engine never heard of: at most one
    // batch per such fault comes twice.
    assert!(duplicates <= 2 * 10, "{duplicates} duplicates");
    // Retry-After: 1 was honoured: the attempt after the 429 came at least 1 s later.
    let reqs = r.requests();
    let i = reqs.iter().position(|q| q.answered == 429).unwrap();
    assert!(
        reqs[i + 1].at - reqs[i].at >= Duration::from_millis(990),
        "Retry-After ignored"
    );
    let h = health(&s, id).await;
    assert_eq!(h["lag"], 0, "{h}");
    assert!(h["failure_count"].as_u64().unwrap() >= 10, "{h}");
    assert!(h["retried_attempts"].as_u64().unwrap() >= 10, "{h}");
    assert_eq!(h["dead_letters"], 0, "{h}");
    assert_eq!(h["state"], "active", "{h}");
    // Every request was signed and carried the same webhook-id on each retry of a batch.
    assert!(reqs.iter().all(|q| q.headers.contains_key("webhook-signature")));
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let delivered: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("auditrelay_sink_delivered_events_total{{sink=\"{id}\"}} ")))
        .expect("delivered counter")
        .parse()
        .unwrap();
    assert!(delivered >= 400.0, "{delivered}");
    assert!(
        metrics.contains("auditrelay_sink_delivery_latency_seconds_bucket"),
        "latency histogram missing"
    );
}

#[tokio::test]
async fn pipelined_batches_commit_in_order_and_nothing_is_lost() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    // Faults interleaved with successes: with 4 batches in flight, later batches succeed
    // while earlier ones retry.
    for _ in 0..5 {
        r.push([Fault::status(200), Fault::status(503), Fault::status(200), Fault::Reset]);
    }
    let sink = webhook(&s, "acme", &r, json!({ "max_in_flight": 4 })).await;
    let id = sink["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 600, 50).await;
    assert!(r.wait_for(600, Duration::from_secs(30)).await);
    let ids = r.accepted_ids();
    assert!(accepted.iter().all(|(i, _)| ids.contains(i)));
    wait_until("cursor at head", Duration::from_secs(10), || async {
        health(&s, id).await["lag"] == 0
    })
    .await;
}

#[tokio::test]
async fn redirects_are_not_followed_and_refused_batches_become_dead_letters_that_retry() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.push([
        Fault::Status(
            301,
            vec![("location", format!("http://127.0.0.1:{}/elsewhere", r.port))],
        ),
        Fault::status(400),
    ]);
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({ "batch": { "max_events": 5, "flush_interval_ms": 0 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 5, 5).await;
    // First batch → 301 → dead letter. Then a second batch → 400 → dead letter.
    wait_until("first dead letter", Duration::from_secs(10), || async {
        get(&s, &format!("/v1/sinks/{id}/dead-letters")).await["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let more = ingest(&s, "acme", 5, 5).await;
    wait_until("second dead letter", Duration::from_secs(10), || async {
        get(&s, &format!("/v1/sinks/{id}/dead-letters")).await["items"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    // The sink carries on after a dead letter.
    let third = ingest(&s, "acme", 5, 5).await;
    assert!(r.wait_for(5, Duration::from_secs(10)).await);
    assert!(
        r.requests().iter().all(|q| q.path == "/hook"),
        "a redirect was followed"
    );
    let dls = get(&s, &format!("/v1/sinks/{id}/dead-letters")).await;
    let items = dls["items"].as_array().unwrap();
    let statuses: Vec<u64> = items
        .iter()
        .map(|d| d["attempts"][0]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [301, 400], "{dls}");
    assert_eq!(items[0]["first_offset"], accepted[0].1);
    assert_eq!(items[0]["last_offset"], accepted[4].1);
    assert_eq!(items[0]["event_count"], 5);
    assert_eq!(
        items[0]["attempts"].as_array().unwrap().len(),
        1,
        "terminal: one attempt"
    );
    let h = health(&s, id).await;
    assert_eq!(h["lag"], 0, "dead-lettered batches are passed: {h}");
    // Retry the first dead letter: delivered now, and gone.
    let dl = items[0]["id"].as_str().unwrap();
    let (status, answer) = post(&s, &format!("/v1/sinks/{id}/dead-letters/{dl}/retry"), json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let ids = r.accepted_ids();
    assert!(accepted.iter().chain(&third).all(|(i, _)| ids.contains(i)));
    assert!(
        more.iter().all(|(i, _)| !ids.contains(i)),
        "the second dead letter was not retried"
    );
    let (status, _) = send(
        s.http
            .get(s.url(&format!("/v1/sinks/{id}/dead-letters/{dl}")))
            .bearer_auth(&s.admin),
    )
    .await;
    assert_eq!(status, 404);
    // Retry against a failing receiver: 502, the dead letter stays with one more attempt.
    let dl2 = items[1]["id"].as_str().unwrap();
    r.push([Fault::status(500)]);
    let got = post(&s, &format!("/v1/sinks/{id}/dead-letters/{dl2}/retry"), json!({})).await;
    assert_error(&got, 502, "delivery_failed");
    let kept = get(&s, &format!("/v1/sinks/{id}/dead-letters/{dl2}")).await;
    assert_eq!(kept["attempts"].as_array().unwrap().len(), 2, "{kept}");
    // Delete it.
    let resp = s
        .http
        .delete(s.url(&format!("/v1/sinks/{id}/dead-letters/{dl2}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        get(&s, &format!("/v1/sinks/{id}/dead-letters")).await["items"],
        json!([])
    );
}

#[tokio::test]
async fn gone_receiver_pauses_the_sink_without_losing_or_dead_lettering_anything() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.set_default(Some(Fault::status(410)));
    let sink = webhook(&s, "acme", &r, json!({})).await;
    let id = sink["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 30, 30).await;
    wait_until("paused", Duration::from_secs(10), || async {
        health(&s, id).await["state"] == "paused"
    })
    .await;
    let h = health(&s, id).await;
    assert_eq!(h["last_error"]["status"], 410, "{h}");
    assert!(h["pause_reason"].as_str().unwrap().contains("410"), "{h}");
    assert_eq!(h["dead_letters"], 0);
    assert_eq!(h["lag"], 30, "the cursor did not move: {h}");
    let seen = r.requests().len();
    assert_eq!(seen, 1, "one 410 is enough to stop");
    // Fixed receiver + resume → everything arrives.
    r.set_default(None);
    let (status, body) = post(&s, &format!("/v1/sinks/{id}/resume"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false);
    assert!(r.wait_for(30, Duration::from_secs(10)).await);
    assert_complete_and_ordered(&r, &accepted);
}

#[tokio::test]
async fn exhausted_batches_dead_letter_with_every_attempt_or_pause_per_policy() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.set_default(Some(Fault::status(503)));
    let retry = json!({ "max_attempts": 3, "initial_backoff_ms": 1, "max_backoff_ms": 5 });
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({ "retry": retry, "on_exhausted": "pause", "batch": { "max_events": 100, "flush_interval_ms": 0 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    ingest(&s, "acme", 7, 7).await;
    wait_until("paused", Duration::from_secs(10), || async {
        health(&s, id).await["state"] == "paused"
    })
    .await;
    let dls = get(&s, &format!("/v1/sinks/{id}/dead-letters")).await;
    let dl = &dls["items"][0];
    assert_eq!(dl["event_count"], 7, "{dls}");
    let attempts = dl["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], i as u64 + 1);
        assert_eq!(a["status"], 503);
        assert!(a["error"].as_str().unwrap().contains("503"), "{a}");
        assert!(a["at"].is_string() && a["latency_ms"].is_number());
    }
    let h = health(&s, id).await;
    assert_eq!(h["lag"], 0, "dead-lettered then paused: {h}");
}

#[tokio::test]
async fn ten_exhausted_batches_in_a_row_pause_the_sink() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.set_default(Some(Fault::status(422)));
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({ "batch": { "max_events": 1, "flush_interval_ms": 0 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    ingest(&s, "acme", 15, 15).await;
    wait_until("paused", Duration::from_secs(10), || async {
        health(&s, id).await["state"] == "paused"
    })
    .await;
    let h = health(&s, id).await;
    assert_eq!(h["dead_letters"], 10, "{h}");
    assert_eq!(h["lag"], 5, "{h}");
}

#[tokio::test]
async fn a_dead_receiver_slows_neither_ingest_nor_another_sink() {
    let s = server();
    s.create_tenant("acme").await;
    let dead = Receiver::start().await;
    dead.set_default(Some(Fault::Hang(Duration::from_secs(60))));
    let live = Receiver::start().await;
    let stuck = webhook(&s, "acme", &dead, json!({ "timeout_ms": 2000 })).await;
    webhook(&s, "acme", &live, json!({})).await;
    let accepted = ingest(&s, "acme", 2000, 100).await;
    assert!(
        live.wait_for(2000, Duration::from_secs(20)).await,
        "the healthy sink fell behind"
    );
    assert_complete_and_ordered(&live, &accepted);
    assert!(dead.accepted_ids().is_empty());
    let h = health(&s, stuck["id"].as_str().unwrap()).await;
    assert_eq!(h["lag"], 2000, "{h}");
}

#[tokio::test]
async fn sigkill_mid_delivery_loses_nothing_and_no_cursor_passes_an_undelivered_event() {
    let mut s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    // Slow-ish receiver: deliveries are in progress when the kill comes.
    let mut script = Vec::new();
    for _ in 0..40 {
        script.push(Fault::Hang(Duration::from_millis(30)));
    }
    r.push(script);
    let sink = webhook(&s, "acme", &r, json!({ "max_in_flight": 3, "timeout_ms": 2000 })).await;
    let id = sink["id"].as_str().unwrap().to_owned();
    let accepted = ingest(&s, "acme", 1500, 100).await;
    wait_until("some deliveries", Duration::from_secs(10), || async {
        r.accepted_ids().len() >= 50
    })
    .await;
    s.kill_9().await;
    let delivered_at_kill: HashSet<u64> = r
        .accepted_events()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    s.restart();
    // The committed cursor right after restart never passes an event the receiver did not get.
    let h = health(&s, &id).await;
    let cursor = h["tenants"][0]["cursor"].as_u64().unwrap_or(0);
    let missing: Vec<u64> = (1..=cursor).filter(|o| !delivered_at_kill.contains(o)).collect();
    assert!(
        missing.is_empty(),
        "cursor {cursor} passed undelivered offsets {missing:?}"
    );
    assert!(
        r.wait_for(1500, Duration::from_secs(30)).await,
        "after restart only {} of 1500",
        r.accepted_ids().len()
    );
    // Three batches in flight: answers may come back out of order; completeness is the point.
    assert_complete(&r, &accepted, false);
}

#[tokio::test]
async fn replay_redelivers_a_range_to_one_sink_without_moving_cursors() {
    let s = server();
    s.create_tenant("acme").await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let sink_a = webhook(&s, "acme", &a, json!({})).await;
    webhook(&s, "acme", &b, json!({})).await;
    let id = sink_a["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 40, 40).await;
    assert!(a.wait_for(40, Duration::from_secs(10)).await && b.wait_for(40, Duration::from_secs(10)).await);
    let before_a = a.accepted_events().len();
    let before_b = b.accepted_events().len();
    let (status, replay) = post(&s, &format!("/v1/sinks/{id}/replay"), json!({ "from": 5, "to": 24 })).await;
    assert_eq!(status, 202, "{replay}");
    let rid = replay["id"].as_str().unwrap();
    wait_until("replay done", Duration::from_secs(10), || async {
        get(&s, &format!("/v1/sinks/{id}/replays/{rid}")).await["state"] == "completed"
    })
    .await;
    let again: Vec<u64> = a.accepted_events()[before_a..]
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(again, (5..=24).collect::<Vec<_>>());
    assert_eq!(b.accepted_events().len(), before_b, "the other sink got nothing extra");
    assert_eq!(health(&s, id).await["tenants"][0]["cursor"], accepted.last().unwrap().1);
    // By time: everything received from the first event on.
    let first_time = a.accepted_events()[0]["received_at"].as_str().unwrap().to_owned();
    let (status, replay) = post(&s, &format!("/v1/sinks/{id}/replay"), json!({ "from": first_time })).await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay["from_offset"], 1);
    assert_eq!(replay["to_offset"], 40);
    // Bad ranges are refused with the field named.
    assert_error(
        &post(&s, &format!("/v1/sinks/{id}/replay"), json!({ "from": 30, "to": 10 })).await,
        400,
        "invalid_request",
    );
    assert_error(
        &post(&s, &format!("/v1/sinks/{id}/replay"), json!({ "from": "yesterday" })).await,
        400,
        "invalid_request",
    );
    assert_error(
        &post(&s, &format!("/v1/sinks/{id}/replay"), json!({})).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn pause_resume_and_test_delivery() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    let sink = webhook(&s, "acme", &r, json!({})).await;
    let id = sink["id"].as_str().unwrap();
    let (status, paused) = post(&s, &format!("/v1/sinks/{id}/pause"), json!({})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true);
    let accepted = ingest(&s, "acme", 20, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(r.accepted_ids().is_empty(), "a paused sink delivered");
    assert_eq!(health(&s, id).await["state"], "paused");
    // Test delivery works while paused and leaves the cursor alone.
    let (status, test) = post(&s, &format!("/v1/sinks/{id}/test"), json!({})).await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["delivered"], true, "{test}");
    assert_eq!(test["status"], 200);
    assert!(test["latency_ms"].as_f64().unwrap() > 0.0);
    let reqs = r.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].events()[0]["type"], "system.test");
    assert_eq!(health(&s, id).await["lag"], 20);
    r.push([Fault::status(503)]);
    let (_, test) = post(&s, &format!("/v1/sinks/{id}/test"), json!({})).await;
    assert_eq!(test["delivered"], false);
    assert_eq!(test["status"], 503);
    assert!(test["error"].as_str().unwrap().contains("503"));
    post(&s, &format!("/v1/sinks/{id}/resume"), json!({})).await;
    assert!(
        r.wait_for(21, Duration::from_secs(10)).await,
        "{} arrived",
        r.accepted_ids().len()
    );
    let real: Vec<Value> = r
        .accepted_events()
        .into_iter()
        .filter(|e| e["type"] != "system.test")
        .collect();
    assert_eq!(real.len(), 20);
    assert!(accepted.iter().zip(&real).all(|((i, _), e)| e["id"] == i.as_str()));
}

#[tokio::test]
async fn batching_flushes_on_size_and_on_interval() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    webhook(
        &s,
        "acme",
        &r,
        json!({ "batch": { "max_events": 50, "flush_interval_ms": 700 } }),
    )
    .await;
    // 120 events at once → two full batches at once, the remaining 20 after the interval.
    let t0 = Instant::now();
    ingest(&s, "acme", 120, 120).await;
    assert!(r.wait_for(120, Duration::from_secs(10)).await);
    let sizes: Vec<usize> = r.requests().iter().map(|q| q.events().len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let reqs = r.requests();
    assert!(
        reqs[2].at - t0 >= Duration::from_millis(650),
        "flushed before the interval"
    );
    assert!(
        reqs[1].at - t0 < Duration::from_millis(650),
        "a full batch waited for the interval"
    );
    // max_bytes cuts batches too.
    let r2 = Receiver::start().await;
    webhook(
        &s,
        "acme",
        &r2,
        json!({ "batch": { "max_events": 1000, "max_bytes": 4096, "flush_interval_ms": 0 } }),
    )
    .await;
    assert!(r2.wait_for(120, Duration::from_secs(10)).await);
    assert!(
        r2.requests().iter().all(|q| q.body.len() < 4096 + 1024),
        "max_bytes ignored"
    );
    assert!(r2.requests().len() > 3);
}

#[tokio::test]
async fn type_filters_and_operator_sinks_over_every_tenant() {
    let s = server();
    s.create_tenant("acme").await;
    s.create_tenant("globex").await;
    let r = Receiver::start().await;
    let body = json!({
        "name": "all", "kind": "webhook", "config": { "url": r.url() }, "start_at": "earliest",
        "event_types": ["user.*"], "batch": { "flush_interval_ms": 0 },
    });
    let sink = create_sink(&s, &s.admin, body).await;
    assert_eq!(sink["tenant"], Value::Null);
    let id = sink["id"].as_str().unwrap();
    ingest(&s, "acme", 10, 10).await;
    ingest(&s, "globex", 10, 10).await;
    // Not matching the filter: never delivered, but passed by the cursor.
    let (st, _) = send(
        s.http
            .post(s.url("/v1/events?tenant=acme"))
            .bearer_auth(&s.admin)
            .json(&json!([{ "type": "billing.charge" }])),
    )
    .await;
    assert_eq!(st, 202);
    // A tenant created after the sink is read too.
    s.create_tenant("initech").await;
    ingest(&s, "initech", 10, 10).await;
    assert!(r.wait_for(30, Duration::from_secs(10)).await);
    let per_tenant: HashMap<String, usize> = r.accepted_events().iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e["tenant_id"].as_str().unwrap().to_owned()).or_default() += 1;
        m
    });
    assert_eq!(
        per_tenant,
        HashMap::from([("acme".into(), 10), ("globex".into(), 10), ("initech".into(), 10)])
    );
    assert!(r.accepted_events().iter().all(|e| e["type"] == "user.login"));
    wait_until("lag 0", Duration::from_secs(10), || async {
        health(&s, id).await["lag"] == 0
    })
    .await;
}

/// The reference Standard Webhooks library (tests/peers, installed by scripts/test-peers) as a
/// receiver: it verifies every delivery itself and logs what it saw.
struct PythonReceiver {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl PythonReceiver {
    fn start(secret: &str) -> PythonReceiver {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join(".peers/venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/test-peers",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("received.jsonl");
        let mut child = std::process::Command::new(python)
            .arg(root.join("tests/peers/webhook_receiver.py"))
            .args(["--port", "0", "--secret", secret, "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").unwrap().parse().unwrap();
        PythonReceiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn verified_ids(&self) -> HashSet<String> {
        self.lines()
            .iter()
            .filter(|l| l["verified"] == true)
            .flat_map(|l| {
                l["event_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_standard_webhooks_reference_library_verifies_every_delivery_across_a_rotation() {
    let s = server();
    s.create_tenant("acme").await;
    let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let py_old = PythonReceiver::start(old);
    let sink = create_sink(
        &s,
        &s.admin,
        json!({ "name": "py", "kind": "webhook", "tenant": "acme", "start_at": "earliest",
                "config": { "url": format!("http://127.0.0.1:{}/in", py_old.port) },
                "secrets": { "signing_secret": old }, "batch": { "flush_interval_ms": 0 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    let first = ingest(&s, "acme", 50, 10).await;
    wait_until("verified deliveries", Duration::from_secs(15), || async {
        py_old.verified_ids().len() >= 50
    })
    .await;
    assert!(
        py_old.lines().iter().all(|l| l["verified"] == true),
        "{:?}",
        py_old.lines()
    );
    assert!(first.iter().all(|(i, _)| py_old.verified_ids().contains(i)));

    // Rotate: deliveries now carry both signatures; a receiver holding either secret verifies.
    let py_new = PythonReceiver::start(new);
    let (status, patched) = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({ "secrets": { "signing_secret": new },
                           "config": { "url": format!("http://127.0.0.1:{}/in", py_new.port) } })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let second = ingest(&s, "acme", 20, 10).await;
    wait_until("verified with the new secret", Duration::from_secs(15), || async {
        second.iter().all(|(i, _)| py_new.verified_ids().contains(i))
    })
    .await;
    assert!(py_new.lines().iter().all(|l| l["verified"] == true));
    // And the old secret still verifies during the grace period.
    let (status, _) = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({ "config": { "url": format!("http://127.0.0.1:{}/in", py_old.port) } })),
    )
    .await;
    assert_eq!(status, 200);
    let third = ingest(&s, "acme", 10, 10).await;
    wait_until("verified with the old secret", Duration::from_secs(15), || async {
        third.iter().all(|(i, _)| py_old.verified_ids().contains(i))
    })
    .await;
}

#[tokio::test]
async fn sigterm_finishes_the_attempt_on_the_wire_and_commits_before_exiting() {
    let mut s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.set_default(Some(Fault::Hang(Duration::from_millis(700))));
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({ "timeout_ms": 5000, "batch": { "max_events": 100, "flush_interval_ms": 0 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap().to_owned();
    let accepted = ingest(&s, "acme", 10, 10).await;
    // Wait until the batch is on the wire (the receiver holds it for 700 ms), then SIGTERM.
    wait_until("the batch on the wire", Duration::from_secs(10), || async {
        r.arrived() >= 1
    })
    .await;
    let status = s.sigterm().await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        r.accepted_ids().len(),
        10,
        "the attempt on the wire was finished, not cut off"
    );
    r.set_default(None);
    s.restart();
    let h = health(&s, &id).await;
    assert_eq!(
        h["tenants"][0]["cursor"],
        accepted.last().unwrap().1,
        "committed before exit: {h}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.requests().len(), 1, "nothing was delivered twice");
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_half_opens_after_the_cooldown() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    r.set_default(Some(Fault::status(503)));
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({ "breaker": { "failure_threshold": 3, "cooldown_ms": 1500 },
                "retry": { "max_attempts": 50, "initial_backoff_ms": 1, "max_backoff_ms": 2 } }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    let accepted = ingest(&s, "acme", 5, 5).await;
    wait_until("circuit open", Duration::from_secs(10), || async {
        health(&s, id).await["state"] == "circuit_open"
    })
    .await;
    let h = health(&s, id).await;
    assert_eq!(h["consecutive_failures"], 3, "{h}");
    assert_eq!(h["last_error"]["status"], 503, "{h}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.arrived(), 3, "nothing is sent while the circuit is open");
    // After the cooldown one trial goes; it succeeds and the circuit closes.
    r.set_default(None);
    assert!(r.wait_for(5, Duration::from_secs(10)).await);
    assert_eq!(r.arrived(), 4, "exactly one trial after the cooldown");
    assert_complete_and_ordered(&r, &accepted);
    wait_until("active again", Duration::from_secs(5), || async {
        health(&s, id).await["state"] == "active"
    })
    .await;
}
