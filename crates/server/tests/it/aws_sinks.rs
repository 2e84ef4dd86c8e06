//! The AWS sink kinds (`cloudwatch_logs`, `kinesis`, `firehose`, `eventbridge`) through the real
//! server:
//! - against moto in server mode with SigV4 checking on (`INITIAL_NO_AUTH_ACTION_COUNT`: an IAM
//!   user and key are made first), events read back with boto3 from CloudWatch Logs, Kinesis, the
//!   Firehose delivery bucket and an SQS queue that an EventBridge rule targets; a wrong secret
//!   pauses each kind with the service's error;
//! - against a scripted loopback receiver that fails some records of each call
//!   (`FailedRecordCount`, `FailedPutCount`, `FailedEntryCount`): only those are retried, every
//!   event arrives once, in order per tenant; and CloudWatch's `rejectedLogEventsInfo` makes dead
//!   letters with the service's reason.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_testkit::arrivals::{check_arrivals, Arrival};
use auditrelay_testkit::moto::Moto;
use auditrelay_testkit::{peer_python, repo_root};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::TestServer;
use crate::delivery_support::{create_sink, get, health, ingest, server, wait_until};

const TENANTS: [&str; 2] = ["acme", "globex"];

/// `(tenant, id) → offset` of every event ingested.
async fn ingest_all(s: &TestServer, per_tenant: usize) -> BTreeMap<(String, String), u64> {
    let mut expected = BTreeMap::new();
    for t in TENANTS {
        s.create_tenant(t).await;
    }
    // Interleaved, so each tenant's offsets arrive in several batches.
    for _ in 0..2 {
        for t in TENANTS {
            for (id, offset) in ingest(s, t, per_tenant / 2, 50).await {
                expected.insert((t.to_owned(), id), offset);
            }
        }
    }
    expected
}

fn arrival(event: &Value) -> Arrival {
    (
        event["tenant_id"].as_str().unwrap().to_owned(),
        event["id"].as_str().unwrap().to_owned(),
        event["offset"].as_u64().unwrap(),
    )
}

