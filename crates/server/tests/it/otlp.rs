//! `POST /otlp/v1/logs` against the real OpenTelemetry Python SDK (opentelemetry-sdk with its
//! unmodified OTLP/HTTP protobuf exporter, configured by the SDK's environment variables only),
//! plus hand-made OTLP/JSON, gzip and malformed bodies, tenant isolation, and a SIGKILL during
//! exports under load.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_error, peer_python, repo_root, send, send_text, TestServer};
use serde_json::{json, Value};

/// Runs `tests/peers/otel_export.py` against `server` with `key`; returns its exit status and
/// its summary line.
pub(crate) fn sdk_export(server: &TestServer, key: &str, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/otel_export.py"))
        .args(args)
        // Only the SDK's own configuration: what an application pointed at auditrelay sets.
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url("/otlp"))
        .env("OTEL_EXPORTER_OTLP_HEADERS", format!("Authorization=Bearer%20{key}"))
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .stderr(Stdio::piped())
        .output()
        .expect("running otel_export.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (out.status.success(), summary, stderr)
}

pub(crate) async fn setup(server: &TestServer, tenant: &str) -> String {
    server.create_tenant(tenant).await;
    server.create_key(tenant, &["ingest", "read"]).await
}

/// `POST /otlp/v1/logs` with a raw body → (status, content type, body bytes).
async fn post_raw(
    server: &TestServer,
    path: &str,
    token: &str,
    content_type: &str,
    gzip: bool,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut req = server
        .http
        .post(server.url(path))
        .bearer_auth(token)
        .header("content-type", content_type);
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&body).unwrap();
        enc.finish().unwrap()
    } else {
        body
    };
    let resp = req
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("sending");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

fn json_request(records: Vec<Value>) -> Vec<u8> {
    json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "host.name", "value": {"stringValue": "web-3"}}
        ]},
        "scopeLogs": [{"scope": {"name": "audit", "version": "2"}, "logRecords": records}]
    }]})
    .to_string()
    .into_bytes()
}

