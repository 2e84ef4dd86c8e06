//! Ceilings: two servers inside the bench process, driven by the very same load generator and
//! request bodies as auditrelay, so the report can say how close auditrelay comes to what this
//! machine allows.
//!
//! - [`noop_http`]: a hyper HTTP/1.1 server that reads each request body whole and answers
//!   `202 {"status":"accepted"}` — the cost of HTTP on loopback and of the load generator itself.
//! - [`durable_appender`]: reads each body, checks it is JSON (every array element parsed),
//!   appends it to one file and answers `202 {"accepted":N}` only once an `fdatasync` covering
//!   it returned, with group commit (one writer thread takes everything queued: one `write`,
//!   one `sync_data`, then answers the whole group) — the cost of durability on this disk.
//!
//! Each runs on `127.0.0.1:0` on its own multi-threaded tokio runtime (as many workers as
//! CPUs, like the server's), whose threads are named with the ceiling's prefix so that their
//! CPU time can be read from /proc ([`crate::procfs::Probe::Threads`]).

pub mod durable_appender;
pub mod noop_http;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::http::Target;
use crate::procfs::Probe;
use crate::runs::Subject;

/// A ceiling server running on its own runtime; stopped on drop.
pub struct Ceiling {
    pub subject: Subject,
    pub thread_prefix: &'static str,
    pub target: Arc<Target>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Extra threads to join after the runtime is gone (the durable writer).
    extra: Vec<std::thread::JoinHandle<()>>,
    /// Kept alive with the server (the durable appender's temporary directory).
    _keep: Option<tempfile::TempDir>,
}

impl Ceiling {
    pub fn probe(&self) -> Probe {
        Probe::Threads(self.thread_prefix)
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for t in self.extra.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Starts a hyper HTTP/1.1 server on 127.0.0.1:0 calling `handler` for every request, on a
/// new multi-threaded runtime whose threads are named `prefix`.
fn start<H, F>(
    subject: Subject,
    prefix: &'static str,
    handler: H,
    extra: Vec<std::thread::JoinHandle<()>>,
    keep: Option<tempfile::TempDir>,
) -> Result<Ceiling>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let name = subject.label();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").with_context(|| format!("{name}: bind 127.0.0.1:0"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(prefix)
        .enable_all()
        .build()
        .with_context(|| format!("{name}: runtime"))?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(prefix.into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let _ = stream.set_nodelay(true);
                            let handler = handler.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(handler);
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        })
        .with_context(|| format!("{name}: spawn thread"))?;
    Ok(Ceiling {
        subject,
        thread_prefix: prefix,
        target: Arc::new(Target::parse(&format!("http://{addr}"))?),
        stop: Some(stop_tx),
        thread: Some(thread),
        extra,
        _keep: keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Auth, Conn};

    #[tokio::test]
    async fn both_ceilings_answer_202() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let noop = noop_http::start()?;
        let durable = durable_appender::start(dir.path())?;
        let auth = Auth::bearer("x")?;
        for c in [&noop, &durable] {
            let mut conn = Conn::connect(c.target.clone()).await?;
            let resp = conn
                .post_json("/v1/events", &auth, Bytes::from_static(br#"[{"a":1},{"b":[2]}]"#))
                .await?;
            assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", c.subject.label());
            let resp = conn
                .post_json("/v1/events", &auth, Bytes::from_static(br#"{"a":1}"#))
                .await?;
            assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", c.subject.label());
        }
        let mut conn = Conn::connect(durable.target.clone()).await?;
        let resp = conn
            .post_json("/v1/events", &auth, Bytes::from_static(br#"[{"a":1}"#))
            .await?;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        let resp = conn
            .post_json("/v1/events", &auth, Bytes::from_static(br#"[{"a":1},{"b":2}]"#))
            .await?;
        let v: serde_json::Value = resp.json()?;
        assert_eq!(v["accepted"], 2);
        // The file holds the three accepted bodies, one per line (synced before each 202).
        let mut lines = 0;
        for e in std::fs::read_dir(dir.path())?.flatten() {
            for f in std::fs::read_dir(e.path())?.flatten() {
                lines += std::fs::read_to_string(f.path())?.lines().count();
            }
        }
        assert_eq!(lines, 3);
        Ok(())
    }

    #[tokio::test]
    async fn the_load_generator_drives_the_ceilings() -> Result<()> {
        use crate::events::{EventSize, EventSpec};
        use crate::load::{run, LoadConfig};
        let dir = tempfile::tempdir()?;
        let spec = Arc::new(EventSpec::new(EventSize::Bytes(500), false));
        for c in [noop_http::start()?, durable_appender::start(dir.path())?] {
            let r = run(
                c.target.clone(),
                Auth::bearer("x")?,
                LoadConfig {
                    connections: 4,
                    batch: 10,
                    warmup: Duration::from_millis(50),
                    duration: Duration::from_millis(300),
                    probe: Some(c.probe()),
                    events: spec.clone(),
                    max_events: None,
                    require_accepted: c.subject == Subject::Durable,
                },
            )
            .await?;
            assert_eq!(r.error_count(), 0, "{}: {:?}", c.subject.label(), r.first_error);
            assert!(r.events > 0 && r.events % 10 == 0);
            assert!(r.server_cpu_secs.is_some());
            // A bounded load stops at its count, the last request carrying the rest.
            let r = run(
                c.target.clone(),
                Auth::bearer("x")?,
                LoadConfig {
                    connections: 3,
                    batch: 10,
                    warmup: Duration::ZERO,
                    duration: Duration::from_secs(60),
                    probe: None,
                    events: spec.clone(),
                    max_events: Some(95),
                    require_accepted: true,
                },
            )
            .await;
            match c.subject {
                Subject::Durable => {
                    let r = r?;
                    assert_eq!((r.total_events, r.error_count()), (95, 0));
                    assert!(r.window_secs < 30.0);
                }
                // The do-nothing server's 202 has no `accepted`: with it required, each counts
                // as a mismatch.
                _ => assert!(r?.accepted_mismatches > 0),
            }
        }
        Ok(())
    }
}
