//! The three streaming transports end to end, through the real server: events ingested over
//! HTTP by two tenants reach a real Kafka-compatible broker (tansu), a real S3 server (moto,
//! checking SigV4) and a real syslog daemon (syslog-ng), and are read back by independent
//! clients (confluent-kafka, boto3, syslog-ng's own file). Each event must arrive exactly once
//! (duplicates counted) and, within each tenant, in offset order.
//!
//! The delivery rate each run reaches is printed; it is not asserted (speed is benchmarked,
//! `scripts/bench transports` runs this file in release mode).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::arrivals;
use auditrelay_testkit::moto;
use auditrelay_testkit::syslog_ng;
use auditrelay_testkit::tansu;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrivals::{check_arrivals, Arrival};
use common::{send, TestServer};
use serde_json::{json, Value};

/// Events per tenant: 5,000 (10,000 in all) unless `AUDITRELAY_TRANSPORT_EVENTS_PER_TENANT` asks
/// for more (`scripts/bench transports` does, so start-up costs do not dominate the rate).
fn per_tenant() -> usize {
    std::env::var("AUDITRELAY_TRANSPORT_EVENTS_PER_TENANT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n.div_ceil(500) * 500)
        .unwrap_or(5_000)
}
const TENANTS: [&str; 2] = ["acme", "globex"];

async fn create_sink(s: &TestServer, body: Value) -> String {
    let (status, answer) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&body)).await;
    assert_eq!(status, 201, "creating {}: {answer}", body["kind"]);
    answer["id"].as_str().unwrap().to_owned()
}