fn by_id(events: &[Value]) -> HashMap<String, Value> {
    events
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[tokio::test]
async fn the_python_sdk_exports_unchanged_and_events_carry_the_mapped_fields() {
    let server = TestServer::spawn();
    let key = setup(&server, "acme").await;
    let (ok, summary, stderr) = sdk_export(&server, &key, &["--count", "5", "--prefix", "sdk", "--repeat-first"]);
    assert!(ok, "the SDK export failed: {summary} {stderr}");
    assert!(summary["exported"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary} {stderr}");

    let log = server.read_log("acme").await;
    // Six records sent (the first twice, same event.id): five stored, once each.
    assert_eq!(common::ids(&log).len(), 5, "{log:#?}");
    let events = by_id(&log);
    let ids: HashSet<&String> = events.keys().collect();
    assert_eq!(ids.len(), 5);
    for i in 0..5 {
        let e = &events[&format!("sdk-{i}")];
        assert_eq!(e["type"], "invoice.paid");
        assert_eq!(e["tenant_id"], "acme");
        // WARN = 13 → round(12 × 10 / 23) = 5.
        assert_eq!(e["severity"], 5);
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["action"], "pay");
        assert_eq!(
            e["actor"],
            json!({"id": format!("usr_{i}"), "ip_address": "203.0.113.7"})
        );
        assert_eq!(
            e["source"],
            json!({"service": "billing", "version": "1.2.3", "instance": "billing-7f9c"})
        );
        let otel = &e["metadata"]["otel"];
        assert_eq!(otel["event_name"], "Invoice.Paid");
        assert_eq!(
            otel["body"],
            json!({"message": format!("invoice {i} paid"), "amount": i * 10})
        );
        assert_eq!(otel["attributes"], json!({"invoice.number": i}));
        assert_eq!(otel["resource"]["attributes"]["deployment.environment.name"], "test");
        assert_eq!(otel["resource"]["attributes"]["telemetry.sdk.language"], "python");
        assert_eq!(otel["scope"], json!({"name": "audit.billing", "version": "0.9.1"}));
        assert_eq!(otel["severity_text"], "WARN");
        assert_eq!(otel["severity_number"], 13);
        // The SDK stamps the time; it is the event's occurred_at.
        assert!(e["occurred_at"].as_str().unwrap().ends_with('Z'), "{e}");
    }

    // The same export again: every event.id is a duplicate, nothing new is stored.
    let (ok, summary, stderr) = sdk_export(&server, &key, &["--count", "5", "--prefix", "sdk"]);
    assert!(ok, "{summary} {stderr}");
    assert_eq!(server.read_log("acme").await.len(), 5);
}

#[tokio::test]
async fn json_and_gzip_bodies_partial_success_and_malformed_bodies() {
    let server = TestServer::spawn();
    let key = setup(&server, "acme").await;
    let path = "/otlp/v1/logs";

    // OTLP/JSON, uncompressed: 64-bit times as strings, ids as hex; one record has a name
    // that cannot be a type and is refused alone.
    let body = json_request(vec![
        json!({"timeUnixNano": "1780000000123456789", "severityNumber": 17, "eventName": "user.delete",
               "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
               "body": {"stringValue": "deleted"},
               "attributes": [{"key": "event.id", "value": {"stringValue": "j-1"}},
                              {"key": "user.id", "value": {"stringValue": "usr_9"}},
                              {"key": "retries", "value": {"intValue": "3"}}]}),
        json!({"eventName": "not a type!", "attributes": [{"key": "event.id", "value": {"stringValue": "j-bad"}}]}),
        json!({"timeUnixNano": 1780000000000000000u64, "attributes": [{"key": "event.id", "value": {"stringValue": "j-2"}}]}),
    ]);
    let (status, ct, answer) = post_raw(&server, path, &key, "application/json", false, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(ct, "application/json");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], 1, "{answer}");
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("log record 1: type"), "{message}");

    // The same records gzip-compressed: accepted, and the two good ones are duplicates.
    let body = json_request(vec![
        json!({"eventName": "user.delete", "attributes": [{"key": "event.id", "value": {"stringValue": "j-1"}}]}),
        json!({"eventName": "user.create", "attributes": [{"key": "event.id", "value": {"stringValue": "j-3"}}]}),
    ]);
    let (status, _, answer) = post_raw(&server, path, &key, "application/json", true, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap(), json!({}));

    let log = server.read_log("acme").await;
    let events = by_id(&log);
    assert_eq!(log.len(), 3, "{log:#?}");
    assert!(!events.contains_key("j-bad"));
    let e = &events["j-1"];
    assert_eq!(e["type"], "user.delete");
    assert_eq!(e["occurred_at"], "2026-05-28T20:26:40.123456789Z");
    assert_eq!(e["severity"], 7);
    assert_eq!(e["actor"], json!({"id": "usr_9"}));
    assert_eq!(e["source"], json!({"service": "checkout"}));
    assert_eq!(e["metadata"]["otel"]["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(e["metadata"]["otel"]["span_id"], "eee19b7ec3c1b174");
    assert_eq!(e["metadata"]["otel"]["attributes"], json!({"retries": 3}));
    assert_eq!(
        e["metadata"]["otel"]["resource"],
        json!({"attributes": {"host.name": "web-3"}})
    );
    assert_eq!(events["j-2"]["type"], "otel.log");
    assert_eq!(events["j-2"]["occurred_at"], "2026-05-28T20:26:40.000Z");
    assert_eq!(events["j-3"]["type"], "user.create");

    // A malformed protobuf body: 400 with an OTLP Status in protobuf (field 1 code = 3).
    let (status, ct, answer) = post_raw(
        &server,
        path,
        &key,
        "application/x-protobuf",
        false,
        b"\x0a\xff\xff\xff\xff\x0f garbage".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(ct, "application/x-protobuf");
    assert_eq!(&answer[..2], b"\x08\x03", "Status.code = INVALID_ARGUMENT: {answer:?}");
    // Malformed JSON: the Status is JSON.
    let (status, ct, answer) = post_raw(
        &server,
        path,
        &key,
        "application/json",
        false,
        b"{\"resourceLogs\": 7}".to_vec(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (400, "application/json"));
    let status_body: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status_body["code"], 3, "{status_body}");
    assert!(
        status_body["message"].as_str().unwrap().contains("OTLP/JSON"),
        "{status_body}"
    );
    // A broken gzip stream is malformed too.
    let (status, _, _) = post_raw(&server, path, &key, "application/json", false, Vec::new()).await;
    assert_eq!(status, 400, "an empty JSON body is not a request");
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(&key)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"not gzip at all".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Another media type: 415.
    let got = send(
        server
            .http
            .post(server.url(path))
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    assert_error(&got, 415, "unsupported_media_type");
    // Nothing more was stored.
    assert_eq!(server.read_log("acme").await.len(), 3);
}

#[tokio::test]
async fn limits_and_tenant_isolation() {
    let server = TestServer::spawn_with(&["--max-request-bytes", "65536"], &[]);
    let key = setup(&server, "acme").await;
    server.create_tenant("other").await;
    let other_key = server.create_key("other", &["ingest", "read"]).await;
    let body = || json_request(vec![json!({"eventName": "a.b"})]);

    // Another tenant's key naming this tenant: 404, exactly like a tenant that does not exist.
    let cross = send(
        server
            .http
            .post(server.url("/otlp/v1/logs?tenant=acme"))
            .bearer_auth(&other_key)
            .header("content-type", "application/json")
            .body(body()),
    )
    .await;
    assert_error(&cross, 404, "not_found");
    let missing = send(
        server
            .http
            .post(server.url("/otlp/v1/logs?tenant=nope"))
            .bearer_auth(&other_key)
            .header("content-type", "application/json")
            .body(body()),
    )
    .await;
    assert_eq!(
        cross.1["error"]["message"].as_str().unwrap().replace("acme", "X"),
        missing.1["error"]["message"].as_str().unwrap().replace("nope", "X")
    );
    // No token, a read-only key: 401, 403.
    let (status, _) = send_text(
        server
            .http
            .post(server.url("/otlp/v1/logs"))
            .header("content-type", "application/json")
            .body(body()),
    )
    .await;
    assert_eq!(status, 401);
    let reader = server.create_key("acme", &["read"]).await;
    let got = send(
        server
            .http
            .post(server.url("/otlp/v1/logs"))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body(body()),
    )
    .await;
    assert_error(&got, 403, "forbidden");
    // The operator names the tenant; without it, 400.
    let (status, _, answer) = post_raw(
        &server,
        "/otlp/v1/logs?tenant=acme",
        &server.admin,
        "application/json",
        false,
        body(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let got = send(
        server
            .http
            .post(server.url("/otlp/v1/logs"))
            .bearer_auth(&server.admin)
            .header("content-type", "application/json")
            .body(body()),
    )
    .await;
    assert_error(&got, 400, "invalid_parameter");
    assert_eq!(server.read_log("acme").await.len(), 1);
    assert_eq!(server.read_log("other").await.len(), 0);

    // Over the request limit: 413, compressed or not (a small gzip body that inflates past the
    // limit is refused as well).
    let big = json_request(vec![json!({"body": {"stringValue": "x".repeat(70_000)}})]);
    let (status, _, _) = post_raw(&server, "/otlp/v1/logs", &key, "application/json", false, big.clone()).await;
    assert_eq!(status, 413);
    let (status, _, _) = post_raw(&server, "/otlp/v1/logs", &key, "application/json", true, big).await;
    assert_eq!(status, 413);
    assert_eq!(server.read_log("acme").await.len(), 1);
}

/// SIGKILL while the SDK exports under load: every record whose batch the exporter saw
/// acknowledged (200) is in the log after a restart, exactly once.
#[tokio::test]
async fn sigkill_during_sdk_exports_loses_no_acknowledged_record() {
    let mut server = TestServer::spawn();
    let key = setup(&server, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked.txt");
    let mut exporters = Vec::new();
    for w in 0..4 {
        let child = Command::new(peer_python())
            .arg(repo_root().join("tests/peers/otel_export.py"))
            .args(["--count", "20000", "--batch", "200", "--timeout", "2"])
            .args(["--prefix", &format!("w{w}")])
            .arg("--acked")
            .arg(&acked)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url("/otlp"))
            .env("OTEL_EXPORTER_OTLP_HEADERS", format!("Authorization=Bearer%20{key}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting otel_export.py");
        exporters.push(child);
    }
    // Each exporter announces every acknowledged batch on stdout ("acked N") once it has
    // written the batch's ids down; kill once a good number of records were acknowledged.
    let (tx, mut announced) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for child in &mut exporters {
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
    }
    drop(tx);
    let mut acknowledged = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acknowledged < 2000 {
        match tokio::time::timeout_at(deadline, announced.recv()).await {
            Ok(Some(n)) => acknowledged += n,
            Ok(None) => panic!("every exporter ended with only {acknowledged} records acknowledged"),
            Err(_) => panic!("only {acknowledged} records acknowledged in time"),
        }
    }
    server.kill_9().await;
    for mut child in exporters {
        // They cannot reach the dead server; stop them rather than wait out their retries.
        let _ = child.kill();
        let _ = child.wait();
    }
    let acked: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "an id was acknowledged twice");

    server.restart();
    let log = server.read_log("acme").await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &log {
        *seen.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "an event is stored twice");
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        common::offsets(&log),
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    eprintln!(
        "{} records acknowledged before SIGKILL, {} stored",
        acked.len(),
        log.len()
    );
}
