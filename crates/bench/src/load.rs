//! Closed-loop ingest load: N keep-alive connections, each sending
//! `POST /v1/events` back to back for warm-up + duration.
//!
//! Throughput and latency count the requests that *completed* inside the
//! measurement window `[start + warmup, start + warmup + duration]`; errors
//! (any answer other than 202, transport failures) are counted over the
//! whole run, warm-up included, because every answer must be a durable 202.
//!
//! The same load drives auditrelay and the ceilings ([`crate::ceiling`]): the same bodies
//! ([`crate::events`]), connections and pacing. With a [`Probe`] it measures the target's CPU
//! over the window (the server's process, or a ceiling's threads) and, for a process, samples
//! its RSS every 200 ms. With `max_events` it stops after that many events (the backlog
//! scenario) and the window ends with the last answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::StatusCode;
use serde::Deserialize;

use crate::events::{self, EventSpec};
use crate::http::{Auth, Conn, Target};
use crate::procfs::{CpuMeter, Probe, ProbeMeter};
use crate::stats::{Samples, Summary};

/// A request that takes longer than this counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the server's RSS is sampled during a load.
pub const RSS_SAMPLE_PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub connections: usize,
    /// Events per request; 1 sends a single JSON object, more a JSON array.
    pub batch: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Whose CPU (and, for a process, RSS) to measure: the server's pid or a ceiling's
    /// threads.
    pub probe: Option<Probe>,
    /// The events to send.
    pub events: Arc<EventSpec>,
    /// Stop once this many events were sent (the last request may carry fewer than `batch`);
    /// the window then ends when the last answer arrived.
    pub max_events: Option<u64>,
    /// Whether a 202 must carry `accepted` (auditrelay, the durable appender); without it (the
    /// do-nothing ceiling) a 202 counts the events sent.
    pub require_accepted: bool,
}

impl LoadConfig {
    /// A closed-loop load of `duration` after `warmup` against a server whose pid is known.
    pub fn timed(
        connections: usize,
        batch: usize,
        warmup: Duration,
        duration: Duration,
        server_pid: Option<u32>,
        events: Arc<EventSpec>,
    ) -> Self {
        Self {
            connections,
            batch,
            warmup,
            duration,
            probe: server_pid.map(Probe::Process),
            events,
            max_events: None,
            require_accepted: true,
        }
    }
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
    /// Server CPU over the window, seconds.
    pub server_cpu_secs: Option<f64>,
    /// The highest RSS sampled every 200 ms over the run (warm-up included).
    pub server_max_rss_bytes: Option<u64>,
    /// This harness's CPU over the window, percent of one core (without an in-process
    /// ceiling's threads).
    pub client_cpu_percent: Option<f64>,
}

impl LoadResult {
    pub fn error_count(&self) -> u64 {
        self.status_errors.values().sum::<u64>() + self.transport_errors + self.accepted_mismatches
    }

    /// Server CPU microseconds per event acknowledged in the window.
    pub fn cpu_us_per_event(&self) -> Option<f64> {
        let cpu = self.server_cpu_secs?;
        (self.events > 0).then(|| cpu * 1e6 / self.events as f64)
    }

    /// Events acknowledged in the window per server CPU second.
    pub fn events_per_cpu_sec(&self) -> Option<f64> {
        let cpu = self.server_cpu_secs?;
        (cpu > 0.0).then(|| self.events as f64 / cpu)
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
            "server_cpu_s": self.server_cpu_secs.map(round3),
            "server_cpu_us_per_event": self.cpu_us_per_event().map(round3),
            "events_per_server_cpu_s": self.events_per_cpu_sec().map(round1),
            "server_max_rss_bytes": self.server_max_rss_bytes,
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

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    accepted: Option<u64>,
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

/// What the workers share.
struct Shared {
    target: Arc<Target>,
    auth: Auth,
    window: Window,
    events: Arc<EventSpec>,
    batch: usize,
    /// Events handed out in this run (for `max_events`).
    sent: AtomicU64,
    max_events: Option<u64>,
    require_accepted: bool,
}

/// Samples `probe`'s RSS every [`RSS_SAMPLE_PERIOD`] until `stop`; the highest value.
pub fn spawn_rss_sampler(probe: Probe, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Option<u64>> {
    tokio::spawn(async move {
        let mut max = probe.rss_bytes();
        let mut tick = tokio::time::interval(RSS_SAMPLE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Some(r) = probe.rss_bytes() {
                max = Some(max.map_or(r, |m: u64| m.max(r)));
            }
        }
        max
    })
}

pub async fn run(target: Arc<Target>, auth: Auth, cfg: LoadConfig) -> Result<LoadResult> {
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        conns.push(Conn::connect(target.clone()).await?);
    }
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss = cfg
        .probe
        .filter(|p| matches!(p, Probe::Process(_)))
        .map(|p| spawn_rss_sampler(p, rss_stop.clone()));
    let start = Instant::now();
    let shared = Arc::new(Shared {
        target: target.clone(),
        auth,
        window: Window {
            t0: start + cfg.warmup,
            t1: start + cfg.warmup + cfg.duration,
        },
        events: cfg.events.clone(),
        batch: cfg.batch,
        sent: AtomicU64::new(0),
        max_events: cfg.max_events,
        require_accepted: cfg.require_accepted,
    });
    let mut handles = Vec::with_capacity(cfg.connections);
    for conn in conns {
        handles.push(tokio::spawn(worker(conn, shared.clone())));
    }
    let mut joined = tokio::spawn(async move {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await);
        }
        out
    });

