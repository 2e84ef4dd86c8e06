//! The `kafka` sink against a real Kafka-compatible broker: `tansu` (crates.io, built once per
//! machine by `scripts/test-peers`), read back by an independent consumer, `confluent-kafka`
//! (`tests/peers/kafka_read.py`). A broker that cannot start FAILS the test.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::arrivals;
use auditrelay_testkit::moto;
use auditrelay_testkit::tansu;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrivals::check_arrivals;
use auditrelay_core::StoredEvent;
use auditrelay_sinks::{build, validate_config, Batch, Outcome, Secrets, Sink};
use common::{events, guarded_env, open_env};
use serde_json::{json, Value};
use tansu::{in_partition_order, Tansu};

fn sink(tansu: &Tansu, topic: &str, extra: Value) -> Arc<dyn Sink> {
    let mut config = json!({"brokers": [tansu.bootstrap()], "topic": topic});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    build("kafka", &config, &Secrets::new(), "json", &open_env()).unwrap()
}

fn batch_of<'a>(id: &'a str, tenant: &'a str, events: &'a [StoredEvent]) -> Batch<'a> {
    Batch {
        sink_id: "snk_kafka",
        tenant_id: tenant,
        batch_id: id,
        events,
    }
}

/// Delivers `events` in batches of `per_batch`, retrying a batch until it is delivered (as the
/// engine would), for at most `patience`. Returns how many attempts failed.
async fn deliver_all(
    sink: &dyn Sink,
    tenant: &str,
    events: &[StoredEvent],
    per_batch: usize,
    patience: Duration,
) -> usize {
    let mut failures = 0;
    for (i, chunk) in events.chunks(per_batch).enumerate() {
        let id = format!("{tenant}-b{i}");
        let deadline = Instant::now() + patience;
        loop {
            let report = sink.deliver(&batch_of(&id, tenant, chunk)).await;
            match report.outcome {
                Outcome::Delivered => break,
                Outcome::Retry { .. } if Instant::now() < deadline => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => panic!("batch {id}: {other:?} {:?}", report.error),
            }
        }
    }
    failures
}

