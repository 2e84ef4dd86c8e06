//! The `security_lake` sink through the real server, against moto in server mode with SigV4
//! checking on (`INITIAL_NO_AUTH_ACTION_COUNT`: an IAM user and key are made first):
//! - a mix of events of three OCSF classes is read back by `tests/peers/lake_read.py` (boto3 +
//!   pyarrow): each object holds one class, sits under the custom-source layout, has `resources`
//!   as a Parquet LIST, every row is valid against the OCSF 1.8.0 schema, and every event arrives
//!   exactly once;
//! - through a proxy that loses moto's answer to the first PUTs (the object is stored, the sink
//!   sees a 503), the retry writes the same keys: no second object, no duplicate event;
//! - a wrong secret, and a bucket that does not exist, pause the sink with S3's error.
//!
//! (The SSRF refusal of a loopback `endpoint` at save time is in `ssrf.rs`, with the other kinds.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_testkit::arrivals::{check_arrivals, Arrival};
use auditrelay_testkit::moto::Moto;
use auditrelay_testkit::{peer_python, repo_root};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::common::{accepted_ids, send, TestServer};
use crate::delivery_support::{create_sink, health, server, wait_until};

const TENANTS: [&str; 2] = ["acme", "globex"];
const BUCKET: &str = "aws-security-data-lake-us-east-1-test";
const PREFIX: &str = "ext/auditrelay/region=us-east-1/accountId=123456789012/eventDay=";

/// Event `k` of a tenant: Authentication (3002), Account Change (3001) or API Activity (6003)
/// in turn, with the members each class maps (the API Activity ones have a `resources` list).
fn event(k: usize) -> Value {
    match k % 3 {
        0 => json!({"type": "auth.login", "outcome": "success",
                    "actor": {"id": format!("usr_{k}"), "type": "user", "email": "ann@example.com",
                              "ip_address": "192.0.2.10", "user_agent": "lake-test/1"}}),
        1 => json!({"type": "user.created", "actor": {"id": "adm_1", "type": "admin", "name": "Root"},
                    "target": {"type": "user", "id": format!("usr_{k}"), "name": "New"}}),
        _ => json!({"type": "document.updated", "action": "update", "severity": 3, "request_id": format!("req_{k}"),
                    "actor": {"id": "usr_2", "type": "user"},
                    "target": {"type": "document", "id": format!("doc_{k}"), "name": "Plan"},
                    "source": {"service": "docs", "version": "2.1.0", "instance": "i-1"},
                    "changes": {"title": ["a", "b"]}, "metadata": {"tags": ["x", "y"], "k": k}}),
    }
}

