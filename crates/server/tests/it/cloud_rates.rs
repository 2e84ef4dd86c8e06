//! Delivery rate of each cloud sink kind against its local peer, in one run: moto in server mode
//! (SigV4 checked) for `cloudwatch_logs`, `kinesis`, `firehose` and `eventbridge`, the Google
//! Cloud Pub/Sub emulator for `pubsub`, moto's S3 for `security_lake` (OCSF Parquet objects). One tenant's backlog of events is delivered by one sink
//! of each kind in turn (each kind has the machine to itself), from creation until its lag is 0.
//!
//! The rates are printed, not asserted (speed is benchmarked: `scripts/bench cloud` runs this in
//! release mode with `AUDITRELAY_CLOUD_EVENTS=20000`); what is asserted is that each kind
//! delivered everything with no dead letter. The peers are Python (moto) and Java (the emulator)
//! on the same two cores, so the figures bound the peers as much as the sinks: they compare
//! kinds on this box, not against the real services.

use std::time::{Duration, Instant};

use auditrelay_testkit::moto::Moto;
use serde_json::{json, Value};

use crate::aws_sinks::{aws_setup, definitions};
use crate::delivery_support::{create_sink, health, ingest, server, wait_until};
use crate::pubsub_sink::{rest, Emulator, PROJECT};

/// Events delivered by each kind: 1,000 unless `AUDITRELAY_CLOUD_EVENTS` asks for more.
fn events() -> usize {
    std::env::var("AUDITRELAY_CLOUD_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n.div_ceil(500) * 500)
        .unwrap_or(1_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_kinds_delivery_rates_against_their_local_peers() {
    let moto = Moto::start(true);
    let keys = aws_setup(&moto);
    let emulator = Emulator::start();
    let http = reqwest::Client::new();
    rest(&http, reqwest::Method::PUT, &emulator.url("topics/audit"), json!({})).await;

    let s = server();
    s.create_tenant("acme").await;
    let n = events();
    for _ in 0..n / 500 {
        ingest(&s, "acme", 500, 500).await;
    }

    let mut kinds: Vec<(&str, Value)> = definitions(&moto.endpoint(), &keys);
    kinds.push((
        "pubsub",
        json!({"name": "pubsub", "kind": "pubsub", "start_at": "earliest",
               "config": {"project": PROJECT, "topic": "audit", "emulator": true,
                          "endpoint": format!("http://127.0.0.1:{}", emulator.port)}}),
    ));
    kinds.push((
        "security_lake",
        json!({"name": "lake", "kind": "security_lake", "start_at": "earliest",
               "config": {"bucket": "lake-rates", "region": "us-east-1", "endpoint": moto.endpoint(),
                          "source_name": "auditrelay", "account_id": "123456789012"},
               "secrets": {"access_key_id": keys.0, "secret_access_key": keys.1},
               // Its default batch waits up to 5 minutes to fill 64 MiB: here the backlog is
               // there already, so a short flush interval only stops it waiting for more.
               "batch": {"max_events": 10_000, "flush_interval_ms": 10},
               "timeout_ms": 120_000}),
    ));
    let mut rates = Vec::new();
    for (kind, mut body) in kinds {
        // The kind's own default batching (each splits a batch into calls within its limits).
        let obj = body.as_object_mut().unwrap();
        if kind != "security_lake" {
            obj.remove("batch");
        }
        if kind == "eventbridge" {
            // moto delivers to a rule's SQS target inside PutEvents (~3 s a call here): the
            // rates use the rule-less `default` bus, so they measure PutEvents itself.
            obj["config"]["event_bus"] = json!("default");
        }
        obj.insert("tenants".into(), json!(["acme"]));
        let started = Instant::now();
        let sink = create_sink(&s, &s.admin, body).await;
        let id = sink["id"].as_str().unwrap().to_owned();
        wait_until(
            &format!("{kind} delivered {n} events"),
            Duration::from_secs(600),
            || async {
                let h = health(&s, &id).await;
                assert_ne!(h["state"], "paused", "{kind}: {h}");
                h["lag"] == 0 && h["tenants"].as_array().map(Vec::len) == Some(1)
            },
        )
        .await;
        let elapsed = started.elapsed();
        let h = health(&s, &id).await;
        assert_eq!(h["dead_letters"], 0, "{kind}: {h}");
        assert_eq!(h["delivered_events"], n as u64, "{kind}: {h}");
        let status = s
            .http
            .delete(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204, "{kind}: deleting the sink");
        rates.push((kind, n as f64 / elapsed.as_secs_f64(), h["latency_ms"].clone()));
    }
    println!("cloud kinds, {n} events each from one tenant's backlog, against local peers:");
    for (kind, rate, latency) in rates {
        println!("  {kind:<16} {rate:>9.0} events/s   call latency ms {latency}");
    }
}
