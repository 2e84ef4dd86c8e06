//! The loopback receiver every contender of the `peers` scenario forwards to: it answers
//! Splunk HEC (`POST /services/collector/event`) and Elasticsearch `_bulk` (`POST /_bulk`, for
//! rsyslog, whose Debian build has no HTTP output but `omelasticsearch`) and counts events by
//! the sequence number loggen writes into each message (`seq: 0000000042`), so duplicates and
//! losses are exact whoever sent them.
//!
//! Bodies are never parsed as JSON values: a scan splits them into top-level JSON objects (HEC
//! batches are envelopes back to back or one per line; `_bulk` alternates an action line and a
//! document line) and takes the first `seq: ` inside each object. An object without one (a
//! `_bulk` action line) is counted apart. The scan is the receiver's only work, so it stays
//! cheap next to the forwarder it measures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::receiver::OffsetSet;

/// What arrived so far.
#[derive(Debug, Default)]
pub struct Counts {
    /// loggen sequence numbers seen (distinct and duplicates).
    pub seqs: OffsetSet,
    /// Top-level objects without a sequence number (`_bulk` action lines, anything else).
    pub without_seq: u64,
    pub requests: u64,
    pub body_bytes: u64,
    /// Requests to a path or with a method we do not serve.
    pub unexpected: u64,
    pub first_unexpected: Option<String>,
    /// When the last event not seen before arrived.
    pub last_new: Option<Instant>,
}

/// The loggen sequence numbers in `body`, one per top-level JSON object that has one, and the
/// number of objects without one. Strings are tracked so that braces inside them do not count.
pub fn scan(body: &[u8]) -> (Vec<u64>, u64) {
    let (mut seqs, mut without) = (Vec::new(), 0u64);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    match first_seq(&body[start..=i]) {
                        Some(seq) => seqs.push(seq),
                        None => without += 1,
                    }
                }
            }
            _ => {}
        }
    }
    (seqs, without)
}

/// loggen writes `seq: ` then ten digits.
fn first_seq(object: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"seq: ";
    let at = object.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = object[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&object[at..at + digits]).ok()?.parse().ok()
}

/// A running receiver on its own thread; stopped on drop.
pub struct Counter {
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Counter {
    pub fn start() -> Result<Counter> {
        let counts = Arc::new(Mutex::new(Counts::default()));
        // Its own thread and runtime: the forwarders' batches are large, one core's fraction is
        // plenty, and it never waits behind the harness's own work.
        let shared = counts.clone();
        let server = crate::loopback::spawn("counter", move |listener, stop| serve(listener, shared, stop))?;
        Ok(Counter {
            addr: server.addr,
            counts,
            stop: server.stop,
            thread: server.thread,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, counts: Arc<Mutex<Counts>>, mut stop: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let counts = counts.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, counts.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn reply(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(req: Request<Incoming>, counts: Arc<Mutex<Counts>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    // rsyslog's omelasticsearch probes the server with GETs before and between bulks.
    if method == Method::GET || method == Method::HEAD {
        return Ok(reply(StatusCode::OK, "{}"));
    }
    let answer = match (method == Method::POST, path.as_str()) {
        (true, "/services/collector/event" | "/services/collector") => r#"{"text":"Success","code":0}"#,
        (true, p) if p.ends_with("/_bulk") => r#"{"took":0,"errors":false,"items":[]}"#,
        _ => {
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            c.unexpected += 1;
            c.first_unexpected.get_or_insert(format!("{method} {path}"));
            return Ok(reply(StatusCode::NOT_FOUND, "{}"));
        }
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "{}")),
    };
    // Scan outside the lock; the harness polls the counts meanwhile.
    let (seqs, without) = scan(&body);
    let now = Instant::now();
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    c.requests += 1;
    c.body_bytes += body.len() as u64;
    c.without_seq += without;
    let mut new = false;
    for s in seqs {
        new |= c.seqs.insert(s);
    }
    if new {
        c.last_new = Some(now);
    }
    Ok(reply(StatusCode::OK, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_hec_envelopes_back_to_back_and_per_line() {
        let body = br#"{"time":1,"event":{"msg":"seq: 0000000007, x","raw":"seq: 0000000007"}}{"event":"a } { \" seq: 0000000008"}
{"event":"seq: 0000000009, thread"}"#;
        assert_eq!(scan(body), (vec![7, 8, 9], 0));
    }

    #[test]
    fn bulk_action_lines_are_counted_apart() {
        let body = b"{\"index\":{\"_index\":\"audit\",\"_type\":\"events\"}}\n{\"event\":\"seq: 0000000001\"}\n{\"index\":{}}\n{\"event\":\"no number\"}\n";
        assert_eq!(scan(body), (vec![1], 3));
    }
}