/// Ingests `per_tenant` events for each tenant in requests of 10, interleaved; returns
/// `(tenant, id) → offset`.
async fn ingest_mix(s: &TestServer, per_tenant: usize) -> BTreeMap<(String, String), u64> {
    let mut expected = BTreeMap::new();
    for t in TENANTS {
        s.create_tenant(t).await;
    }
    for start in (0..per_tenant).step_by(10) {
        for t in TENANTS {
            let batch: Vec<Value> = (start..(start + 10).min(per_tenant)).map(event).collect();
            let (status, answer) = send(
                s.http
                    .post(s.url(&format!("/v1/events?tenant={t}")))
                    .bearer_auth(&s.admin)
                    .json(&batch),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            for (id, offset) in accepted_ids(&answer) {
                expected.insert((t.to_owned(), id), offset);
            }
        }
    }
    expected
}

fn definition(endpoint: &str, keys: &(String, String), bucket: &str) -> Value {
    json!({"name": "lake", "kind": "security_lake", "start_at": "earliest",
           "config": {"bucket": bucket, "region": "us-east-1", "endpoint": endpoint,
                      "source_name": "auditrelay", "account_id": "123456789012"},
           "secrets": {"access_key_id": keys.0, "secret_access_key": keys.1},
           "batch": {"max_events": 25, "flush_interval_ms": 10},
           "retry": {"max_attempts": 20, "initial_backoff_ms": 10, "max_backoff_ms": 100}})
}

async fn wait_drained(s: &TestServer, id: &str) {
    wait_until("security_lake drained", Duration::from_secs(90), || async {
        let h = health(s, id).await;
        assert_ne!(h["state"], "paused", "{h}");
        h["lag"] == 0 && h["tenants"].as_array().map(Vec::len) == Some(TENANTS.len())
    })
    .await;
    let h = health(s, id).await;
    assert_eq!(h["dead_letters"], 0, "{h}");
}

/// What `tests/peers/lake_read.py` (boto3 + pyarrow + the OCSF schema) reads from the bucket.
fn lake_read(moto: &Moto, keys: &(String, String)) -> Vec<Value> {
    let out = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/lake_read.py"))
        .args([&moto.endpoint(), BUCKET, &keys.0, &keys.1])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lake_read.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["objects"].as_array().unwrap().clone()
}

/// Checks every object (one class, the layout, LIST columns, valid OCSF rows) and returns the
/// events in them, sorted by tenant and offset (objects are per class, so their key order is
/// not the log's order).
fn check_objects(objects: &[Value]) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut classes = BTreeSet::new();
    for o in objects {
        let key = o["key"].as_str().unwrap();
        assert_eq!(
            o["class_uids"].as_array().unwrap().len(),
            1,
            "{key}: one class per object"
        );
        let class = o["class_uids"][0].as_u64().unwrap();
        classes.insert(class);
        // ext/{source}/region=…/accountId=…/eventDay=YYYYMMDD/{tenant}_{class}_{first}-{last}.parquet
        let rest = key
            .strip_prefix(PREFIX)
            .unwrap_or_else(|| panic!("{key}: not under {PREFIX}"));
        let (day, name) = rest.split_once('/').unwrap();
        assert!(day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()), "{key}");
        let stem = name.strip_suffix(".parquet").unwrap_or_else(|| panic!("{key}"));
        let parts: Vec<&str> = stem.split('_').collect();
        assert_eq!(parts.len(), 3, "{key}");
        assert!(TENANTS.contains(&parts[0]), "{key}");
        assert_eq!(parts[1], class.to_string(), "{key}: the name says the class");
        let (first, last) = parts[2].split_once('-').unwrap();
        let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
        let errors = o["errors"].as_array().unwrap();
        assert!(errors.is_empty(), "{key}: rows invalid against OCSF 1.8.0: {errors:?}");
        // Arrays are Parquet LISTs (3-level: `resources.list.element.*`), never strings.
        let columns = o["columns"].as_object().unwrap();
        if class == 6003 {
            assert_eq!(o["list_columns"], json!(["resources"]), "{key}: {columns:?}");
            assert!(
                columns["resources"]
                    .as_str()
                    .unwrap()
                    .starts_with("list<element: struct<"),
                "{key}: {columns:?}"
            );
            let leaves = o["leaf_paths"].as_array().unwrap();
            assert!(
                leaves.contains(&json!("resources.list.element.uid")),
                "{key}: {leaves:?}"
            );
        }
        assert_eq!(columns["time"], "int64", "{key}");
        assert_eq!(columns["unmapped"], "string", "{key}");
        for row in o["rows"].as_array().unwrap() {
            assert_eq!(row["class_uid"], class, "{key}: {row}");
            let m = &row["metadata"];
            let (tenant, offset) = (m["tenant_uid"].as_str().unwrap(), m["sequence"].as_u64().unwrap());
            assert_eq!(tenant, parts[0], "{key}: {row}");
            assert!((first..=last).contains(&offset), "{key}: offset {offset}");
            if class == 6003 {
                assert_eq!(row["resources"][0]["type"], "document", "{row}");
                assert_eq!(row["unmapped"]["metadata"]["tags"], json!(["x", "y"]), "{row}");
            }
            arrivals.push((tenant.to_owned(), m["uid"].as_str().unwrap().to_owned(), offset));
        }
    }
    assert_eq!(
        classes,
        BTreeSet::from([3001, 3002, 6003]),
        "the mix spans three classes"
    );
    arrivals.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    arrivals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_lake_parquet_read_by_pyarrow_one_class_per_object_valid_ocsf_every_event_once() {
    let moto = Moto::start(true);
    let keys = moto.setup(BUCKET);
    let s = server();
    let expected = ingest_mix(&s, 60).await;
    let sink = create_sink(&s, &s.admin, definition(&moto.endpoint(), &keys, BUCKET)).await;
    wait_drained(&s, sink["id"].as_str().unwrap()).await;
    let objects = lake_read(&moto, &keys);
    // 60 events per tenant in batches of 25: at least 3 batches × 3 classes per tenant.
    assert!(objects.len() >= 2 * 3 * 3, "{} objects", objects.len());
    let arrivals = check_objects(&objects);
    assert_eq!(
        check_arrivals("security_lake", &arrivals, &expected),
        0,
        "no duplicates"
    );
}

/// What the proxy saw and did.
#[derive(Default)]
struct Seen {
    /// The path of every PUT, in order, and whether its answer was replaced by a 503.
    puts: Vec<(String, bool)>,
}

#[derive(Clone)]
struct Proxy {
    moto: String,
    http: reqwest::Client,
    /// How many PUT answers to lose.
    lose: usize,
    seen: Arc<Mutex<Seen>>,
}

