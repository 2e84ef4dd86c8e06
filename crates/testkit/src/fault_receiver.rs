//! A webhook receiver on loopback for delivery tests, with scripted faults: status codes (with
//! headers such as `Retry-After` or `Location`), hangs longer than the sink's timeout, dropped
//! connections, and slow response bodies. It speaks just enough HTTP/1.1 (content-length bodies,
//! keep-alive) and records every request and what it answered.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test harness: a panic is the failure report

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and headers (empty body for 2xx, a short text otherwise).
    Status(u16, Vec<(&'static str, String)>),
    /// Sleep this long, then answer 200 (past the sink's timeout the answer comes too late).
    Hang(Duration),
    /// Read the request, then close the connection without answering.
    Reset,
    /// Answer 503 headers at once, then dribble the body over this long.
    SlowBody(Duration),
}

impl Fault {
    pub fn status(code: u16) -> Fault {
        Fault::Status(code, Vec::new())
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status answered; 0 when the connection was dropped or the answer was late/slow.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().cloned().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Fault>,
    default: Option<Fault>,
    requests: Vec<Received>,
    /// Requests read so far, answered or not (a hung one is recorded only when answered).
    arrived: usize,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Receiver { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The next requests get these, in order; then the default.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().script.extend(faults);
    }

    /// What every request gets once the script is used up (`None` = 200).
    pub fn set_default(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().default = fault;
    }

    /// Every request, in order of arrival (a hung request is recorded when it is answered).
    pub fn requests(&self) -> Vec<Received> {
        let mut all = self.state.lock().unwrap().requests.clone();
        all.sort_by_key(|r| r.at);
        all
    }

    /// How many requests have been read, answered or not.
    pub fn arrived(&self) -> usize {
        self.state.lock().unwrap().arrived
    }

    /// Events of every request answered 2xx, in arrival order (duplicates included).
    pub fn accepted_events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .flat_map(|r| r.events())
            .collect()
    }

    /// Distinct accepted event ids.
    pub fn accepted_ids(&self) -> std::collections::HashSet<String> {
        self.accepted_events()
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until `n` distinct events were accepted; false on timeout.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted_ids().len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.accepted_ids().len() >= n
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        // Read one request: head, then content-length bytes of body.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("").to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);

        let fault = {
            let mut s = state.lock().unwrap();
            s.arrived += 1;
            s.script.pop_front().or_else(|| s.default.clone())
        };
        let at = Instant::now();
        let record = |answered: u16| {
            state.lock().unwrap().requests.push(Received {
                at,
                path: path.clone(),
                headers: headers.clone(),
                body: body.clone(),
                answered,
            });
        };
        match fault {
            None => {
                record(200);
                if write_response(&mut conn, 200, &[]).await.is_err() {
                    return;
                }
            }
            Some(Fault::Status(code, extra)) => {
                record(code);
                if write_response(&mut conn, code, &extra).await.is_err() {
                    return;
                }
            }
            Some(Fault::Hang(d)) => {
                tokio::time::sleep(d).await;
                // Counts as accepted only if the answer could still be written (the sender
                // may have given up and closed the connection).
                let ok = write_response(&mut conn, 200, &[]).await.is_ok() && conn.flush().await.is_ok();
                record(if ok { 200 } else { 0 });
                if !ok {
                    return;
                }
            }
            Some(Fault::Reset) => {
                record(0);
                // Close with unread data pending → the kernel sends RST.
                #[allow(deprecated)] // a zero linger sends RST at once; nothing blocks
                let _ = conn.set_linger(Some(Duration::ZERO));
                return;
            }
            Some(Fault::SlowBody(total)) => {
                record(0);
                let body_len = 20;
                let head = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-length: {body_len}\r\n\r\n");
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..body_len {
                    tokio::time::sleep(total / body_len).await;
                    if conn.write_all(b"x").await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

async fn write_response(conn: &mut TcpStream, code: u16, extra: &[(&'static str, String)]) -> std::io::Result<()> {
    let body = if (200..300).contains(&code) {
        String::new()
    } else {
        format!("receiver says {code}")
    };
    let mut head = format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    conn.write_all(head.as_bytes()).await
}
