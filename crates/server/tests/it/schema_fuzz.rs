//! The generated API reference is what the server does: schemathesis (a schema-based fuzzer,
//! installed by `scripts/test-peers`) runs every check against a live server built from this
//! tree, once with a tenant key holding every scope over the tenant routes and once with the
//! operator token over the operator routes, and must find no response that contradicts the
//! document. The SSE stream, which never ends by itself, is checked here directly against the
//! schema the document gives its events.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{repo_root, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// Fixed so that a failure reproduces.
const SEED: &str = "20261203";
/// Cases per operation and phase; with this the two passes take about a minute here.
const MAX_EXAMPLES: &str = "15";

/// Per-operation settings both passes share.
///
/// - `pollEvents`: `wait` holds a request up to 60 s when nothing is after the cursor; the
///   fuzzer would spend its time waiting, so it sends `wait=0` (the bounds are still checked
///   by `tests/openapi.rs` and the long-poll tests).
/// - `createSink` / `updateSink` / `previewSink`: `config` is each kind's own schema (`doc::sink_config_schemas`),
///   but some rules are beyond JSON Schema (a URL's host, a receiver the SSRF guard refuses
///   after resolving it, which secret goes with which setting; listed in
///   `crates/sinks/tests/it/config_schema.rs`): the kind's `400 invalid_request` naming
///   `config.<key>` or `secrets.<name>` is expected there.
/// - `setRetention`: the windows must nest with the server's defaults (`active_days` ≤
///   `purge_after_days` ≤ `hard_limit_days`), a rule across fields that JSON Schema cannot
///   state; its `400` names the field.
/// - `startReplay`: a range is checked against the tenant's log as it is (`from` past the
///   head is an empty range, `400` naming `from`).
const CONFIG: &str = r#"
[[operations]]
include-operation-id = "pollEvents"
parameters = { "query.wait" = 0 }

