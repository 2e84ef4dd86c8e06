//! Test harness: spawns the real `auditrelay` binary on an ephemeral port and talks HTTP to it.
//!
//! Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod pg;
pub mod private_db;
pub use auditrelay_testkit::fault_receiver as receiver;
pub use auditrelay_testkit::siem_receiver as siem;
pub use auditrelay_testkit::{peer_python, repo_root};

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The operator token every test server is started with.
pub const ADMIN_TOKEN: &str = "itest-operator-token-0123456789abcdef";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped, between `kill_9`/`sigterm` and `restart`) server process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT` (changes on restart: the port is ephemeral).
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: TempDir,
}

impl TestServer {
    /// Starts a server with default settings on a fresh data dir.
    pub fn spawn() -> TestServer {
        TestServer::spawn_with(&[], &[])
    }

    /// Starts a server with extra `serve` flags and environment variables on a fresh data dir.
    pub fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let tmp = tempfile::Builder::new()
            .prefix("auditrelay-itest-")
            .tempdir()
            .expect("creating a temporary directory");
        let mut server = TestServer {
            base: String::new(),
            admin: ADMIN_TOKEN.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("building the HTTP client"),
            child: None,
            data_dir: tmp.path().join("data"),
            log_path: tmp.path().join("server.log"),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            _tmp: tmp,
        };
        server.start();
        server
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// The server's stderr so far (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditrelay"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args);
        // Only our settings count: drop anything the developer's environment might carry.
        for (k, _) in std::env::vars() {
            if k.starts_with("AUDITRELAY_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AUDITRELAY_ADMIN_TOKEN", &self.admin)
            .env("AUDITRELAY_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().expect("spawning the auditrelay binary");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining stdout for the life of the process so it never blocks on a full pipe.
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Some(url) = line.trim().strip_prefix("auditrelay: listening on ") {
                            let _ = tx.send(url.to_owned());
                        }
                    }
                }
            }
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => {
                self.base = url;
                self.child = Some(child);
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the server did not print its address within {STARTUP_TIMEOUT:?} (exit: {status:?}); log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Sets (or replaces) an environment variable for the next `restart`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts the server again on the same data dir (after `kill_9` or `sigterm`).
    pub fn restart(&mut self) {
        self.start();
    }

    async fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let pid = self.pid();
        let out = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(out.success(), "kill {signal} {pid} failed: {out}");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("the server is not running");
            if let Some(status) = child.try_wait().expect("waiting for the server") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "the server did not exit within {EXIT_TIMEOUT:?} after {signal}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL: the process dies at once, mid-write if it was writing.
    pub async fn kill_9(&mut self) -> ExitStatus {
        self.signal_and_wait("-KILL").await
    }

    /// SIGTERM: the server should drain and exit 0.
    pub async fn sigterm(&mut self) -> ExitStatus {
        self.signal_and_wait("-TERM").await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path` with the operator token → (status, JSON body).
    pub async fn get_as_operator(&self, path: &str) -> (u16, Value) {
        send(self.http.get(self.url(path)).bearer_auth(&self.admin)).await
    }

    pub async fn create_tenant(&self, id: &str) {
        let (status, body) = send(
            self.http
                .post(self.url("/v1/tenants"))
                .bearer_auth(&self.admin)
                .json(&json!({ "id": id, "name": format!("Tenant {id}") })),
        )
        .await;
        assert_eq!(status, 201, "creating tenant {id}: {body}");
        assert_eq!(body["id"], id);
    }

    /// Creates a key and returns `(key id, secret)`.
    pub async fn create_key_full(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let (status, body) = send(
            self.http
                .post(self.url(&format!("/v1/tenants/{tenant}/keys")))
                .bearer_auth(&self.admin)
                .json(&json!({ "name": "itest", "scopes": scopes })),
        )
        .await;
        assert_eq!(status, 201, "creating a key for {tenant}: {body}");
        let id = body["id"].as_str().expect("key id").to_owned();
        let key = body["key"].as_str().expect("key secret").to_owned();
        (id, key)
    }

    /// Creates a key and returns its secret.
    pub async fn create_key(&self, tenant: &str, scopes: &[&str]) -> String {
        self.create_key_full(tenant, scopes).await.1
    }

    /// `POST /v1/events` with a raw body.
    pub async fn post_events(&self, token: &str, body: impl Into<reqwest::Body>, content_type: &str) -> (u16, Value) {
        self.post_events_to("/v1/events", token, body, content_type).await
    }

    /// `POST` to an ingest path such as `/v1/events?tenant=acme`.
    pub async fn post_events_to(
        &self,
        path: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> (u16, Value) {
        send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// `POST /v1/events` with a JSON value (one event or an array).
    pub async fn post_json(&self, token: &str, body: &Value) -> (u16, Value) {
        self.post_events(token, body.to_string(), "application/json").await
    }

    /// `GET /v1/events?{query}`.
    pub async fn poll(&self, token: &str, query: &str) -> (u16, Value) {
        send(
            self.http
                .get(self.url(&format!("/v1/events?{query}")))
                .bearer_auth(token),
        )
        .await
    }

    /// A tenant's whole log, read by the operator page by page.
    pub async fn read_log(&self, tenant: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, body) = self
                .poll(&self.admin, &format!("tenant={tenant}&after={after}&limit=1000"))
                .await;
            assert_eq!(status, 200, "reading {tenant}'s log: {body}");
            let events = body["events"].as_array().expect("events array").clone();
            if events.is_empty() {
                assert_eq!(body["next_cursor"], after, "an empty page keeps the cursor");
                return out;
            }
            after = body["next_cursor"].as_u64().expect("next_cursor");
            assert_eq!(
                events.last().and_then(|e| e["offset"].as_u64()),
                Some(after),
                "next_cursor is the last offset of the page"
            );
            out.extend(events);
        }
    }

    /// `GET /healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        match self
            .http
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r.status() == StatusCode::OK,
            Err(_) => false,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("---- server log (last {} lines) ----\n{}", tail.len(), tail.join("\n"));
        }
    }
}

/// Sends a request and returns the status and the JSON body. Panics when the body is not JSON:
/// every answer of the API, errors included, is JSON.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let (status, text) = send_text(req).await;
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Sends a request and returns the status and the body as text (`/metrics`, exports).
pub async fn send_text(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("sending the request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("reading the response body"))
}

/// Asserts a JSON error answer: status, `error.code`, a message, and an object `detail`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "expected {status} {code}, got {s}: {body}");
    assert_eq!(body["error"]["code"], code, "error code, body: {body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message, body: {body}"
    );
    assert!(body["error"]["detail"].is_object(), "error detail object, body: {body}");
}

/// The offsets of a page or log, as numbers.
pub fn offsets(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["offset"].as_u64().expect("offset")).collect()
}

/// The ids of a page or log.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

/// `(id, offset)` of each event in a 202 ingest answer.
pub fn accepted_ids(answer: &Value) -> Vec<(String, u64)> {
    answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id").to_owned(),
                e["offset"].as_u64().expect("offset"),
            )
        })
        .collect()
}
