#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The delivery engine end to end, operator side: replay, pause/resume/test, batching, filters
//! and operator sinks, and the Standard Webhooks reference receiver. The real binary, real
//! receivers on loopback, everything over HTTP.

use crate::common;
use crate::delivery_support as support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::receiver::{Fault, Receiver};
use common::{assert_error, send};
use serde_json::{json, Value};
use support::*;

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
