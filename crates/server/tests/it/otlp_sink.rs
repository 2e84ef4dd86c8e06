//! The `otlp` sink against a loopback receiver that parses every request with the official
//! generated classes (Python `opentelemetry-proto`, tests/peers/otlp_receiver.py): events that
//! came in over OTLP from the real SDK go out again with their name, attributes, resource and
//! scope; every event carries `event.id` and the `auditrelay.*` attributes; OTLP's retry rules
//! and `partial_success` hold; both encodings and both compressions are parsed.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{peer_python, repo_root, TestServer};
use crate::delivery_support::{create_sink, health, ingest, wait_until};
use crate::otlp::{sdk_export, setup};

struct OtlpReceiver {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl OtlpReceiver {
    fn start(args: &[&str]) -> OtlpReceiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("requests.jsonl");
        let mut child = Command::new(peer_python())
            .arg(repo_root().join("tests/peers/otlp_receiver.py"))
            .args(["--port", "0", "--out"])
            .arg(&out)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting otlp_receiver.py (run scripts/test-peers)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("otlp_receiver.py said {line:?}"))
            .parse()
            .unwrap();
        OtlpReceiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/logs", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every record of every accepted request, with its resource and scope.
    fn records(&self) -> Vec<(Value, Value, Value)> {
        let mut out = Vec::new();
        for request in self.requests().into_iter().filter(|r| r["status"] == 200) {
            for rl in request["resource_logs"].as_array().unwrap() {
                for scope in rl["scopes"].as_array().unwrap() {
                    for record in scope["records"].as_array().unwrap() {
                        out.push((
                            rl["resource"].clone(),
                            json!({"name": scope["name"], "version": scope["version"]}),
                            record.clone(),
                        ));
                    }
                }
            }
        }
        out
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn otlp_sink(receiver: &OtlpReceiver, tenant: &str, config: Value, secrets: Value) -> Value {
    let mut config = config;
    config["url"] = json!(receiver.url());
    json!({
        "name": "collector", "kind": "otlp", "tenant": tenant, "start_at": "earliest",
        "config": config, "secrets": secrets,
        "batch": {"max_events": 25, "flush_interval_ms": 0},
        "retry": {"max_attempts": 20, "initial_backoff_ms": 5, "max_backoff_ms": 40},
    })
}

#[tokio::test]
async fn otlp_in_then_out_keeps_name_attributes_resource_and_scope() {
    let server = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    let key = setup(&server, "acme").await;
    let (ok, summary, stderr) = sdk_export(&server, &key, &["--count", "8", "--prefix", "rt"]);
    assert!(ok, "the SDK export failed: {summary} {stderr}");
    // Plus events that never were OTLP: they go out with the default resource.
    let plain = ingest(&server, "acme", 12, 6).await;
    let log = server.read_log("acme").await;
    assert_eq!(log.len(), 20);

    let receiver = OtlpReceiver::start(&[]);
    let sink = create_sink(
        &server,
        &server.admin,
        otlp_sink(
            &receiver,
            "acme",
            json!({}),
            json!({"auth_value": "Bearer otlp-s3cret"}),
        ),
    )
    .await;
    let id = sink["id"].as_str().unwrap().to_owned();
    assert_eq!(sink["format"], "otlp");
    wait_until(
        "all 20 records parsed by the receiver",
        Duration::from_secs(30),
        || async { receiver.records().len() >= 20 },
    )
    .await;
    wait_until("the cursor at the head", Duration::from_secs(10), || async {
        health(&server, &id).await["lag"] == 0
    })
    .await;

    let requests = receiver.requests();
    for r in &requests {
        assert_eq!(r["status"], 200, "the official classes could not parse a request: {r}");
        assert_eq!(r["content_type"], "application/x-protobuf", "{r}");
        assert_eq!(r["content_encoding"], "gzip", "{r}");
        assert_eq!(r["authorization"], "Bearer otlp-s3cret");
    }
    let records = receiver.records();
    assert_eq!(records.len(), 20, "each event once");
    let by_offset: BTreeMap<u64, &Value> = log.iter().map(|e| (e["offset"].as_u64().unwrap(), e)).collect();
    let mut seen = HashSet::new();
    for (resource, scope, record) in &records {
        let attrs = &record["attributes"];
        let offset: u64 = match &attrs["auditrelay.offset"] {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(s) => s.parse().unwrap(),
            other => panic!("auditrelay.offset is {other}"),
        };
        assert!(seen.insert(offset), "offset {offset} twice");
        let event = by_offset[&offset];
        assert_eq!(attrs["event.id"], event["id"], "{record}");
        assert_eq!(attrs["auditrelay.tenant_id"], "acme");
        assert_eq!(attrs["auditrelay.chain"], event["chain"], "{record}");
        let id = event["id"].as_str().unwrap();
        if let Some(i) = id.strip_prefix("rt-") {
            let i: i64 = i.parse().unwrap();
            // The name, body, attributes, resource and scope the SDK sent, back again.
            assert_eq!(record["event_name"], "Invoice.Paid", "{record}");
            assert_eq!(record["severity_number"], 13);
            assert_eq!(record["severity_text"], "WARN");
            assert_eq!(
                record["body"],
                json!({"message": format!("invoice {i} paid"), "amount": i * 10})
            );
            assert_eq!(attrs["invoice.number"], i);
            assert_eq!(attrs["enduser.id"], format!("usr_{i}"));
            assert_eq!(attrs["client.address"], "203.0.113.7");
            assert_eq!(attrs["event.outcome"], "success");
            assert_eq!(attrs["event.action"], "pay");
            assert_eq!(resource["service.name"], "billing");
            assert_eq!(resource["service.version"], "1.2.3");
            assert_eq!(resource["service.instance.id"], "billing-7f9c");
            assert_eq!(resource["deployment.environment.name"], "test");
            assert_eq!(resource["telemetry.sdk.language"], "python");
            assert_eq!(scope, &json!({"name": "audit.billing", "version": "0.9.1"}));
        } else {
            assert!(plain.iter().any(|(p, _)| p == id), "{id}");
            assert_eq!(record["event_name"], "user.login", "{record}");
        }
    }
    assert_eq!(seen, by_offset.keys().copied().collect::<HashSet<_>>());
}

#[tokio::test]
async fn json_uncompressed_retries_503_and_records_partial_success() {
    let server = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    server.create_tenant("acme").await;
    let accepted = ingest(&server, "acme", 30, 10).await;
    // The first two requests answer 503 (OTLP: retry); every accepted one says it dropped one
    // record (OTLP: do not retry, report).
    let receiver = OtlpReceiver::start(&["--fail-first", "2", "--reject-per-request", "1"]);
    let sink = create_sink(
        &server,
        &server.admin,
        otlp_sink(
            &receiver,
            "acme",
            json!({"protocol": "http/json", "compression": "none", "headers": {"X-Scope-OrgID": "soc"}}),
            json!({}),
        ),
    )
    .await;
    let id = sink["id"].as_str().unwrap().to_owned();
    wait_until("every event delivered", Duration::from_secs(30), || async {
        health(&server, &id).await["lag"] == 0
    })
    .await;
    let requests = receiver.requests();
    assert_eq!(requests[0]["status"], 503);
    assert_eq!(requests[1]["status"], 503);
    for r in &requests {
        assert_eq!(r["content_type"], "application/json", "{r}");
        assert_eq!(r["content_encoding"], "", "{r}");
        assert!(r.get("error").is_none(), "the official classes could not parse it: {r}");
    }
    let ids: HashSet<String> = receiver
        .records()
        .iter()
        .map(|(_, _, r)| r["attributes"]["event.id"].as_str().unwrap().to_owned())
        .collect();
    let want: HashSet<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, want);
    let h = health(&server, &id).await;
    let message = h["last_error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("partial_success") && message.contains("records over the quota"),
        "{h}"
    );
    assert_eq!(h["state"], "active", "{h}");
    // The delivery log keeps the note on the delivered attempt (it is written behind the
    // delivery, so wait for it).
    let path = format!("/v1/sinks/{id}/deliveries");
    wait_until("the note on the delivery log", Duration::from_secs(10), || async {
        let (status, log) = crate::common::send(server.http.get(server.url(&path)).bearer_auth(&server.admin)).await;
        status == 200 && log.to_string().contains("partial_success")
    })
    .await;
}
