//! Closed-loop ingest load: N keep-alive connections, each sending
//! `POST /v1/events` back to back for warm-up + duration.
//!
//! Throughput and latency count the requests that *completed* inside the
//! measurement window `[start + warmup, start + warmup + duration]`; errors
//! (any answer other than 202, transport failures) are counted over the
//! whole run, warm-up included, because every answer must be a durable 202.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;

use crate::http::{Auth, Conn, Target};
use crate::procfs::CpuMeter;
use crate::stats::{Samples, Summary};

/// A request that takes longer than this counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub connections: usize,
    /// Events per request; 1 sends a single JSON object, more a JSON array.
    pub batch: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The server's pid, to measure its CPU use over the window.
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct LoadResult {
    pub connections: usize,
    pub batch: usize,
    /// Wall time of the measurement window, seconds.
    pub window_secs: f64,
    /// 202 answers completed in the window.
    pub requests: u64,
    /// Events acknowledged (`accepted`) by those answers.
    pub events: u64,
    pub events_per_sec: f64,
    pub requests_per_sec: f64,
    pub latency: Summary,
    /// Requests answered 202 over the whole run (warm-up included).
    pub total_ok_requests: u64,
    /// Events acknowledged over the whole run (warm-up included).
    pub total_events: u64,
    /// Non-202 answers by status, whole run.
    pub status_errors: BTreeMap<u16, u64>,
    /// Connect/send/receive failures and timeouts, whole run.
    pub transport_errors: u64,
    /// 202 answers whose `accepted` was not the number of events sent.
    pub accepted_mismatches: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// This harness's CPU over the window, percent of one core.
    pub client_cpu_percent: Option<f64>,
}

impl LoadResult {
    pub fn error_count(&self) -> u64 {
        self.status_errors.values().sum::<u64>() + self.transport_errors + self.accepted_mismatches
    }

    pub fn to_json(&self) -> serde_json::Value {
        let statuses: serde_json::Map<String, serde_json::Value> = self
            .status_errors
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        serde_json::json!({
            "connections": self.connections,
            "events_per_request": self.batch,
            "window_s": round3(self.window_secs),
            "requests": self.requests,
            "events": self.events,
            "events_per_s": round1(self.events_per_sec),
            "requests_per_s": round1(self.requests_per_sec),
            "latency": self.latency.to_json_ms(),
            "ok_requests_incl_warmup": self.total_ok_requests,
            "events_incl_warmup": self.total_events,
            "errors": self.error_count(),
            "non_202_by_status": statuses,
            "transport_errors": self.transport_errors,
            "accepted_mismatches": self.accepted_mismatches,
            "first_error": self.first_error,
            "server_cpu_pct": self.server_cpu_percent.map(round1),
            "client_cpu_pct": self.client_cpu_percent.map(round1),
        })
    }
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The benchmark event, with `metadata.n` set to `n`.
pub fn write_event(out: &mut String, kind: &str, n: u64) {
    let _ = write!(
        out,
        r#"{{"type":"{kind}","actor":{{"id":"usr_1","ip_address":"203.0.113.7"}},"action":"update","target":{{"type":"doc","id":"d1"}},"outcome":"success","severity":5,"metadata":{{"n":{n}}}}}"#
    );
}

/// A request body: one event object when `batch == 1`, else a JSON array of
/// `batch` events numbered from `first`.
pub fn body(first: u64, batch: usize) -> Bytes {
    let mut s = String::with_capacity(200 * batch + 2);
    if batch == 1 {
        write_event(&mut s, "bench.event", first);
    } else {
        s.push('[');
        for i in 0..batch as u64 {
            if i > 0 {
                s.push(',');
            }
            write_event(&mut s, "bench.event", first + i);
        }
        s.push(']');
    }
    Bytes::from(s)
}

#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

#[derive(Default)]
struct WorkerStats {
    latency: Samples,
    requests: u64,
    events: u64,
    total_ok: u64,
    total_events: u64,
    status_errors: BTreeMap<u16, u64>,
    transport_errors: u64,
    accepted_mismatches: u64,
    first_error: Option<String>,
}

impl WorkerStats {
    fn note_error(&mut self, msg: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(msg());
        }
    }
}

struct Window {
    t0: Instant,
    t1: Instant,
}

