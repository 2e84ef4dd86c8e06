//! The minimal durable appender ceiling: what storing each request durably costs on this disk,
//! with nothing else.
//!
//! Each request body is read whole and checked to be JSON — a JSON array is parsed element by
//! element (each one a complete JSON value, an object), a single object as one — so the
//! appender does at least the syntax work any real ingest path must do. The body (plus a
//! newline) is handed to one writer thread. The writer takes everything queued, writes it with
//! one `write`, calls `sync_data` (`fdatasync`) once, and only then answers every request of
//! that group `202 {"accepted":N}` (N = events in the body): group commit, each answer backed
//! by an fsync that covers it. A body that is not JSON gets 400; a failed write or sync, 500.
//!
//! The file lives in a fresh temporary directory inside the directory it is given (the bench
//! passes the parent of the server's data dir, so both write to the same filesystem).

use std::convert::Infallible;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::runs::Subject;

use super::{json_response, start as start_server, Ceiling};

/// Thread name prefix (CPU accounting): the HTTP runtime and the writer.
pub const THREADS: &str = "ceil-durable";

/// One body waiting for the writer, and where to say it is durable.
struct Job {
    bytes: Bytes,
    done: oneshot::Sender<Result<(), String>>,
}

/// Starts the appender with its file in a new temporary directory under `parent`.
pub fn start(parent: &Path) -> Result<Ceiling> {
    let dir = tempfile::Builder::new()
        .prefix("ceiling-durable-")
        .tempdir_in(parent)
        .with_context(|| format!("durable appender: temporary dir in {}", parent.display()))?;
    let path = dir.path().join("events.jsonl");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("durable appender: open {}", path.display()))?;
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let writer = std::thread::Builder::new()
        .name(THREADS.into())
        .spawn(move || write_loop(file, rx))
        .context("durable appender: spawn writer")?;
    let tx = Arc::new(tx);
    let handler = move |req: Request<Incoming>| handle(req, tx.clone());
    start_server(Subject::Durable, THREADS, handler, vec![writer], Some(dir))
}

/// The group-commit writer: runs until every sender is gone.
fn write_loop(mut file: File, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut group: Vec<Job> = Vec::with_capacity(1024);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        buf.clear();
        for job in &group {
            buf.extend_from_slice(&job.bytes);
            buf.push(b'\n');
        }
        let res = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for job in group.drain(..) {
            let _ = job.done.send(res.clone());
        }
    }
}

/// Events in a body: a JSON array of objects (each element parsed) or one object; `None` if
/// it is not JSON of that shape.
pub fn count_events(body: &[u8]) -> Option<usize> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let events: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
        events.iter().all(|e| e.get().starts_with('{')).then_some(events.len())
    } else {
        let event: &RawValue = serde_json::from_slice(body).ok()?;
        event.get().starts_with('{').then_some(1)
    }
}

async fn handle(
    req: Request<Incoming>,
    tx: Arc<mpsc::UnboundedSender<Job>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(json_response(StatusCode::BAD_REQUEST, r#"{"error":"body"}"#.into())),
    };
    let Some(n) = count_events(&bytes) else {
        return Ok(json_response(StatusCode::BAD_REQUEST, r#"{"error":"not JSON"}"#.into()));
    };
    let (done, durable) = oneshot::channel();
    if tx.send(Job { bytes, done }).is_err() {
        return Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"writer gone"}"#.into(),
        ));
    }
    match durable.await {
        Ok(Ok(())) => Ok(json_response(StatusCode::ACCEPTED, format!(r#"{{"accepted":{n}}}"#))),
        Ok(Err(e)) => Ok(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": e }).to_string(),
        )),
        Err(_) => Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"writer gone"}"#.into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_and_refuses_what_is_not_json() {
        assert_eq!(count_events(br#"{"a":1}"#), Some(1));
        assert_eq!(count_events(b" [ {\"a\":1} , {\"b\":{\"c\":[1,2]}} ]"), Some(2));
        assert_eq!(count_events(b"[]"), Some(0));
        assert_eq!(count_events(b"[1]"), None);
        assert_eq!(count_events(br#"[{"a":1},{"b":}]"#), None);
        assert_eq!(count_events(b"not json"), None);
        assert_eq!(count_events(b""), None);
        assert_eq!(count_events(b"\"s\""), None);
    }
}