/// What a consumer must find: each event by (tenant, id), at its offset.
fn expected(events: &[StoredEvent]) -> BTreeMap<(String, String), u64> {
    events
        .iter()
        .map(|e| ((e.tenant_id.clone(), e.id.clone()), e.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_from_two_tenants_arrive_once_each_in_tenant_order() {
    let tansu = Tansu::start_in_memory();
    tansu.create_topic("audit", 3);
    let kafka = sink(&tansu, "audit", json!({"compression": "zstd"}));
    let acme = events("acme", 1..=5_000);
    let globex = events("globex", 1..=5_000);
    let started = Instant::now();
    // Interleave the tenants' batches as lanes would.
    for (a, g) in acme.chunks(500).zip(globex.chunks(500)) {
        deliver_all(kafka.as_ref(), "acme", a, 500, Duration::from_secs(20)).await;
        deliver_all(kafka.as_ref(), "globex", g, 500, Duration::from_secs(20)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "kafka: 10,000 events in batches of 500 in {elapsed:?} ({:.0} events/s, zstd, tansu in memory on 127.0.0.1)",
        10_000.0 / elapsed.as_secs_f64()
    );

    let records = tansu.read("audit", 10_000);
    let mut all = acme.clone();
    all.extend(globex.iter().cloned());
    let duplicates = check_arrivals("kafka", &in_partition_order(&records), &expected(&all));
    assert_eq!(duplicates, 0, "no outage, so no duplicate");
    assert_eq!(records.len(), 10_000);

    // Key = tenant, so one tenant's records share one partition; the value is the canonical JSON.
    for r in &records {
        let tenant = &r.headers["tenant_id"];
        assert_eq!(r.key.as_deref(), Some(tenant.as_str()));
        let v: Value = serde_json::from_str(&r.value).unwrap();
        assert_eq!(v["id"], r.headers["event_id"].as_str());
        assert_eq!(v["offset"].to_string(), r.headers["offset"]);
        assert_eq!(v["type"], r.headers["event_type"].as_str());
        assert_eq!(v["tenant_id"], tenant.as_str());
    }
    let partitions_of = |t: &str| {
        let mut p: Vec<i64> = records
            .iter()
            .filter(|r| r.headers["tenant_id"] == t)
            .map(|r| r.partition)
            .collect();
        p.dedup();
        p
    };
    assert_eq!(partitions_of("acme").len(), 1, "acme's records are in one partition");
    assert_eq!(
        partitions_of("globex").len(),
        1,
        "globex's records are in one partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_key_and_every_format_and_compression_reach_the_consumer() {
    let tansu = Tansu::start_in_memory();
    tansu.create_topic("fmt", 1);
    let evs = events("acme", 1..=20);
    for (i, (format, compression)) in [("json", "gzip"), ("cef", "lz4"), ("leef", "snappy"), ("ocsf", "none")]
        .into_iter()
        .enumerate()
    {
        let config =
            json!({"brokers": [tansu.bootstrap()], "topic": "fmt", "key": "actor.id", "compression": compression});
        let kafka = build("kafka", &config, &Secrets::new(), format, &open_env()).unwrap();
        let chunk = &evs[i * 5..i * 5 + 5];
        let report = kafka.deliver(&batch_of("b", "acme", chunk)).await;
        assert_eq!(
            report.outcome,
            Outcome::Delivered,
            "{format}/{compression}: {:?}",
            report.error
        );
    }
    let records = tansu.read("fmt", 20);
    assert_eq!(records.len(), 20);
    assert!(
        records.iter().all(|r| r.key.as_deref() == Some("usr_1")),
        "key = actor.id"
    );
    assert!(records[5].value.starts_with("CEF:0|"), "{}", records[5].value);
    assert!(records[10].value.starts_with("LEEF:2.0|"), "{}", records[10].value);
    let ocsf: Value = serde_json::from_str(&records[15].value).unwrap();
    assert!(ocsf["class_uid"].is_number(), "{ocsf}");
}

/// The broker is killed (SIGKILL) mid-stream and restarted on the same port; its records live in
/// S3 (moto), so what it acknowledged before the crash survives. Every event arrives; attempts
/// during the outage fail as `Retry`; duplicates (re-sent records whose acknowledgement was lost)
/// are counted and reported, never silently dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_crash_mid_stream_loses_nothing() {
    let moto = moto::Moto::start(false);
    moto.setup("tansu");
    let mut tansu = Tansu::start_on_s3(&moto.endpoint(), "tansu");
    tansu.create_topic("audit", 1);
    // tansu 0.6 on S3 storage answers the idempotent producer with ProducerFenced; real Kafka
    // does not. The crash is what this test is about, so the producer here is the plain one.
    let kafka = sink(
        &tansu,
        "audit",
        json!({"message_timeout_ms": 2000, "idempotent": false}),
    );
    let evs = events("acme", 1..=2_000);
    deliver_all(kafka.as_ref(), "acme", &evs[..1_000], 100, Duration::from_secs(20)).await;

    tansu.kill();
    let down = kafka.deliver(&batch_of("down", "acme", &evs[1_000..1_100])).await;
    assert!(
        matches!(down.outcome, Outcome::Retry { .. }),
        "a dead broker is a transient failure: {down:?}"
    );
    tansu.spawn();
    let failures = deliver_all(kafka.as_ref(), "acme", &evs[1_000..], 100, Duration::from_secs(60)).await;

    let records = tansu.read("audit", 2_000);
    let duplicates = check_arrivals("kafka after a crash", &in_partition_order(&records), &expected(&evs));
    println!("kafka outage: {failures} failed attempts after the restart, {duplicates} duplicate records");
}

#[tokio::test]
async fn refusals_at_save_time_name_the_field() {
    let err = |config: Value, secrets: Secrets| async move {
        validate_config("kafka", &config, &mut secrets.clone(), &guarded_env())
            .await
            .err()
            .map(|e| e.field)
    };
    assert_eq!(
        err(json!({"brokers": ["127.0.0.1:9092"], "topic": "t"}), Secrets::new())
            .await
            .as_deref(),
        Some("config.brokers[0]"),
        "loopback broker refused unless private networks are allowed"
    );
    assert_eq!(
        err(
            json!({"brokers": ["8.8.8.8:9092"], "topic": "t", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"}),
            Secrets::new()
        )
        .await
        .as_deref(),
        Some("secrets.sasl_password")
    );
    let mut pw = Secrets::new();
    pw.insert("sasl_password".into(), "p".into());
    assert_eq!(
        err(json!({"brokers": ["8.8.8.8:9092"], "topic": "t"}), pw)
            .await
            .as_deref(),
        Some("config.sasl_mechanism"),
        "a password without a mechanism is a mistake"
    );
}

#[tokio::test]
async fn a_missing_topic_pauses_and_a_dead_broker_retries() {
    let tansu = Tansu::start_in_memory();
    let kafka = sink(&tansu, "no-such-topic", json!({"message_timeout_ms": 1000}));
    let evs = events("acme", 1..=1);
    let report = kafka.deliver(&batch_of("b", "acme", &evs)).await;
    // The metadata check finds the topic missing before anything is produced: the sink pauses.
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert!(
        report.error.as_deref().is_some_and(|e| e.contains("does not exist")),
        "{report:?}"
    );
    drop(tansu);
    let dead = build(
        "kafka",
        &json!({"brokers": ["127.0.0.1:1"], "topic": "t", "message_timeout_ms": 500}),
        &Secrets::new(),
        "json",
        &open_env(),
    )
    .unwrap();
    let report = dead.deliver(&batch_of("b", "acme", &evs)).await;
    assert!(matches!(report.outcome, Outcome::Retry { .. }), "{report:?}");
    assert!(report.error.is_some());
}
