//! Test helpers: a recording HTTP receiver on 127.0.0.1, the Python `standardwebhooks` verifier,
//! and sample batches. Each test binary uses a different subset.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use auditrelay_core::StoredEvent;
use auditrelay_sinks::{Batch, Secrets, SinkEnv};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Loopback receivers need private networks allowed.
pub fn open_env() -> SinkEnv {
    SinkEnv {
        allow_private_networks: true,
        ..SinkEnv::default()
    }
}

pub fn guarded_env() -> SinkEnv {
    SinkEnv::default()
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// The header map the Python verifier takes.
    pub fn headers_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.to_str().unwrap())))
            .collect();
        Value::Object(map)
    }
}

/// An HTTP receiver on 127.0.0.1 that records every request. `/status/<code>` answers that
/// status (query: `retry_after=<value>`, `location=<url>`, `body_len=<n>`); any other path
/// answers 204.
pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(record).with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, requests, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(requests): State<Arc<Mutex<Vec<Recorded>>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().to_owned();
    requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body,
    });
    let Some(code) = path.strip_prefix("/status/") else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut body = format!("receiver says {code}");
    for (k, v) in query {
        match k.as_str() {
            "retry_after" => drop(headers.insert("retry-after", HeaderValue::from_str(&v).unwrap())),
            "location" => drop(headers.insert("location", HeaderValue::from_str(&v).unwrap())),
            "body_len" => body = "x".repeat(v.parse().unwrap()),
            _ => panic!("unknown query key {k}"),
        }
    }
    (status, headers, body).into_response()
}

/// The repository root (where `scripts/test-peers` puts `.peers/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The peers' Python. A missing venv FAILS the test: skipping would let a broken signature pass
/// unnoticed.
pub fn peer_python() -> PathBuf {
    let python = repo_root().join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/test-peers` first (installs the standardwebhooks verifier)",
        python.display()
    );
    python
}

/// Verifies each `(secret, headers, body)` with the reference `standardwebhooks` library;
/// returns `ok` or `fail: <error>` per item.
pub fn python_verify(items: &[(String, Value, String)]) -> Vec<String> {
    let script = repo_root().join("tests/peers/verify_webhook.py");
    let mut child = Command::new(peer_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (secret, headers, body) in items {
            let line = json!({"secret": secret, "headers": headers, "body": body});
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "verify_webhook.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), items.len(), "one answer per input: {lines:?}");
    lines
}

pub fn events(tenant: &str, offsets: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
    offsets
        .map(|offset| {
            let id = format!("evt_{offset:04}");
            StoredEvent {
                tenant_id: tenant.to_owned(),
                offset,
                id: id.clone(),
                event_type: "user.login".to_owned(),
                body: json!({
                    "id": id,
                    "tenant_id": tenant,
                    "type": "user.login",
                    "occurred_at": "2026-06-01T10:13:20.000Z",
                    "actor": {"id": "usr_1", "name": "Zoë \"quoted\" <b>"},
                    "severity": 5
                })
                .to_string(),
                chain: None,
            }
        })
        .collect()
}

pub fn batch<'a>(batch_id: &'a str, events: &'a [StoredEvent]) -> Batch<'a> {
    Batch {
        sink_id: "snk_test",
        tenant_id: "acme",
        batch_id,
        events,
    }
}

pub fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
