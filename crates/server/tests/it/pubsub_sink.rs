//! The `pubsub` sink through the real server:
//! - against the Google Cloud Pub/Sub emulator (a topic and an ordered subscription made over
//!   REST): every event of two tenants is pulled back once, with its attributes and its tenant
//!   as ordering key, in offset order per tenant;
//! - against loopback doubles of Google's token endpoint (which verifies the RS256 assertion
//!   with the service account's public key) and of the publish API (which requires that
//!   token): the token is fetched once and reused across batches.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditrelay_testkit::peer_process::{free_port, wait_listening};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::TestServer;
use crate::delivery_support::{create_sink, health, ingest, wait_until};

const TENANTS: [&str; 2] = ["acme", "globex"];
pub(crate) const PROJECT: &str = "auditrelay-test";

pub(crate) struct Emulator {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Emulator {
    pub(crate) fn start() -> Emulator {
        let out = Command::new("gcloud")
            .args(["info", "--format=value(installation.sdk_root)"])
            .output()
            .expect("running gcloud (the Pub/Sub emulator comes with the Google Cloud SDK)");
        let root = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let bin = format!("{root}/platform/pubsub-emulator/bin/cloud-pubsub-emulator");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("emulator.log");
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("emulator.err")).unwrap())
            .stdin(Stdio::null())
            // Its own process group: the script starts java, and both go at the end.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        wait_listening(&mut child, "pubsub emulator", &[port], Duration::from_secs(90), &log);
        Emulator { child, port, _dir: dir }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/v1/projects/{PROJECT}/{path}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The whole process group: the script and the java it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

pub(crate) async fn rest(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Value) -> Value {
    let r = http.request(method, url).json(&body).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

#[tokio::test]
async fn emulator_receives_every_event_with_attributes_in_order_per_tenant() {
    let emulator = Emulator::start();
    let http = reqwest::Client::new();
    rest(&http, reqwest::Method::PUT, &emulator.url("topics/audit"), json!({})).await;
    rest(
        &http,
        reqwest::Method::PUT,
        &emulator.url("subscriptions/audit-sub"),
        json!({"topic": format!("projects/{PROJECT}/topics/audit"), "enableMessageOrdering": true}),
    )
    .await;

    let server = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    let mut expected: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for t in TENANTS {
        server.create_tenant(t).await;
    }
    for _ in 0..2 {
        for t in TENANTS {
            for (id, offset) in ingest(&server, t, 15, 5).await {
                expected.insert(id, (t.to_owned(), offset));
            }
        }
    }
    let mut ids = Vec::new();
    for t in TENANTS {
        let sink = create_sink(
            &server,
            &server.admin,
            json!({
                "name": "pubsub", "kind": "pubsub", "tenant": t, "start_at": "earliest",
                "config": {
                    "project": PROJECT, "topic": "audit", "emulator": true, "ordering": true,
                    "endpoint": format!("http://127.0.0.1:{}", emulator.port),
                },
                "batch": {"max_events": 7, "flush_interval_ms": 0},
                "retry": {"max_attempts": 20, "initial_backoff_ms": 5, "max_backoff_ms": 40},
            }),
        )
        .await;
        assert_eq!(sink["format"], "json", "{sink}");
        ids.push(sink["id"].as_str().unwrap().to_owned());
    }

    // Pull (and ack) until every event came back.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events pulled",
            seen.len(),
            expected.len()
        );
        // A waiting pull: the emulator answers when messages are there (bounded by the deadline).
        let pull_url = emulator.url("subscriptions/audit-sub:pull");
        let pull = rest(
            &http,
            reqwest::Method::POST,
            &pull_url,
            json!({"maxMessages": 1000, "returnImmediately": false}),
        );
        let Ok(pulled) = tokio::time::timeout_at(deadline.into(), pull).await else {
            continue; // the deadline assertion above reports it
        };
        let received = pulled["receivedMessages"].as_array().cloned().unwrap_or_default();
        if received.is_empty() {
            continue;
        }
        let mut acks = Vec::new();
        for r in &received {
            acks.push(r["ackId"].clone());
            let m = &r["message"];
            let a = &m["attributes"];
            let id = a["event_id"].as_str().unwrap().to_owned();
            let (tenant, offset) = expected
                .get(&id)
                .unwrap_or_else(|| panic!("unexpected event {m}"))
                .clone();
            assert_eq!(a["tenant_id"], tenant.as_str(), "{m}");
            assert_eq!(a["offset"], offset.to_string(), "{m}");
            assert_eq!(a["event_type"], "user.login", "{m}");
            assert_eq!(m["orderingKey"], tenant.as_str(), "{m}");
            let data = base64::engine::general_purpose::STANDARD
                .decode(m["data"].as_str().unwrap())
                .unwrap();
            let record: Value = serde_json::from_slice(&data).unwrap();
            assert!(record.to_string().contains(&id), "{record}");
            if seen.insert(id) {
                order.entry(tenant).or_default().push(offset);
            }
        }
        rest(
            &http,
            reqwest::Method::POST,
            &emulator.url("subscriptions/audit-sub:acknowledge"),
            json!({"ackIds": acks}),
        )
        .await;
    }
    for t in TENANTS {
        let offsets = &order[t];
        assert_eq!(offsets.len(), 30, "{t}");
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{t} out of order: {offsets:?}");
    }
    for id in &ids {
        wait_until("the cursor at the head", Duration::from_secs(10), || async {
            health(&server, id).await["lag"] == 0
        })
        .await;
    }
}