/// What boto3 reads back (`tests/peers/aws_read.py`).
fn aws_read(moto: &Moto, keys: &(String, String), what: &str, name: &str) -> Value {
    let out = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/aws_read.py"))
        .args([&moto.endpoint(), &keys.0, &keys.1, what, name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws_read.py {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn aws_setup(moto: &Moto) -> (String, String) {
    let out = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/aws_setup.py"))
        .arg(moto.endpoint())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws_setup.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["access_key_id"].as_str().unwrap().to_owned(),
        v["secret_access_key"].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn definitions(endpoint: &str, keys: &(String, String)) -> Vec<(&'static str, Value)> {
    let secrets = json!({"access_key_id": keys.0, "secret_access_key": keys.1});
    let common = |kind: &str, config: Value| {
        json!({"name": kind, "kind": kind, "start_at": "earliest", "config": config, "secrets": secrets,
               "batch": {"max_events": 100, "flush_interval_ms": 10},
               "retry": {"max_attempts": 20, "initial_backoff_ms": 10, "max_backoff_ms": 100}})
    };
    vec![
        (
            "cloudwatch_logs",
            common(
                "cloudwatch_logs",
                json!({"log_group": "/auditrelay/test", "create_missing": true, "region": "us-east-1", "endpoint": endpoint}),
            ),
        ),
        (
            "kinesis",
            common(
                "kinesis",
                json!({"stream_name": "audit", "region": "us-east-1", "endpoint": endpoint}),
            ),
        ),
        (
            "firehose",
            common(
                "firehose",
                json!({"delivery_stream": "audit", "region": "us-east-1", "endpoint": endpoint}),
            ),
        ),
        (
            "eventbridge",
            common(
                "eventbridge",
                json!({"event_bus": "audit", "detail_type": "audit {type}", "region": "us-east-1", "endpoint": endpoint}),
            ),
        ),
    ]
}

async fn wait_drained(s: &TestServer, kind: &str, id: &str) {
    wait_drained_over(s, kind, id, TENANTS.len()).await;
}

async fn wait_drained_over(s: &TestServer, kind: &str, id: &str, tenants: usize) {
    wait_until(&format!("{kind} drained"), Duration::from_secs(60), || async {
        let h = health(s, id).await;
        assert_ne!(h["state"], "paused", "{kind}: {h}");
        h["lag"] == 0 && h["tenants"].as_array().map(Vec::len) == Some(tenants)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kinds_reach_moto_with_sigv4_checked_and_boto3_reads_every_event_back() {
    let moto = Moto::start(true);
    let keys = aws_setup(&moto);
    let s = server();
    let expected = ingest_all(&s, 300).await;
    for (kind, body) in definitions(&moto.endpoint(), &keys) {
        // moto's Kinesis numbers a record `max + 1` without a lock, so two PutRecords calls at
        // once (two tenants' lanes) can get the same sequence number and one record overwrites
        // the other inside moto (moto/kinesis/models.py `put_record`). Real Kinesis does not;
        // here each tenant gets its own Kinesis sink, drained one after the other.
        let bodies: Vec<(Value, usize)> = if kind == "kinesis" {
            TENANTS
                .iter()
                .map(|t| {
                    let mut one = body.clone();
                    one["name"] = json!(format!("kinesis-{t}"));
                    one["tenants"] = json!([t]);
                    (one, 1)
                })
                .collect()
        } else {
            vec![(body, TENANTS.len())]
        };
        for (body, tenants) in bodies {
            let sink = create_sink(&s, &s.admin, body).await;
            wait_drained_over(&s, kind, sink["id"].as_str().unwrap(), tenants).await;
            let h = health(&s, sink["id"].as_str().unwrap()).await;
            assert_eq!(h["dead_letters"], 0, "{kind}: {h}");
        }
    }

    // CloudWatch Logs: one stream per tenant (the default `{tenant}`), group created by the sink.
    let logs = aws_read(&moto, &keys, "logs", "/auditrelay/test");
    let streams = logs["streams"].as_object().unwrap();
    assert_eq!(streams.keys().collect::<Vec<_>>(), TENANTS.to_vec());
    let mut arrivals = Vec::new();
    for (stream, messages) in streams {
        for m in messages.as_array().unwrap() {
            let event: Value = serde_json::from_str(m.as_str().unwrap()).unwrap();
            assert_eq!(event["tenant_id"], stream.as_str());
            arrivals.push(arrival(&event));
        }
    }
    assert_eq!(check_arrivals("cloudwatch_logs", &arrivals, &expected), 0);

    // Kinesis: partition key = tenant, one shard, so the stream's order is the tenants' order.
    let kinesis = aws_read(&moto, &keys, "kinesis", "audit");
    let arrivals: Vec<Arrival> = kinesis["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
            assert_eq!(r["partition_key"], event["tenant_id"]);
            arrival(&event)
        })
        .collect();
    assert_eq!(check_arrivals("kinesis", &arrivals, &expected), 0);

    // Firehose: the delivery bucket's objects are JSON lines, each record newline-terminated.
    let objects = aws_read(&moto, &keys, "s3", "firehose-out");
    let mut arrivals = Vec::new();
    for (key, text) in objects["objects"].as_object().unwrap() {
        let text = text.as_str().unwrap();
        assert!(text.ends_with('\n'), "{key}: the last record is newline-terminated");
        arrivals.extend(text.lines().map(|l| arrival(&serde_json::from_str(l).unwrap())));
    }
    // Objects are listed by key (time, then a random suffix), not in write order: count only.
    let got: BTreeSet<_> = arrivals.iter().map(|(t, id, _)| (t.clone(), id.clone())).collect();
    assert_eq!(arrivals.len(), expected.len(), "firehose: every event once");
    assert_eq!(got, expected.keys().cloned().collect());

    // EventBridge → rule → SQS (a standard queue does not keep order: count only).
    let sqs = aws_read(&moto, &keys, "sqs", "audit-events");
    let mut got = BTreeMap::new();
    for body in sqs["messages"].as_array().unwrap() {
        let envelope: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
        assert_eq!(envelope["source"], "auditrelay", "{envelope}");
        assert_eq!(envelope["detail-type"], "audit user.login", "{envelope}");
        let (t, id, offset) = arrival(&envelope["detail"]);
        assert!(
            got.insert((t, id), offset).is_none(),
            "eventbridge: a duplicate: {envelope}"
        );
    }
    assert_eq!(got, expected, "eventbridge: every event once, at its offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_wrong_secret_pauses_each_kind_with_the_services_error() {
    let moto = Moto::start(true);
    let keys = aws_setup(&moto);
    let s = server();
    ingest_all(&s, 4).await;
    let wrong = (keys.0.clone(), format!("{}x", keys.1));
    for (kind, body) in definitions(&moto.endpoint(), &wrong) {
        let sink = create_sink(&s, &s.admin, body).await;
        let id = sink["id"].as_str().unwrap().to_owned();
        wait_until(&format!("{kind} paused"), Duration::from_secs(20), || async {
            health(&s, &id).await["state"] == "paused"
        })
        .await;
        let h = health(&s, &id).await;
        let reason = h["pause_reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("403") && reason.contains("SignatureDoesNotMatch"),
            "{kind}: {h}"
        );
        assert!(
            !reason.contains(&wrong.1),
            "{kind}: the secret must never show: {reason}"
        );
        assert_eq!(h["dead_letters"], 0, "{kind}: a refused signature keeps the batch: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_assume_role_with_an_external_id_then_deliver_with_the_temporary_keys() {
    let moto = Moto::start(true);
    let keys = aws_setup(&moto);
    let s = server();
    let expected = ingest_all(&s, 20).await;
    let (_, mut body) = definitions(&moto.endpoint(), &keys).swap_remove(1);
    body["config"]["role_arn"] = json!("arn:aws:iam::123456789012:role/relay");
    body["config"]["external_id"] = json!("ext-1");
    body["config"]["sts_endpoint"] = json!(moto.endpoint());
    let sink = create_sink(&s, &s.admin, body).await;
    wait_drained(&s, "kinesis", sink["id"].as_str().unwrap()).await;
    let kinesis = aws_read(&moto, &keys, "kinesis", "audit");
    let arrivals: Vec<Arrival> = kinesis["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| arrival(&serde_json::from_str(r["data"].as_str().unwrap()).unwrap()))
        .collect();
    assert_eq!(check_arrivals("kinesis via AssumeRole", &arrivals, &expected), 0);
}

// ---------------------------------------------------------------------------------------------
// The scripted receiver.

/// Which records a call fails.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    /// Every third call refuses its second half, as a throttled shard refuses the rest of a call.
    SuffixThrottled,
    /// Every third call fails its second record only (an `InternalFailure` inside a call).
    OneInside,
}

#[derive(Default)]
struct Received {
    calls: u64,
    /// Records accepted, in order, with the target of their call.
    accepted: Vec<Value>,
    failed: u64,
    /// Sizes of the calls.
    sizes: Vec<usize>,
    log_calls: u64,
}

#[derive(Clone)]
struct Scripted {
    script: Script,
    state: Arc<Mutex<Received>>,
}

fn decode(data: &Value) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    serde_json::from_str(text.trim_end_matches('\n')).unwrap()
}

async fn answer(State(r): State<Scripted>, headers: HeaderMap, body: axum::body::Bytes) -> Json<Value> {
    // AWS JSON 1.1 is `application/x-amz-json-1.1`, which axum's `Json` extractor refuses.
    let body: Value = serde_json::from_slice(&body).unwrap();
    let target = headers["x-amz-target"].to_str().unwrap().to_owned();
    let mut state = r.state.lock().unwrap();
    if target == "Logs_20140328.PutLogEvents" {
        state.log_calls += 1;
        // The first call's first event is "too old"; the rest are taken.
        let events = body["logEvents"].as_array().unwrap();
        let skip = usize::from(state.log_calls == 1);
        for e in &events[skip..] {
            state
                .accepted
                .push(serde_json::from_str(e["message"].as_str().unwrap()).unwrap());
        }
        return Json(if skip == 1 {
            json!({"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 0}})
        } else {
            json!({})
        });
    }
    state.calls += 1;
    let n = state.calls;
    let (records, results_member, count_member) = match target.as_str() {
        "Kinesis_20131202.PutRecords" => (body["Records"].clone(), "Records", "FailedRecordCount"),
        "Firehose_20150804.PutRecordBatch" => (body["Records"].clone(), "RequestResponses", "FailedPutCount"),
        "AWSEvents.PutEvents" => (body["Entries"].clone(), "Entries", "FailedEntryCount"),
        other => panic!("unexpected target {other}"),
    };
    let records = records.as_array().unwrap();
    state.sizes.push(records.len());
    let fails = |i: usize| {
        n % 3 == 1
            && match r.script {
                Script::SuffixThrottled => i >= records.len() / 2,
                Script::OneInside => i == 1,
            }
    };
    let mut results = Vec::new();
    let mut failed = 0;
    for (i, rec) in records.iter().enumerate() {
        if fails(i) {
            failed += 1;
            results.push(json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}));
        } else {
            let event = match target.as_str() {
                "AWSEvents.PutEvents" => serde_json::from_str(rec["Detail"].as_str().unwrap()).unwrap(),
                _ => decode(&rec["Data"]),
            };
            state.accepted.push(event);
            results.push(json!({"SequenceNumber": "1", "RecordId": "r", "EventId": "e"}));
        }
    }
    state.failed += failed;
    Json(json!({count_member: failed, results_member: results}))
}

async fn start_scripted(script: Script) -> (String, Arc<Mutex<Received>>) {
    let state = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route("/", axum::routing::post(answer))
        .with_state(Scripted {
            script,
            state: state.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

async fn partial(kind: &str, config: Value, script: Script) -> (BTreeMap<(String, String), u64>, Received, Value) {
    let (url, state) = start_scripted(script).await;
    let s = server();
    let expected = ingest_all(&s, 200).await;
    let mut config = config;
    config["endpoint"] = json!(url);
    config["region"] = json!("us-east-1");
    let sink = create_sink(
        &s,
        &s.admin,
        json!({"name": kind, "kind": kind, "start_at": "earliest", "config": config,
               "secrets": {"access_key_id": "AKIATEST", "secret_access_key": "secret"},
               "batch": {"max_events": 40, "flush_interval_ms": 10},
               "retry": {"max_attempts": 50, "initial_backoff_ms": 5, "max_backoff_ms": 20}}),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    wait_drained(&s, kind, id).await;
    let h = health(&s, id).await;
    let received = std::mem::take(&mut *state.lock().unwrap());
    (expected, received, h)
}

fn arrivals_of(received: &Received) -> Vec<Arrival> {
    received.accepted.iter().map(arrival).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_partial_failures_retry_only_the_failed_records_once_each_in_tenant_order() {
    for (kind, config) in [
        ("kinesis", json!({"stream_name": "audit"})),
        ("firehose", json!({"delivery_stream": "audit"})),
        ("eventbridge", json!({"event_bus": "audit"})),
    ] {
        let (expected, received, h) = partial(kind, config, Script::SuffixThrottled).await;
        assert!(received.failed > 0, "{kind}: the script failed some records");
        let dups = check_arrivals(kind, &arrivals_of(&received), &expected);
        assert_eq!(dups, 0, "{kind}: only failed records are sent again");
        // Every record sent was either accepted once or failed: nothing resent beyond the failures.
        let sent: usize = received.sizes.iter().sum();
        assert_eq!(sent as u64, expected.len() as u64 + received.failed, "{kind}");
        assert_eq!(h["dead_letters"], 0, "{kind}: {h}");
        if kind == "eventbridge" {
            assert!(received.sizes.iter().all(|&n| n <= 10), "{kind}: ≤ 10 entries per call");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_failure_inside_a_call_is_retried_alone_and_arrives_after_its_successors() {
    let (expected, received, _) = partial("kinesis", json!({"stream_name": "audit"}), Script::OneInside).await;
    assert!(received.failed > 0);
    let arrivals = arrivals_of(&received);
    // Exactly once: the records after the failed one were accepted and are not sent again.
    let got: BTreeMap<_, _> = arrivals
        .iter()
        .map(|(t, id, o)| ((t.clone(), id.clone()), *o))
        .collect();
    assert_eq!(got.len(), arrivals.len(), "no duplicate");
    assert_eq!(got, expected);
    // The order is the log's except for the failed records, which the service took later.
    let sent: usize = received.sizes.iter().sum();
    assert_eq!(sent as u64, expected.len() as u64 + received.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cloudwatch_events_the_service_rejects_become_dead_letters_with_its_reason() {
    let (url, state) = start_scripted(Script::SuffixThrottled).await;
    let s = server();
    let expected = ingest_all(&s, 20).await;
    let sink = create_sink(
        &s,
        &s.admin,
        json!({"name": "cw", "kind": "cloudwatch_logs", "start_at": "earliest",
               "config": {"log_group": "g", "region": "us-east-1", "endpoint": url},
               "secrets": {"access_key_id": "AKIATEST", "secret_access_key": "secret"},
               "batch": {"max_events": 40, "flush_interval_ms": 10}}),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    wait_drained(&s, "cloudwatch_logs", id).await;
    let dls = get(&s, &format!("/v1/sinks/{id}/dead-letters")).await;
    let items = dls["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dls}");
    assert_eq!(items[0]["event_count"], 1, "{dls}");
    assert!(items[0]["reason"].as_str().unwrap().contains("too old"), "{dls}");
    let received = state.lock().unwrap();
    assert_eq!(received.accepted.len(), expected.len() - 1);
}
