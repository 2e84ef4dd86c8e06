#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The delivery engine end to end under faults: the real binary, a real webhook receiver on
//! loopback with scripted faults, everything over HTTP. Retries, pipelining, dead letters,
//! pausing, the breaker, and surviving SIGKILL/SIGTERM.

use crate::common;
use crate::delivery_support as support;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::{Fault, Receiver};
use common::{assert_error, send_text};
use serde_json::json;
use support::*;

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
    let (_, metrics) = send_text(s.http.get(s.url("/metrics"))).await;
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
    let (status, _) = s.get_as_operator(&format!("/v1/sinks/{id}/dead-letters/{dl}")).await;
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