    // Measure CPU over the window only: from t0 to t1, or to the last answer when the workers
    // stop early (`max_events`).
    let t0 = shared.window.t0;
    let t1 = shared.window.t1;
    let mut finished = None;
    tokio::select! {
        biased;
        r = &mut joined => finished = Some(r),
        _ = tokio::time::sleep_until(t0.into()) => {}
    }
    let server_cpu = cfg.probe.map(ProbeMeter::start);
    let client_cpu = CpuMeter::start(std::process::id());
    if finished.is_none() {
        tokio::select! {
            biased;
            r = &mut joined => finished = Some(r),
            _ = tokio::time::sleep_until(t1.into()) => {}
        }
    }
    let window_end = Instant::now().min(t1);
    let server_used = server_cpu.and_then(|m| m.used());
    // The ceilings run inside this process: their threads' CPU is theirs, not the client's.
    let client_cpu_percent = client_cpu.percent().map(|p| match (cfg.probe, server_used) {
        (Some(Probe::Threads(_)), Some((cpu, wall))) if wall > 0.0 => (p - cpu / wall * 100.0).max(0.0),
        _ => p,
    });
    let results = match finished {
        Some(r) => r,
        None => joined.await,
    }
    .context("load workers")?;
    rss_stop.store(true, Ordering::Relaxed);
    let server_max_rss_bytes = match rss {
        Some(h) => h.await.ok().flatten(),
        None => None,
    };

    let mut total = WorkerStats::default();
    for w in results {
        let w = w.context("load worker panicked")?;
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
    let window_secs = if cfg.max_events.is_some() {
        window_end.saturating_duration_since(t0).as_secs_f64().max(1e-6)
    } else {
        cfg.duration.as_secs_f64()
    };
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
        server_cpu_percent: server_used.and_then(|(cpu, wall)| (wall > 0.0).then(|| cpu / wall * 100.0)),
        server_cpu_secs: server_used.map(|(cpu, _)| cpu),
        server_max_rss_bytes,
        client_cpu_percent,
    })
}

async fn worker(conn: Conn, sh: Arc<Shared>) -> WorkerStats {
    let mut st = WorkerStats {
        latency: Samples::with_capacity(16 * 1024),
        ..WorkerStats::default()
    };
    let window = &sh.window;
    let mut conn = Some(conn);
    while Instant::now() < window.t1 {
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = None;
            match Conn::connect(sh.target.clone()).await {
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
        let batch = match sh.max_events {
            None => sh.batch,
            Some(max) => {
                let before = sh.sent.fetch_add(sh.batch as u64, Ordering::Relaxed);
                if before >= max {
                    break;
                }
                usize::try_from((max - before).min(sh.batch as u64)).unwrap_or(sh.batch)
            }
        };
        let first = events::reserve(batch as u64);
        let body = sh.events.body(first, batch);
        let started = Instant::now();
        let res = tokio::time::timeout(REQUEST_TIMEOUT, c.post_json("/v1/events", &sh.auth, body)).await;
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
            Ok(Accepted { accepted: Some(a) }) => a,
            Ok(Accepted { accepted: None }) if !sh.require_accepted => batch as u64,
            Ok(Accepted { accepted: None }) => {
                st.accepted_mismatches += 1;
                st.note_error(|| format!("202 without `accepted`: {}", resp.body_snippet()));
                continue;
            }
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