/// Forwards every request to moto unchanged (the `Host` header too, so SigV4 still verifies);
/// the first `lose` PUTs reach moto and are stored, but the sink gets a 503 instead of moto's
/// answer, as when a connection drops after the upload.
async fn forward(State(p): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
    let answer = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.moto))
        .headers(parts.headers.clone())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    if parts.method == axum::http::Method::PUT {
        let mut seen = p.seen.lock().unwrap();
        let lose = seen.puts.iter().filter(|(_, lost)| *lost).count() < p.lose && status.is_success();
        seen.puts.push((parts.uri.path().to_owned(), lose));
        if lose {
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "answer lost").into_response();
        }
    }
    let mut response = (status, bytes).into_response();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_lake_retry_after_a_lost_answer_overwrites_the_same_keys() {
    let moto = Moto::start(true);
    let keys = moto.setup(BUCKET);
    let proxy = Proxy {
        moto: moto.endpoint(),
        http: reqwest::Client::new(),
        lose: 2,
        seen: Arc::default(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = server();
    let expected = ingest_mix(&s, 30).await;
    let sink = create_sink(&s, &s.admin, definition(&endpoint, &keys, BUCKET)).await;
    wait_drained(&s, sink["id"].as_str().unwrap()).await;

    let puts = proxy.seen.lock().unwrap().puts.clone();
    let lost: Vec<&String> = puts.iter().filter(|(_, lost)| *lost).map(|(p, _)| p).collect();
    assert_eq!(lost.len(), 2, "{puts:?}");
    for path in &lost {
        let again = puts.iter().filter(|(p, _)| p == *path).count();
        assert!(again >= 2, "{path}: the retry PUT the same key: {puts:?}");
    }
    let distinct: BTreeSet<&String> = puts.iter().map(|(p, _)| p).collect();
    assert!(distinct.len() < puts.len(), "{puts:?}");

    let objects = lake_read(&moto, &keys);
    assert_eq!(
        objects.len(),
        distinct.len(),
        "one object per distinct key, none added by a retry"
    );
    let arrivals = check_objects(&objects);
    assert_eq!(
        check_arrivals("security_lake retried", &arrivals, &expected),
        0,
        "no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_lake_wrong_secret_or_missing_bucket_pauses_with_the_services_error() {
    let moto = Moto::start(true);
    let keys = moto.setup(BUCKET);
    let s = server();
    ingest_mix(&s, 3).await;
    let wrong = (keys.0.clone(), format!("{}x", keys.1));
    let cases = [
        (
            "wrong secret",
            definition(&moto.endpoint(), &wrong, BUCKET),
            "403",
            "SignatureDoesNotMatch",
        ),
        (
            "missing bucket",
            definition(&moto.endpoint(), &keys, "no-such-lake"),
            "404",
            "NoSuchBucket",
        ),
    ];
    for (what, body, status, code) in cases {
        let sink = create_sink(&s, &s.admin, body).await;
        let id = sink["id"].as_str().unwrap().to_owned();
        wait_until(&format!("{what}: paused"), Duration::from_secs(30), || async {
            health(&s, &id).await["state"] == "paused"
        })
        .await;
        let h = health(&s, &id).await;
        let reason = h["pause_reason"].as_str().unwrap_or_default();
        assert!(reason.contains(status) && reason.contains(code), "{what}: {h}");
        assert!(
            !reason.contains(&wrong.1),
            "{what}: the secret must never show: {reason}"
        );
        assert_eq!(h["dead_letters"], 0, "{what}: the batch is kept: {h}");
    }
}

/// With `role_arn` + `external_id`, the sink signs with the keys STS `AssumeRole` gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_lake_assumes_the_custom_source_role_with_its_external_id() {
    let moto = Moto::start(true);
    // tests/peers/aws_setup.py: the IAM user and key, and a role `relay` whose trust policy wants
    // the external id `ext-1`; then the lake bucket, made with that key.
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
    let keys = (
        v["access_key_id"].as_str().unwrap().to_owned(),
        v["secret_access_key"].as_str().unwrap().to_owned(),
    );
    let script = "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]).create_bucket(Bucket=sys.argv[4])";
    let out = Command::new(peer_python())
        .args(["-c", script, &moto.endpoint(), &keys.0, &keys.1, BUCKET])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "create_bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = server();
    let expected = ingest_mix(&s, 12).await;
    let mut body = definition(&moto.endpoint(), &keys, BUCKET);
    body["config"]["role_arn"] = json!("arn:aws:iam::123456789012:role/relay");
    body["config"]["external_id"] = json!("ext-1");
    body["config"]["sts_endpoint"] = json!(moto.endpoint());
    let sink = create_sink(&s, &s.admin, body).await;
    wait_drained(&s, sink["id"].as_str().unwrap()).await;
    let arrivals = check_objects(&lake_read(&moto, &keys));
    assert_eq!(check_arrivals("security_lake via AssumeRole", &arrivals, &expected), 0);
}
