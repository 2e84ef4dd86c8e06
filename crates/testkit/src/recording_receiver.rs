//! A recording HTTP receiver on 127.0.0.1: keeps every request, answers 204, or the status a
//! `/status/<code>` path asks for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

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