pub async fn run(target: Arc<Target>, auth: Auth, cfg: LoadConfig) -> Result<LoadResult> {
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        conns.push(Conn::connect(target.clone()).await?);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let window = Arc::new(Window {
        t0: start + cfg.warmup,
        t1: start + cfg.warmup + cfg.duration,
    });
    let mut handles = Vec::with_capacity(cfg.connections);
    for conn in conns {
        handles.push(tokio::spawn(worker(
            conn,
            target.clone(),
            auth.clone(),
            cfg.batch,
            window.clone(),
            counter.clone(),
        )));
    }

    // Measure CPU over the window only.
    tokio::time::sleep_until(window.t0.into()).await;
    let server_cpu = cfg.server_pid.map(CpuMeter::start);
    let client_cpu = CpuMeter::start(std::process::id());
    tokio::time::sleep_until(window.t1.into()).await;
    let server_cpu_percent = server_cpu.and_then(|m| m.percent());
    let client_cpu_percent = client_cpu.percent();

    let mut total = WorkerStats::default();
    for h in handles {
        let w = h.await.context("load worker panicked")?;
        total.latency.merge(w.latency);
        total.requests += w.requests;
        total.events += w.events;
        total.total_ok += w.total_ok;
        total.total_events += w.total_events;
        for (k, v) in w.status_errors {
            *total.status_errors.entry(k).or_default() += v;
        }
        total.transport_errors += w.transport_errors;
        total.accepted_mismatches += w.accepted_mismatches;
        if total.first_error.is_none() {
            total.first_error = w.first_error;
        }
    }
    let window_secs = cfg.duration.as_secs_f64();
    Ok(LoadResult {
        connections: cfg.connections,
        batch: cfg.batch,
        window_secs,
        requests: total.requests,
        events: total.events,
        events_per_sec: total.events as f64 / window_secs,
        requests_per_sec: total.requests as f64 / window_secs,
        latency: total.latency.summary(),
        total_ok_requests: total.total_ok,
        total_events: total.total_events,
        status_errors: total.status_errors,
        transport_errors: total.transport_errors,
        accepted_mismatches: total.accepted_mismatches,
        first_error: total.first_error,
        server_cpu_percent,
        client_cpu_percent,
    })
}

async fn worker(
    conn: Conn,
    target: Arc<Target>,
    auth: Auth,
    batch: usize,
    window: Arc<Window>,
    counter: Arc<AtomicU64>,
) -> WorkerStats {
    let mut st = WorkerStats {
        latency: Samples::with_capacity(16 * 1024),
        ..WorkerStats::default()
    };
    let mut conn = Some(conn);
    while Instant::now() < window.t1 {
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = None;
            match Conn::connect(target.clone()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    st.transport_errors += 1;
                    st.note_error(|| format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let first = counter.fetch_add(batch as u64, Ordering::Relaxed);
        let body = body(first, batch);
        let started = Instant::now();
        let res = tokio::time::timeout(REQUEST_TIMEOUT, c.post_json("/v1/events", &auth, body)).await;
        let done = Instant::now();
        let in_window = done >= window.t0 && done <= window.t1;
        let resp = match res {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                st.transport_errors += 1;
                st.note_error(|| format!("request: {e:#}"));
                conn = None;
                continue;
            }
            Err(_) => {
                st.transport_errors += 1;
                st.note_error(|| format!("request timed out after {REQUEST_TIMEOUT:?}"));
                conn = None;
                continue;
            }
        };
        if resp.status != StatusCode::ACCEPTED {
            *st.status_errors.entry(resp.status.as_u16()).or_default() += 1;
            st.note_error(|| format!("HTTP {}: {}", resp.status, resp.body_snippet()));
            continue;
        }
        st.total_ok += 1;
        let accepted = match resp.json::<Accepted>() {
            Ok(a) => a.accepted,
            Err(e) => {
                st.accepted_mismatches += 1;
                st.note_error(|| format!("{e:#}"));
                continue;
            }
        };
        st.total_events += accepted;
        if accepted != batch as u64 {
            st.accepted_mismatches += 1;
            st.note_error(|| format!("202 with accepted={accepted}, sent {batch}"));
        }
        if in_window {
            st.requests += 1;
            st.events += accepted;
            st.latency.record(done - started);
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_event_body_is_the_documented_event() -> Result<()> {
        let v: serde_json::Value = serde_json::from_slice(&body(7, 1))?;
        assert_eq!(
            v,
            serde_json::json!({
                "type": "bench.event",
                "actor": {"id": "usr_1", "ip_address": "203.0.113.7"},
                "action": "update",
                "target": {"type": "doc", "id": "d1"},
                "outcome": "success",
                "severity": 5,
                "metadata": {"n": 7}
            })
        );
        Ok(())
    }

    #[test]
    fn batch_body_is_an_array_with_consecutive_counters() -> Result<()> {
        let v: serde_json::Value = serde_json::from_slice(&body(100, 100))?;
        let arr = v.as_array().context("array")?;
        assert_eq!(arr.len(), 100);
        assert_eq!(arr[0]["metadata"]["n"], 100);
        assert_eq!(arr[99]["metadata"]["n"], 199);
        Ok(())
    }
}