const KEY_PEM: &str = include_str!("fixtures/pubsub_test_sa_key.pem");
const PUBLIC_DER: &[u8] = include_bytes!("fixtures/pubsub_test_sa_pub.der");
const TOKEN: &str = "ya29.test-token";

#[derive(Default)]
struct Google {
    token_uri: String,
    token_requests: usize,
    bad_assertions: Vec<String>,
    publishes: usize,
    unauthorised: usize,
    messages: Vec<Value>,
}

type Shared = Arc<Mutex<Google>>;

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_default()
}

async fn token(State(g): State<Shared>, body: String) -> (StatusCode, Json<Value>) {
    let mut g = g.lock().unwrap();
    g.token_requests += 1;
    let form: BTreeMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":")))
        .collect();
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    let mut problems = Vec::new();
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        problems.push(format!("grant_type {:?}", form.get("grant_type")));
    }
    if parts.len() != 3 {
        problems.push("not a JWT".to_owned());
    } else {
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, PUBLIC_DER);
        let signed = format!("{}.{}", parts[0], parts[1]);
        if key.verify(signed.as_bytes(), &b64url(parts[2])).is_err() {
            problems.push("bad signature".to_owned());
        }
        let header: Value = serde_json::from_slice(&b64url(parts[0])).unwrap_or(Value::Null);
        let claims: Value = serde_json::from_slice(&b64url(parts[1])).unwrap_or(Value::Null);
        if header["alg"] != "RS256" {
            problems.push(format!("header {header}"));
        }
        if claims["iss"] != "relay@auditrelay-test.iam.gserviceaccount.com"
            || claims["scope"] != "https://www.googleapis.com/auth/pubsub"
            || claims["aud"] != g.token_uri.as_str()
            || claims["exp"].as_u64().unwrap_or(0) <= claims["iat"].as_u64().unwrap_or(u64::MAX)
        {
            problems.push(format!("claims {claims}"));
        }
    }
    if problems.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})),
        )
    } else {
        g.bad_assertions.extend(problems);
        (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"})))
    }
}

async fn publish(State(g): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, Json<Value>) {
    let mut g = g.lock().unwrap();
    g.publishes += 1;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        g.unauthorised += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials."}})),
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = (0..messages.len())
        .map(|i| format!("m{}", g.messages.len() + i))
        .collect();
    g.messages.extend(messages);
    (StatusCode::OK, Json(json!({"messageIds": ids})))
}

#[tokio::test]
async fn service_account_token_is_signed_fetched_once_and_reused() {
    let google: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    google.lock().unwrap().token_uri = format!("http://127.0.0.1:{port}/token");
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .fallback(publish)
        .with_state(google.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    server.create_tenant("acme").await;
    let accepted = ingest(&server, "acme", 12, 12).await;
    let key_file = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "client_email": "relay@auditrelay-test.iam.gserviceaccount.com",
        "private_key": KEY_PEM,
        "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    let sink = create_sink(
        &server,
        &server.admin,
        json!({
            "name": "pubsub", "kind": "pubsub", "tenant": "acme", "start_at": "earliest",
            "config": {"project": PROJECT, "topic": "audit", "endpoint": format!("http://127.0.0.1:{port}")},
            "secrets": {"service_account_json": key_file.to_string()},
            "batch": {"max_events": 3, "flush_interval_ms": 0},
            "retry": {"max_attempts": 20, "initial_backoff_ms": 5, "max_backoff_ms": 40},
        }),
    )
    .await;
    let id = sink["id"].as_str().unwrap().to_owned();
    assert!(!sink.to_string().contains("PRIVATE KEY"), "{sink}");
    wait_until("all 12 messages published", Duration::from_secs(30), || async {
        google.lock().unwrap().messages.len() >= 12
    })
    .await;
    wait_until("the cursor at the head", Duration::from_secs(10), || async {
        health(&server, &id).await["lag"] == 0
    })
    .await;
    let g = google.lock().unwrap();
    assert!(g.bad_assertions.is_empty(), "{:?}", g.bad_assertions);
    assert_eq!(g.token_requests, 1, "the token is cached across batches");
    assert_eq!(g.unauthorised, 0);
    assert!(g.publishes >= 4, "12 events in batches of 3: {} calls", g.publishes);
    let got: Vec<&str> = g
        .messages
        .iter()
        .map(|m| m["attributes"]["event_id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = accepted.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got, want);
    assert!(g.messages.iter().all(|m| m.get("orderingKey").is_none()));
}
