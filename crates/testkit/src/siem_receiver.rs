//! One loopback receiver that speaks just enough of each SIEM's intake API for the SIEM matrix
//! test: Splunk HEC, Elastic `_bulk`, Datadog logs v2 (gzip), Sentinel (token endpoint + Logs
//! Ingestion), a generic HTTPS endpoint and a webhook. It answers like the real thing on
//! success and records the event ids each intake received.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test harness: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Default)]
pub struct Siem {
    pub port: u16,
    seen: Arc<Mutex<BTreeMap<&'static str, HashSet<String>>>>,
}

impl Siem {
    pub async fn start() -> Siem {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let siem = Siem {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let app = Router::new()
            .route("/services/collector/event", post(hec))
            .route("/_bulk", post(bulk))
            .route("/api/v2/logs", post(datadog))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/dataCollectionRules/{dcr}/streams/{stream}", post(sentinel))
            .route("/generic", post(generic))
            .route("/hook", post(webhook))
            .with_state(siem.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        siem
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ids(&self, intake: &str) -> HashSet<String> {
        self.seen.lock().unwrap().get(intake).cloned().unwrap_or_default()
    }

    fn record(&self, intake: &'static str, ids: impl IntoIterator<Item = String>) {
        self.seen.lock().unwrap().entry(intake).or_default().extend(ids);
    }
}

/// Every value in a stream of concatenated JSON documents.
fn json_stream(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect()
}

/// The event id of a record, whatever the format put it under.
fn event_id(v: &Value) -> Option<String> {
    for path in [&["id"][..], &["event_id"], &["metadata", "uid"], &["event", "id"]] {
        let mut cur = v;
        let mut ok = true;
        for k in path {
            match cur.get(*k) {
                Some(next) => cur = next,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some(s) = cur.as_str() {
                return Some(s.to_owned());
            }
        }
    }
    None
}

async fn hec(State(s): State<Siem>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Splunk hec-token") {
        return (StatusCode::FORBIDDEN, Json(json!({"text": "Invalid token", "code": 4})));
    }
    let mut ids = Vec::new();
    for env in json_stream(&body) {
        let id = env["fields"]["event_id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| event_id(&env["event"]));
        // A CEF record must carry the same id in `externalId`.
        if let (Some(id), Some(cef)) = (&id, env["event"].as_str()) {
            assert!(
                cef.starts_with("CEF:0|") && cef.contains(&format!("externalId={id}")),
                "{cef}"
            );
        }
        ids.extend(id);
    }
    s.record("splunk_hec", ids);
    (StatusCode::OK, Json(json!({"text": "Success", "code": 0})))
}

async fn bulk(State(s): State<Siem>, body: Bytes) -> impl IntoResponse {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with('\n'), "_bulk body must end with a newline");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for pair in lines.chunks(2) {
        let (action, doc) = (&pair[0], &pair[1]);
        let (name, meta) = action.as_object().unwrap().iter().next().unwrap();
        ids.push(
            meta["_id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| event_id(doc))
                .unwrap(),
        );
        items.push(json!({ name.clone(): { "status": 201, "_id": meta["_id"] } }));
    }
    s.record("elastic", ids);
    Json(json!({ "took": 1, "errors": false, "items": items }))
}

async fn datadog(State(s): State<Siem>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut plain = Vec::new();
    if headers.get("content-encoding").and_then(|v| v.to_str().ok()) == Some("gzip") {
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
    } else {
        plain = body.to_vec();
    }
    let entries: Vec<Value> = serde_json::from_slice(&plain).unwrap();
    let ids = entries
        .iter()
        .filter_map(|e| {
            e["event_id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| event_id(&e["message"]))
        })
        .collect::<Vec<_>>();
    s.record("datadog", ids);
    (StatusCode::ACCEPTED, Json(json!({})))
}

async fn token(Path(_tenant): Path<String>) -> impl IntoResponse {
    Json(json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": "matrix-token" }))
}

async fn sentinel(State(s): State<Siem>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer matrix-token") {
        return StatusCode::UNAUTHORIZED;
    }
    let records: Vec<Value> = serde_json::from_slice(&body).unwrap();
    s.record("sentinel", records.iter().filter_map(event_id));
    StatusCode::NO_CONTENT
}

async fn generic(State(s): State<Siem>, body: Bytes) -> impl IntoResponse {
    let records: Vec<Value> = serde_json::from_slice(&body).unwrap();
    s.record("generic_https", records.iter().filter_map(event_id));
    StatusCode::OK
}

async fn webhook(State(s): State<Siem>, body: Bytes) -> impl IntoResponse {
    let v: Value = serde_json::from_slice(&body).unwrap();
    s.record("webhook", v["events"].as_array().unwrap().iter().filter_map(event_id));
    StatusCode::NO_CONTENT
}