async fn lag(s: &TestServer, id: &str) -> Value {
    let (status, h) = s.get_as_operator(&format!("/v1/sinks/{id}/health")).await;
    assert_eq!(status, 200, "{h}");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_reach_kafka_s3_and_syslog_once_each_in_tenant_order() {
    let tansu = tansu::Tansu::start_in_memory();
    tansu.create_topic("audit", 3);
    let moto = moto::Moto::start(true);
    let creds = moto.setup("audit");
    let sng = syslog_ng::SyslogNg::start();

    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    for t in TENANTS {
        s.create_tenant(t).await;
    }
    // Ingest: the two tenants interleaved, 500 events per request.
    let mut expected = BTreeMap::new();
    let started = Instant::now();
    let per_tenant = per_tenant();
    let total = per_tenant * TENANTS.len();
    for round in 0..per_tenant / 500 {
        for t in TENANTS {
            let events: Vec<Value> = (0..500)
                .map(|i| json!({"id": format!("{t}-{}", round * 500 + i), "type": "user.login", "actor": {"id": "usr_1"}}))
                .collect();
            let (status, answer) = s
                .post_events_to(
                    &format!("/v1/events?tenant={t}"),
                    &s.admin,
                    Value::from(events).to_string(),
                    "application/json",
                )
                .await;
            assert_eq!(status, 202, "{answer}");
            for e in answer["events"].as_array().unwrap() {
                expected.insert(
                    (t.to_owned(), e["id"].as_str().unwrap().to_owned()),
                    e["offset"].as_u64().unwrap(),
                );
            }
        }
    }
    println!(
        "ingest: {total} events in {} requests in {:?}",
        total / 500,
        started.elapsed()
    );
    assert_eq!(expected.len(), total);

    // Then each sink, created after the fact with `start_at: earliest`, drains the whole
    // backlog on its own: the time to lag 0 in every tenant is its delivery rate.
    let batch = json!({"max_events": 500, "flush_interval_ms": 20});
    let definitions = [
        (
            "kafka",
            json!({"name": "kafka", "kind": "kafka", "start_at": "earliest", "batch": batch,
                       "config": {"brokers": [tansu.bootstrap()], "topic": "audit", "compression": "lz4"}}),
        ),
        (
            "s3",
            json!({"name": "s3", "kind": "s3", "start_at": "earliest", "batch": batch,
                       "config": {"bucket": "audit", "endpoint": moto.endpoint(), "region": "us-east-1", "path_style": true},
                       "secrets": {"access_key_id": creds.0, "secret_access_key": creds.1}}),
        ),
        (
            "syslog",
            json!({"name": "syslog", "kind": "syslog", "format": "cef", "start_at": "earliest", "batch": batch,
                       "config": {"host": "127.0.0.1", "port": sng.tcp_port}}),
        ),
    ];

    for (kind, body) in definitions {
        let started = Instant::now();
        let id = create_sink(&s, body).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let h = lag(&s, &id).await;
            if h["lag"] == 0 && h["tenants"].as_array().map(Vec::len) == Some(TENANTS.len()) {
                let elapsed = started.elapsed();
                println!(
                    "{kind}: drained {total} events (2 tenants, batches of 500) in {elapsed:?}: {:.0} events/s",
                    total as f64 / elapsed.as_secs_f64()
                );
                break;
            }
            assert!(Instant::now() < deadline, "{kind} did not catch up: {h}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Kafka, read back by confluent-kafka.
    let records = tansu.read("audit", total);
    let dups = check_arrivals("kafka", &tansu::in_partition_order(&records), &expected);
    println!("kafka: {} records, {dups} duplicates", records.len());
    assert_eq!(dups, 0, "no outage, so no duplicate");

    // S3, read back by boto3: objects in key order (tenant, date, offset range).
    let objects = moto.read("audit", &creds);
    let arrivals: Vec<Arrival> = objects
        .values()
        .flat_map(|(_, _, lines)| lines.iter())
        .map(|e| {
            (
                e["tenant_id"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
                e["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    let dups = check_arrivals("s3", &arrivals, &expected);
    println!("s3: {} objects, {dups} duplicates", objects.len());
    assert_eq!(dups, 0);

    // syslog, as syslog-ng wrote it to its file.
    let lines = sng.wait_for(total);
    let sd = |l: &Value, k: &str| l["_SDATA"]["audit@32473"][k].as_str().unwrap().to_owned();
    let arrivals: Vec<Arrival> = lines
        .iter()
        .map(|l| (sd(l, "tenant"), sd(l, "id"), sd(l, "offset").parse().unwrap()))
        .collect();
    let dups = check_arrivals("syslog", &arrivals, &expected);
    println!("syslog: {} messages, {dups} duplicates", lines.len());
    assert_eq!(dups, 0);
    assert!(lines
        .iter()
        .all(|l| l["MESSAGE"].as_str().unwrap_or("").starts_with("CEF:0|")));
}

/// The broker dies (SIGKILL) while the server streams into it, and comes back on the same port
/// with its records (kept in S3). The sink backs off, then delivers everything; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_crash_during_the_stream_loses_nothing() {
    let store = moto::Moto::start(false);
    store.setup("tansu");
    let mut tansu = tansu::Tansu::start_on_s3(&store.endpoint(), "tansu");
    tansu.create_topic("audit", 1);

    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let id = create_sink(
        &s,
        json!({"name": "kafka", "kind": "kafka", "start_at": "earliest",
               "batch": {"max_events": 100, "flush_interval_ms": 20},
               "retry": {"max_attempts": 100, "initial_backoff_ms": 100, "max_backoff_ms": 1000},
               "config": {"brokers": [tansu.bootstrap()], "topic": "audit", "message_timeout_ms": 2000,
                          // tansu 0.6 on S3 storage fences idempotent producers (ProducerFenced).
                          "idempotent": false}}),
    )
    .await;

    let mut expected = BTreeMap::new();
    let ingest = |s: &TestServer, from: usize| {
        let events: Vec<Value> = (from..from + 500)
            .map(|i| json!({"id": format!("e{i}"), "type": "user.login"}))
            .collect();
        let body = Value::from(events).to_string();
        let http = s.http.clone();
        let url = s.url("/v1/events?tenant=acme");
        let admin = s.admin.clone();
        async move {
            let (status, answer) = send(
                http.post(url)
                    .bearer_auth(admin)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            answer["events"].as_array().unwrap().clone()
        }
    };
    for round in 0..4 {
        for e in ingest(&s, round * 500).await {
            expected.insert(
                ("acme".to_owned(), e["id"].as_str().unwrap().to_owned()),
                e["offset"].as_u64().unwrap(),
            );
        }
        if round == 1 {
            tansu.kill();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let h = lag(&s, &id).await;
    assert!(
        h["lag"].as_u64().unwrap() > 0,
        "the broker is down, so the sink lags: {h}"
    );
    // The failing attempts show in the sink's health (an attempt ends after message_timeout_ms).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = lag(&s, &id).await;
        if h["consecutive_failures"].as_u64().unwrap_or(0) > 0 && h["last_error"]["message"].is_string() {
            println!("kafka broker down: {}", h["last_error"]["message"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failure reported while the broker is down: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tansu.spawn();

    let deadline = Instant::now() + Duration::from_secs(90);
    while lag(&s, &id).await["lag"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the sink did not catch up: {}",
            lag(&s, &id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = tansu.read("audit", 2_000);
    let dups = check_arrivals(
        "kafka after a broker crash",
        &tansu::in_partition_order(&records),
        &expected,
    );
    println!(
        "kafka broker crash: {} records for 2,000 events, {dups} duplicates",
        records.len()
    );
}