[[operations]]
include-operation-id = ["createSink", "updateSink", "previewSink", "setRetention", "startReplay"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"#;

/// The operator names the tenant it reads (else `400`, as documented): `fuzz` has events.
const OPERATOR_CONFIG: &str = r#"
[[operations]]
include-operation-id = ["exportEvents", "listCheckpoints"]
parameters = { "query.tenant" = "fuzz" }
"#;

/// Runs one schemathesis pass and returns (success, its output).
fn schemathesis(dir: &Path, base: &str, token: &str, filters: &[&str], config_extra: &str) -> (bool, String) {
    let bin = repo_root().join(".peers/venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run `scripts/test-peers` first",
        bin.display()
    );
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, format!("{CONFIG}{config_extra}")).expect("writing the schemathesis config");
    let mut cmd = Command::new(&bin);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--mode", "all"])
        .args(["--seed", SEED])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--suppress-health-check", "all"])
        .args(["--report-dir", &dir.join("report").display().to_string()])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(filters)
        .current_dir(dir)
        .env(
            "SCHEMATHESIS_HOOKS",
            repo_root().join("tests/peers/schemathesis_hooks.py"),
        )
        .env("NO_COLOR", "1");
    let out = cmd.output().expect("running schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A pass whose filters matched fewer operations than planned would pass by testing nothing.
fn assert_tested(output: &str, at_least: usize) {
    let tested = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no `Tested:` line in the schemathesis output:\n{output}"));
    assert!(tested >= at_least, "only {tested} operations tested:\n{output}");
}

async fn events(server: &TestServer, token: &str) {
    let body = json!([
        {"id": "fuzz-1", "type": "decision.rejected", "actor": {"id": "usr_1", "ip_address": "203.0.113.42"},
         "outcome": "success", "severity": 9, "metadata": {"k": "v"}},
        {"id": "fuzz-2", "type": "auth.login", "source": {"service": "fuzz"}},
    ]);
    let (status, answer) = server.post_events(token, body.to_string(), "application/json").await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_finds_no_response_contradicting_the_document() {
    let server = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    // The server under test serves the document generated from this tree (a stale binary
    // would fuzz another API).
    let served = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("the document");
    assert!(
        served == auditrelay_server::api::doc::document_json(),
        "the server serves another document than this tree generates: a stale binary?"
    );
    server.create_tenant("fuzz").await;
    let key = server.create_key("fuzz", &["ingest", "read", "manage"]).await;
    events(&server, &key).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let base = server.base.clone();

    let tenant_pass = {
        let (dir, base, key) = (dir.path().join("tenant"), base.clone(), key.clone());
        std::fs::create_dir_all(&dir).expect("a directory for the tenant pass");
        tokio::task::spawn_blocking(move || {
            schemathesis(
                &dir,
                &base,
                &key,
                &[
                    "--include-path-regex",
                    "^/v1/(events|sinks|integrity/key)",
                    "--include-operation-id",
                    "getTenant",
                    "--include-operation-id",
                    "getRetention",
                ],
                "",
            )
        })
    };
    let (ok, output) = tenant_pass.await.expect("the tenant pass ran");
    assert!(
        ok,
        "schemathesis (tenant key, tenant routes) found contradictions:\n{output}\n{}",
        server.log()
    );
    assert_tested(&output, 20);

    let operator_pass = {
        let (dir, base, admin) = (dir.path().join("operator"), base.clone(), server.admin.clone());
        std::fs::create_dir_all(&dir).expect("a directory for the operator pass");
        tokio::task::spawn_blocking(move || {
            schemathesis(
                &dir,
                &base,
                &admin,
                // Not `/v1/admin/token/rotate`: a new operator token would lock the rest out.
                &[
                    "--include-path-regex",
                    "^/(v1/(tenants|export|integrity/checkpoints)|healthz|readyz|metrics|openapi\\.json)",
                ],
                OPERATOR_CONFIG,
            )
        })
    };
    let (ok, output) = operator_pass.await.expect("the operator pass ran");
    assert!(
        ok,
        "schemathesis (operator token, operator routes) found contradictions:\n{output}\n{}",
        server.log()
    );
    assert_tested(&output, 14);
}

/// `GET /v1/stream` is endless, so it is read here: each event matches the document's
/// `SseEvent` (an `id` that is the offset, `data` a `StoredEvent` with its required fields and
/// no undocumented one).
#[tokio::test]
async fn sse_events_match_their_documented_schema() {
    let doc: Value = serde_json::from_str(auditrelay_server::api::doc::document_json()).expect("the document is JSON");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SseEvent"]["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/StoredEvent"
    );
    let stored = &schemas["StoredEvent"];
    let required: Vec<&str> = stored["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let known: Vec<&String> = stored["properties"].as_object().expect("properties").keys().collect();

    let server = TestServer::spawn();
    server.create_tenant("sse").await;
    let key = server.create_key("sse", &["ingest", "read"]).await;
    events(&server, &key).await;
    let response = server
        .http
        .get(server.url("/v1/stream?after=0"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("opening the stream");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");

    // Read until both events arrived (heartbeats may come between them).
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while text.matches("\ndata: ").count() + usize::from(text.starts_with("data: ")) < 2 || !text.ends_with("\n\n")
        {
            match body.next().await {
                Some(Ok(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "two events did not arrive: {text:?}");

    let mut seen = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut id = None;
        let mut data = None;
        for line in block.lines() {
            if line.starts_with(':') {
                continue; // a heartbeat comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "data" => data = Some(value.to_owned()),
                other => panic!("undocumented SSE field `{other}` in {block:?}"),
            }
        }
        let Some(data) = data else { continue };
        let id = id.expect("every event has an id");
        assert!(
            id.chars().all(|c| c.is_ascii_digit()) && !id.starts_with('0'),
            "id {id:?}"
        );
        let event: Value = serde_json::from_str(&data).expect("data is JSON");
        let event = event.as_object().expect("data is an object");
        for field in &required {
            assert!(event.contains_key(*field), "`{field}` missing from {data}");
        }
        for field in event.keys() {
            assert!(
                known.contains(&field),
                "`{field}` is not documented in StoredEvent: {data}"
            );
        }
        assert_eq!(event["offset"].to_string(), id, "the id is the offset");
        seen.push(id);
    }
    assert_eq!(seen, ["1", "2"]);
}
