//! An Azure-shaped receiver on 127.0.0.1 for the sentinel sink's tests: a Microsoft Entra token
//! endpoint (`/{tenant}/oauth2/v2.0/token`), the Logs Ingestion API
//! (`/dataCollectionRules/{dcr}/streams/{stream}`) that accepts only tokens it issued and has not
//! revoked, and the Data Collector API (`/api/logs`) that checks the SharedKey signature itself.
//! Every request is recorded with its full path and query; scripted replies override the
//! defaults one request at a time.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
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

    pub fn is_token(&self) -> bool {
        self.uri.ends_with("/oauth2/v2.0/token")
    }

    pub fn is_ingestion(&self) -> bool {
        self.uri.starts_with("/dataCollectionRules/")
    }

    /// The request as text for a snapshot: request line, headers sorted by name (the port and the
    /// crate version replaced, as they vary between runs and releases), a blank line, the body.
    pub fn render(&self) -> String {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let value = v.to_str().unwrap().to_owned();
                let value = match k.as_str() {
                    "host" => value
                        .rsplit_once(':')
                        .map(|(h, _)| format!("{h}:<port>"))
                        .unwrap_or(value),
                    "user-agent" => value.replace(env!("CARGO_PKG_VERSION"), "<version>"),
                    _ => value,
                };
                (k.as_str().to_owned(), value)
            })
            .collect();
        headers.sort();
        let mut out = format!("{} {}\n", self.method, self.uri);
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
        out.push_str(self.body_str());
        out
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Default)]
struct AzureState {
    requests: Mutex<Vec<Recorded>>,
    token_replies: Mutex<VecDeque<Reply>>,
    ingest_replies: Mutex<VecDeque<Reply>>,
    collector_replies: Mutex<VecDeque<Reply>>,
    issued: AtomicUsize,
    valid_tokens: Mutex<HashSet<String>>,
    /// `expires_in` of issued tokens.
    expires_in: Mutex<Value>,
    /// When set, the ingestion endpoint refuses every token (e.g. a wrong audience).
    refuse_all_tokens: Mutex<bool>,
    /// The Data Collector's workspace id and key (base64), when it checks signatures.
    workspace: Mutex<Option<(String, String)>>,
}

pub struct AzureReceiver {
    pub addr: SocketAddr,
    state: Arc<AzureState>,
    task: tokio::task::JoinHandle<()>,
}

impl AzureReceiver {
    pub async fn start() -> AzureReceiver {
        let state = Arc::new(AzureState::default());
        *state.expires_in.lock().unwrap() = json!(3599);
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        AzureReceiver { addr, state, task }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_token).collect()
    }

    pub fn ingestion_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_ingestion).collect()
    }

    pub fn reply_token(&self, reply: Reply) {
        self.state.token_replies.lock().unwrap().push_back(reply);
    }

    pub fn reply_ingest(&self, reply: Reply) {
        self.state.ingest_replies.lock().unwrap().push_back(reply);
    }

    pub fn reply_collector(&self, reply: Reply) {
        self.state.collector_replies.lock().unwrap().push_back(reply);
    }

    pub fn set_expires_in(&self, value: Value) {
        *self.state.expires_in.lock().unwrap() = value;
    }

    /// Every token issued so far stops working (as after a key rollover).
    pub fn revoke_all(&self) {
        self.state.valid_tokens.lock().unwrap().clear();
    }

    pub fn refuse_all_tokens(&self, on: bool) {
        *self.state.refuse_all_tokens.lock().unwrap() = on;
    }

    pub fn check_shared_key(&self, workspace_id: &str, key_b64: &str) {
        *self.state.workspace.lock().unwrap() = Some((workspace_id.to_owned(), key_b64.to_owned()));
    }
}

impl Drop for AzureReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(r: Reply) -> Response {
    let mut headers = HeaderMap::new();
    for (k, v) in r.headers {
        headers.insert(HeaderName::from_static(k), HeaderValue::from_str(&v).unwrap());
    }
    (StatusCode::from_u16(r.status).unwrap(), headers, r.body).into_response()
}

async fn handle(State(state): State<Arc<AzureState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        uri,
        headers: parts.headers.clone(),
        body,
    };
    state.requests.lock().unwrap().push(recorded.clone());
    if recorded.is_token() {
        if let Some(r) = state.token_replies.lock().unwrap().pop_front() {
            return reply(r);
        }
        let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("tok-{n}");
        state.valid_tokens.lock().unwrap().insert(token.clone());
        let expires_in = state.expires_in.lock().unwrap().clone();
        let answer = json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token});
        return reply(Reply::new(200, answer.to_string()).header("content-type", "application/json"));
    }
    if recorded.is_ingestion() {
        if let Some(r) = state.ingest_replies.lock().unwrap().pop_front() {
            return reply(r);
        }
        let token = recorded
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_owned();
        let valid = state.valid_tokens.lock().unwrap().contains(&token);
        if !valid || *state.refuse_all_tokens.lock().unwrap() {
            // Echoes the token, as a careless proxy might: the sink must scrub it.
            let body = json!({"error": {"code": "InvalidAuthenticationToken", "message": format!("The access token is invalid: {token}")}});
            return reply(Reply::new(401, body.to_string()));
        }
        return reply(Reply::new(204, ""));
    }
    if recorded.uri.starts_with("/api/logs") {
        if let Some(r) = state.collector_replies.lock().unwrap().pop_front() {
            return reply(r);
        }
        if let Some((workspace, key)) = state.workspace.lock().unwrap().clone() {
            if recorded.headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some(expected_shared_key(&recorded, &workspace, &key).as_str())
            {
                let body = json!({"Error": "InvalidAuthorization", "Message": "An invalid scheme was used for the Authorization header"});
                return reply(Reply::new(403, body.to_string()));
            }
        }
        return reply(Reply::new(200, ""));
    }
    reply(Reply::new(404, "no such route"))
}

/// The Authorization header a Data Collector receiver expects, computed here from the request
/// as received (its own Content-Length, Content-Type and x-ms-date), independently of the sink.
pub fn expected_shared_key(req: &Recorded, workspace_id: &str, key_b64: &str) -> String {
    let string_to_sign = format!(
        "{}\n{}\n{}\nx-ms-date:{}\n/api/logs",
        req.method,
        req.header("content-length"),
        req.header("content-type"),
        req.header("x-ms-date")
    );
    let key = STANDARD.decode(key_b64).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    format!(
        "SharedKey {workspace_id}:{}",
        STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// A server that reads one request's headers, then resets the connection (RST, zero linger).
pub async fn resetting_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    (addr, task)
}

/// A port with nothing listening.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
