//! End-to-end delivery: ingest → sink → a loopback webhook receiver ([`crate::receiver`]).
//!
//! Every scenario uses its own tenant (so counts never mix), creates a `webhook` sink on it with
//! the operator token (`start_at: now`, `flush_interval_ms: 0`), waits until the sink's lane has
//! pinned its start cursor, ingests, then waits (up to `--drain-timeout`, 60 s by default) until
//! the receiver holds every event the tenant's log gained, and deletes the sink.
//!
//! - **Throughput** (`deliver-100`, `deliver-1000`: `batch.max_events` 100 / 1,000,
//!   `max_in_flight` = `--deliver-in-flight`): the closed-loop ingest load of [`crate::load`]
//!   (`--connections`, `--batch-size` events per request) for `--duration` seconds, no warm-up.
//!   The delivered rate is distinct events received divided by the time from the first receipt
//!   to the last receipt of a new event. Also: what was delivered while ingest ran, the lag
//!   (events) when ingest stopped, and how long the sink took to drain after that.
//! - **Latency** (`deliver-latency`: `max_events` 100, `max_in_flight` 1): one connection sends
//!   `--latency-rate` events/s for `--warmup` + `--duration` seconds, in ticks of 10 ms
//!   (`rate / 100` events per request, e.g. 10 events every 10 ms at 1,000/s; below 100/s one
//!   event per tick and a longer tick). Each event carries `metadata.sent_ns`, the wall-clock
//!   time (ns since the UNIX epoch) just before its request was written; the receiver subtracts
//!   it from the time the batch body was fully read. Ticks use
//!   `MissedTickBehavior::Burst`: a request that overruns its tick is followed at once by the
//!   missed ones, so the offered rate holds; `sent_ns` is the actual send time, so a send that
//!   runs late is reported (late ticks, worst lag behind schedule) rather than folded into the
//!   delivery latency. Only events sent after the warm-up are summarised; all are checked for
//!   completeness.
//!
//! Missing events (offsets of the tenant's log that never arrived) are failures; duplicates
//! (the same offset delivered twice: allowed by at-least-once, but worth knowing) are reported.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;

use crate::http::{Auth, Conn, Target};
use crate::load::{self, round1, round3, LoadConfig, LoadResult};
use crate::procfs::{proc_status_kib, CpuMeter};
use crate::receiver::{arrival_gaps, timeline, unix_nanos, Gaps, Receiver};
use crate::stats::{Samples, Summary};

/// How long to wait for a new sink's lane to pin its start cursor.
const LANE_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait, after the receiver has everything, for the committed cursor to catch up
/// (so the final health shows lag 0).
const CURSOR_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Receiver polling period while draining (local, no server calls).
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// The latency scenario's tick at 100 events/s and above.
const LATENCY_TICK: Duration = Duration::from_millis(10);
/// Bucket width of the delivered-events timeline.
const TIMELINE_BUCKET: Duration = Duration::from_millis(500);

/// The sink under test.
#[derive(Debug, Clone, Copy)]
pub struct SinkSettings {
    pub max_events: usize,
    pub max_in_flight: usize,
}

impl SinkSettings {
    fn body(&self, name: &str, tenant: &str, url: &str) -> Value {
        json!({
            "name": name,
            "kind": "webhook",
            "tenant": tenant,
            "config": {"url": url},
            "start_at": "now",
            "batch": {"max_events": self.max_events, "max_bytes": 8 * 1024 * 1024, "flush_interval_ms": 0},
            "max_in_flight": self.max_in_flight,
            "timeout_ms": 10_000,
        })
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// A sink created for one scenario; deleted with [`SinkHandle::delete`].
struct SinkHandle {
    id: String,
    tenant: String,
    conn: Conn,
    target: Arc<Target>,
    operator: Auth,
}

impl SinkHandle {
    async fn create(
        target: &Arc<Target>,
        operator: &Auth,
        tenant: &str,
        settings: SinkSettings,
        url: &str,
    ) -> Result<Self> {
        let mut conn = Conn::connect(target.clone()).await?;
        let body = settings.body(&format!("bench-{tenant}"), tenant, url);
        let resp = conn
            .post_json("/v1/sinks", operator, Bytes::from(body.to_string()))
            .await?;
        if resp.status != StatusCode::CREATED {
            bail!(
                "POST /v1/sinks answered {}: {} (a server started elsewhere needs --allow-private-networks to deliver to loopback)",
                resp.status,
                resp.body_snippet()
            );
        }
        let created: Created = resp.json()?;
        Ok(Self {
            id: created.id,
            tenant: tenant.to_string(),
            conn,
            target: target.clone(),
            operator: operator.clone(),
        })
    }

    async fn reconnect_if_closed(&mut self) -> Result<()> {
        if self.conn.is_closed() {
            self.conn = Conn::connect(self.target.clone()).await?;
        }
        Ok(())
    }

    async fn health(&mut self) -> Result<Value> {
        self.reconnect_if_closed().await?;
        let path = format!("/v1/sinks/{}/health", self.id);
        let resp = self.conn.get(&path, Some(&self.operator)).await?;
        if resp.status != StatusCode::OK {
            bail!("GET {path} answered {}: {}", resp.status, resp.body_snippet());
        }
        resp.json()
    }

    /// This tenant's `(cursor, head)` in a health answer.
    fn position(&self, health: &Value) -> Option<(Option<u64>, u64)> {
        health["tenants"]
            .as_array()?
            .iter()
            .find(|t| t["tenant"].as_str() == Some(self.tenant.as_str()))
            .and_then(|t| Some((t["cursor"].as_u64(), t["head"].as_u64()?)))
    }

    /// Waits until the lane has pinned its start cursor; the tenant's head then.
    async fn wait_started(&mut self) -> Result<u64> {
        let start = Instant::now();
        loop {
            let h = self.health().await?;
            match self.position(&h) {
                Some((Some(_), head)) => return Ok(head),
                Some((None, head)) if start.elapsed() > LANE_START_TIMEOUT => {
                    eprintln!(
                        "warning: sink {} has no cursor after {LANE_START_TIMEOUT:?}; going on",
                        self.id
                    );
                    return Ok(head);
                }
                None if start.elapsed() > LANE_START_TIMEOUT => {
                    bail!("sink {} health does not list tenant {}: {h}", self.id, self.tenant)
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn head(&mut self) -> Result<u64> {
        let h = self.health().await?;
        self.position(&h)
            .map(|(_, head)| head)
            .with_context(|| format!("sink {} health does not list tenant {}: {h}", self.id, self.tenant))
    }

    /// The health answer once its lag is 0 (or the last one after the timeout).
    async fn settled_health(&mut self) -> Result<Value> {
        let start = Instant::now();
        loop {
            let h = self.health().await?;
            if h["lag"].as_u64() == Some(0) || start.elapsed() > CURSOR_CATCH_UP_TIMEOUT {
                return Ok(h);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn delete(mut self) -> Result<()> {
        self.reconnect_if_closed().await?;
        let path = format!("/v1/sinks/{}", self.id);
        let resp = self
            .conn
            .send(Method::DELETE, &path, Some(&self.operator), None)
            .await?;
        if resp.status != StatusCode::NO_CONTENT {
            bail!("DELETE {path} answered {}: {}", resp.status, resp.body_snippet());
        }
        Ok(())
    }
}

/// The sum of every series of metric `name` in a Prometheus text exposition (`name value` or
/// `name{labels} value` lines), or `None` if there is none.
pub fn prom_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            match labelled.find('}') {
                Some(i) => &labelled[i + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            continue; // another metric sharing the prefix
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The server's group commits so far (`auditrelay_commit_group_events_count`); `None` if
/// `/metrics` could not be read, `Some(None)` if it has no such series (yet: the histogram
/// appears with the first group commit).
async fn commit_groups(target: &Arc<Target>) -> Option<Option<u64>> {
    let mut conn = Conn::connect(target.clone()).await.ok()?;
    let resp = conn.get("/metrics", None).await.ok()?;
    if resp.status != StatusCode::OK {
        return None;
    }
    let text = String::from_utf8_lossy(&resp.body);
    Some(prom_value(&text, "auditrelay_commit_group_events_count").map(|v| v as u64))
}

/// Group commits between two [`commit_groups`] readings (a missing series before = 0).
fn groups_between(before: Option<Option<u64>>, after: Option<Option<u64>>) -> Option<u64> {
    let (before, after) = (before?, after??);
    Some(after.saturating_sub(before.unwrap_or(0)))
}

/// Receiver-side figures common to both scenarios.
#[derive(Debug, Clone, Default)]
pub struct Completeness {
    /// The tenant's log range the sink owes: `(first, last)` offsets, inclusive.
    pub range: (u64, u64),
    pub expected: u64,
    /// Distinct offsets of the range received.
    pub delivered: u64,
    pub duplicates: u64,
    /// Distinct offsets received outside the range.
    pub unexpected: u64,
    /// The highest offset received for the tenant.
    pub max_offset_received: u64,
    pub gaps: Gaps,
    /// From the end of ingest until the receiver held every event; `None` = not within the
    /// drain timeout.
    pub drain_secs: Option<f64>,
    /// Webhook requests received and their body bytes.
    pub requests: u64,
    pub body_bytes: u64,
    /// Bad requests (wrong path, missing Standard Webhooks headers, unreadable body).
    pub receiver_errors: u64,
    pub receiver_first_error: Option<String>,
    pub scan_fallbacks: u64,
    /// `GET /v1/sinks/{id}/health` after the drain.
    pub health: Option<Value>,
    /// The sink could not be deleted (message).
    pub delete_error: Option<String>,
}

impl Completeness {
    pub fn missing(&self) -> u64 {
        self.gaps.missing
    }

    fn to_json(&self) -> Value {
        json!({
            "offsets": [self.range.0, self.range.1],
            "expected": self.expected,
            "delivered": self.delivered,
            "missing": self.missing(),
            "missing_runs": self.gaps.runs,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "max_offset_received": self.max_offset_received,
            "drain_s": self.drain_secs.map(round3),
            "webhook_requests": self.requests,
            "webhook_body_bytes": self.body_bytes,
            "mean_events_per_request": (self.requests > 0)
                .then(|| round1((self.delivered + self.duplicates) as f64 / self.requests as f64)),
            "receiver_errors": self.receiver_errors,
            "receiver_first_error": self.receiver_first_error,
            "scan_fallbacks": self.scan_fallbacks,
            "sink_health": self.health,
            "sink_delete_error": self.delete_error,
        })
    }

    /// Problems worth failing the run for.
    pub fn failures(&self, scenario: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing() > 0 {
            out.push(format!(
                "{scenario}: {} of {} events never reached the receiver (first missing runs {:?}){}",
                self.missing(),
                self.expected,
                self.gaps.runs,
                if self.drain_secs.is_none() {
                    " — not drained within the timeout"
                } else {
                    ""
                }
            ));
        }
        if self.unexpected > 0 {
            out.push(format!(
                "{scenario}: {} offsets received outside the tenant's range {:?}",
                self.unexpected, self.range
            ));
        }
        if self.receiver_errors > 0 {
            out.push(format!(
                "{scenario}: {} bad webhook requests (first: {})",
                self.receiver_errors,
                self.receiver_first_error.as_deref().unwrap_or("?")
            ));
        }
        if let Some(e) = &self.delete_error {
            out.push(format!("{scenario}: deleting the sink: {e}"));
        }
        out
    }
}

/// Waits until the receiver holds all of `lo..=hi` for `tenant`, or `timeout` passes from
/// `since`. Returns the drain time measured from `since` to the last new receipt.
async fn drain(receiver: &Receiver, tenant: &str, lo: u64, hi: u64, since: Instant, timeout: Duration) -> Option<f64> {
    let expected = hi.saturating_sub(lo) + u64::from(hi >= lo);
    loop {
        {
            let books = receiver.books();
            if books.count_in(tenant, lo, hi) >= expected {
                let last = books.last_new.unwrap_or(since);
                return Some(last.saturating_duration_since(since).as_secs_f64());
            }
        }
        if since.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn completeness(receiver: &Receiver, tenant: &str, lo: u64, hi: u64, drain_secs: Option<f64>) -> Completeness {
    let books = receiver.books();
    let expected = hi.saturating_sub(lo) + u64::from(hi >= lo);
    let (delivered, duplicates, distinct, max, gaps) = match books.offsets(tenant) {
        Some(set) => (
            set.count_in(lo, hi),
            set.duplicates(),
            set.distinct(),
            set.max(),
            set.gaps(lo, hi),
        ),
        None => (
            0,
            0,
            0,
            0,
            Gaps {
                missing: expected,
                runs: if expected > 0 { vec![(lo, hi)] } else { vec![] },
            },
        ),
    };
    let other_tenants: u64 = books
        .tenants
        .iter()
        .filter(|(t, _)| t.as_str() != tenant)
        .map(|(_, s)| s.distinct())
        .sum();
    Completeness {
        range: (lo, hi),
        expected,
        delivered,
        duplicates,
        unexpected: distinct - delivered + other_tenants,
        max_offset_received: max,
        gaps,
        drain_secs,
        requests: books.requests,
        body_bytes: books.body_bytes,
        receiver_errors: books.bad_requests,
        receiver_first_error: books.first_error.clone(),
        scan_fallbacks: books.scan_fallbacks,
        health: None,
        delete_error: None,
    }
}

/// Final health, deletion, and the receiver's verdict.
async fn finish(mut sink: SinkHandle, receiver: &Receiver, lo: u64, hi: u64, drain_secs: Option<f64>) -> Completeness {
    let health = match sink.settled_health().await {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("warning: sink health: {e:#}");
            None
        }
    };
    let tenant = sink.tenant.clone();
    let delete_error = sink.delete().await.err().map(|e| format!("{e:#}"));
    let mut c = completeness(receiver, &tenant, lo, hi, drain_secs);
    c.health = health;
    c.delete_error = delete_error;
    c
}

// ---------------------------------------------------------------------------------------------
// Throughput.

#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    pub sink: SinkSettings,
    pub connections: usize,
    pub events_per_request: usize,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ThroughputResult {
    pub tenant: String,
    pub sink: SinkSettings,
    pub ingest: LoadResult,
    pub check: Completeness,
    /// Distinct events / (last new receipt − first receipt).
    pub delivered_per_sec: Option<f64>,
    pub delivery_window_secs: Option<f64>,
    /// Distinct events received by the time ingest stopped, and their rate over the ingest time.
    pub delivered_during_ingest: u64,
    /// Events the log had but the receiver did not, when ingest stopped.
    pub lag_at_ingest_end: u64,
    /// Server CPU over ingest + drain, percent of one core.
    pub server_cpu_total_percent: Option<f64>,
    /// The server's VmHWM after the scenario.
    pub server_peak_rss_bytes: Option<u64>,
    /// New events received per [`TIMELINE_BUCKET`] from the start of ingest.
    pub timeline: Vec<u64>,
    /// Webhook requests received while ingest ran, and the server's group commits (appends'
    /// fsyncs) in that time, from `/metrics`: a sink whose progress is tied to the writer shows
    /// about one batch per group.
    pub requests_during_ingest: u64,
    pub commit_groups_during_ingest: Option<u64>,
    /// Time between consecutive webhook requests while ingest ran, and after.
    pub gaps_during_ingest: Summary,
    pub gaps_after_ingest: Summary,
}

impl ThroughputResult {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": self.tenant,
            "sink_max_events": self.sink.max_events,
            "sink_max_in_flight": self.sink.max_in_flight,
            "ingest_events_per_s": round1(self.ingest.events_per_sec),
            "delivered_events_per_s": self.delivered_per_sec.map(round1),
            "delivery_window_s": self.delivery_window_secs.map(round3),
            "delivered_during_ingest": self.delivered_during_ingest,
            "delivered_during_ingest_per_s": round1(self.delivered_during_ingest as f64 / self.ingest.window_secs),
            "lag_at_ingest_end": self.lag_at_ingest_end,
            "server_cpu_pct_ingest": self.ingest.server_cpu_percent.map(round1),
            "server_cpu_pct_ingest_and_drain": self.server_cpu_total_percent.map(round1),
            "server_peak_rss_bytes": self.server_peak_rss_bytes,
            "timeline_bucket_ms": TIMELINE_BUCKET.as_millis() as u64,
            "delivered_timeline": self.timeline,
            "webhook_requests_during_ingest": self.requests_during_ingest,
            "server_commit_groups_during_ingest": self.commit_groups_during_ingest,
            "webhook_gap_during_ingest": self.gaps_during_ingest.to_json_ms(),
            "webhook_gap_after_ingest": self.gaps_after_ingest.to_json_ms(),
            "delivery": self.check.to_json(),
            "ingest": self.ingest.to_json(),
        })
    }
}

pub async fn run_throughput(
    target: Arc<Target>,
    operator: &Auth,
    key: Auth,
    tenant: &str,
    cfg: ThroughputConfig,
) -> Result<ThroughputResult> {
    let receiver = Receiver::start(false)?;
    let mut sink = SinkHandle::create(&target, operator, tenant, cfg.sink, &receiver.url()).await?;
    let h0 = sink.wait_started().await?;

    let groups_before = commit_groups(&target).await;
    let cpu = cfg.server_pid.map(CpuMeter::start);
    let ingest_start = Instant::now();
    let ingest = load::run(
        target.clone(),
        key,
        LoadConfig {
            connections: cfg.connections,
            batch: cfg.events_per_request,
            warmup: Duration::ZERO,
            duration: cfg.duration,
            server_pid: cfg.server_pid,
        },
    )
    .await
    .context("ingest load")?;
    let ingest_end = Instant::now();
    let delivered_during_ingest = receiver.books().offsets(tenant).map_or(0, |s| s.distinct());
    let groups_after = commit_groups(&target).await;
    let commit_groups_during_ingest = groups_between(groups_before, groups_after);
    let h1 = sink.head().await?;
    let lag_at_ingest_end = h1.saturating_sub(h0).saturating_sub(delivered_during_ingest);
    if h1.saturating_sub(h0) != ingest.total_events {
        eprintln!(
            "note: the log gained {} events, the 202 answers acknowledged {}",
            h1.saturating_sub(h0),
            ingest.total_events
        );
    }

    let drained = drain(&receiver, tenant, h0 + 1, h1, ingest_end, cfg.drain_timeout).await;
    let server_cpu_total_percent = cpu.and_then(|m| m.percent());
    let server_peak_rss_bytes = cfg
        .server_pid
        .and_then(|p| proc_status_kib(p, "VmHWM:"))
        .map(|k| k * 1024);
    let (window, distinct, timeline, requests_during_ingest, gaps_during_ingest, gaps_after_ingest) = {
        let books = receiver.books();
        let window = match (books.first_receipt, books.last_new) {
            (Some(a), Some(b)) if b > a => Some((b - a).as_secs_f64()),
            _ => None,
        };
        let gaps = |from, to| {
            let mut s = Samples::default();
            for g in arrival_gaps(&books.arrivals, from, to) {
                s.record(g);
            }
            s.summary()
        };
        let far = Instant::now() + Duration::from_secs(3600);
        (
            window,
            books.count_in(tenant, h0 + 1, h1),
            timeline(&books.arrivals, ingest_start, TIMELINE_BUCKET),
            books
                .arrivals
                .iter()
                .filter(|a| a.0 >= ingest_start && a.0 < ingest_end)
                .count() as u64,
            gaps(ingest_start, ingest_end),
            gaps(ingest_end, far),
        )
    };
    let check = finish(sink, &receiver, h0 + 1, h1, drained).await;
    Ok(ThroughputResult {
        tenant: tenant.to_string(),
        sink: cfg.sink,
        ingest,
        check,
        delivered_per_sec: window.map(|w| distinct as f64 / w),
        delivery_window_secs: window,
        delivered_during_ingest,
        lag_at_ingest_end,
        server_cpu_total_percent,
        server_peak_rss_bytes,
        timeline,
        requests_during_ingest,
        commit_groups_during_ingest,
        gaps_during_ingest,
        gaps_after_ingest,
    })
}

// ---------------------------------------------------------------------------------------------
// Latency.

#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// Target events per second.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
}

/// Events per request and the tick for `rate` events/s (see the module docs).
pub fn pacing(rate: f64) -> (usize, Duration) {
    let per_tick = (rate * LATENCY_TICK.as_secs_f64()).round().max(1.0);
    (per_tick as usize, Duration::from_secs_f64(per_tick / rate))
}

#[derive(Debug, Clone)]
pub struct LatencyResult {
    pub tenant: String,
    pub rate: f64,
    pub events_per_request: usize,
    pub tick: Duration,
    /// Events acknowledged (202), warm-up included.
    pub sent: u64,
    /// Events acknowledged per second over the measured period.
    pub sent_per_sec: f64,
    /// Ingest → receipt, events sent after the warm-up, first receipt of each.
    pub latency: Summary,
    /// POST → 202 of the measured period's requests.
    pub post_latency: Summary,
    /// Measured-period ticks whose request went out more than one tick behind schedule, and
    /// the worst lag behind schedule (measured period).
    pub late_ticks: u64,
    pub max_behind_schedule: Duration,
    /// The same during the warm-up.
    pub late_ticks_warmup: u64,
    pub max_behind_schedule_warmup: Duration,
    pub ingest_errors: u64,
    pub first_ingest_error: Option<String>,
    pub without_sent_ns: u64,
    pub clock_anomalies: u64,
    pub server_cpu_percent: Option<f64>,
    pub check: Completeness,
}

impl LatencyResult {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": self.tenant,
            "sink_max_events": 100,
            "sink_max_in_flight": 1,
            "target_events_per_s": self.rate,
            "events_per_request": self.events_per_request,
            "tick_ms": round3(self.tick.as_secs_f64() * 1000.0),
            "missed_tick_behavior": "burst",
            "sent_events": self.sent,
            "sent_events_per_s": round1(self.sent_per_sec),
            "latency": self.latency.to_json_ms(),
            "post_latency": self.post_latency.to_json_ms(),
            "late_ticks": self.late_ticks,
            "max_behind_schedule_ms": round3(self.max_behind_schedule.as_secs_f64() * 1000.0),
            "late_ticks_warmup": self.late_ticks_warmup,
            "max_behind_schedule_warmup_ms": round3(self.max_behind_schedule_warmup.as_secs_f64() * 1000.0),
            "ingest_errors": self.ingest_errors,
            "first_ingest_error": self.first_ingest_error,
            "events_without_sent_ns": self.without_sent_ns,
            "clock_anomalies": self.clock_anomalies,
            "server_cpu_pct": self.server_cpu_percent.map(round1),
            "delivery": self.check.to_json(),
        })
    }
}

/// A JSON array of `k` events numbered from `first`, each with `metadata.sent_ns`.
pub fn latency_body(first: u64, k: usize, sent_ns: u64) -> Bytes {
    let mut s = String::with_capacity(240 * k + 2);
    s.push('[');
    for i in 0..k as u64 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"type":"bench.latency","actor":{{"id":"usr_1"}},"action":"update","target":{{"type":"doc","id":"d1"}},"outcome":"success","metadata":{{"n":{},"sent_ns":{sent_ns}}}}}"#,
            first + i
        ));
    }
    s.push(']');
    Bytes::from(s)
}

#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

pub async fn run_latency(
    target: Arc<Target>,
    operator: &Auth,
    key: Auth,
    tenant: &str,
    cfg: LatencyConfig,
) -> Result<LatencyResult> {
    let receiver = Receiver::start(true)?;
    let settings = SinkSettings {
        max_events: 100,
        max_in_flight: 1,
    };
    let mut sink = SinkHandle::create(&target, operator, tenant, settings, &receiver.url()).await?;
    let h0 = sink.wait_started().await?;

    let (k, tick) = pacing(cfg.rate);
    let mut conn = Conn::connect(target.clone()).await?;
    let mut post = Samples::with_capacity(1024);
    let (mut sent, mut sent_measured, mut n) = (0u64, 0u64, 0u64);
    // [warm-up, measured]
    let mut late_ticks = [0u64; 2];
    let mut max_behind = [Duration::ZERO; 2];
    let (mut errors, mut first_error) = (0u64, None::<String>);
    let mut note = |errors: &mut u64, e: String| {
        *errors += 1;
        if first_error.is_none() {
            first_error = Some(e);
        }
    };

    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let measure_from_ns = unix_nanos() + u64::try_from(cfg.warmup.as_nanos()).unwrap_or(u64::MAX);
    let mut cpu = None;
    let mut interval = tokio::time::interval_at(start.into(), tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        let scheduled: Instant = interval.tick().await.into();
        if scheduled >= end {
            break;
        }
        let now = Instant::now();
        if cpu.is_none() && now >= measure_from {
            cpu = cfg.server_pid.map(CpuMeter::start);
        }
        let behind = now.saturating_duration_since(scheduled);
        let phase = usize::from(scheduled >= measure_from);
        max_behind[phase] = max_behind[phase].max(behind);
        if behind > tick {
            late_ticks[phase] += 1;
        }
        if conn.is_closed() {
            match Conn::connect(target.clone()).await {
                Ok(c) => conn = c,
                Err(e) => {
                    note(&mut errors, format!("connect: {e:#}"));
                    continue;
                }
            }
        }
        let body = latency_body(n, k, unix_nanos());
        n += k as u64;
        let t = Instant::now();
        match conn.post_json("/v1/events", &key, body).await {
            Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                match resp.json::<Accepted>() {
                    Ok(a) if a.accepted == k as u64 => {}
                    Ok(a) => note(&mut errors, format!("202 with accepted={}, sent {k}", a.accepted)),
                    Err(e) => note(&mut errors, format!("{e:#}")),
                }
                sent += k as u64;
                if t >= measure_from {
                    sent_measured += k as u64;
                    post.record(t.elapsed());
                }
            }
            Ok(resp) => note(&mut errors, format!("HTTP {}: {}", resp.status, resp.body_snippet())),
            Err(e) => note(&mut errors, format!("request: {e:#}")),
        }
    }
    let ingest_end = Instant::now();
    let measured_secs = ingest_end.saturating_duration_since(measure_from).as_secs_f64();
    let h1 = sink.head().await?;
    let drained = drain(&receiver, tenant, h0 + 1, h1, ingest_end, cfg.drain_timeout).await;
    let server_cpu_percent = cpu.and_then(|m| m.percent());

    let (latency, without_sent_ns, clock_anomalies) = {
        let books = receiver.books();
        let mut s = Samples::with_capacity(books.latency.len());
        for sample in books
            .latency
            .iter()
            .filter(|l| l.sent_ns >= measure_from_ns && (h0 + 1..=h1).contains(&l.offset))
        {
            s.record(Duration::from_micros(sample.micros));
        }
        (s.summary(), books.without_sent_ns, books.clock_anomalies)
    };
    let check = finish(sink, &receiver, h0 + 1, h1, drained).await;
    Ok(LatencyResult {
        tenant: tenant.to_string(),
        rate: cfg.rate,
        events_per_request: k,
        tick,
        sent,
        sent_per_sec: if measured_secs > 0.0 {
            sent_measured as f64 / measured_secs
        } else {
            0.0
        },
        latency,
        post_latency: post.summary(),
        late_ticks: late_ticks[1],
        max_behind_schedule: max_behind[1],
        late_ticks_warmup: late_ticks[0],
        max_behind_schedule_warmup: max_behind[0],
        ingest_errors: errors,
        first_ingest_error: first_error,
        without_sent_ns,
        clock_anomalies,
        server_cpu_percent,
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_uses_ten_ms_ticks_down_to_one_event() {
        assert_eq!(pacing(1000.0), (10, Duration::from_millis(10)));
        assert_eq!(pacing(100_000.0), (1000, Duration::from_millis(10)));
        assert_eq!(pacing(100.0), (1, Duration::from_millis(10)));
        assert_eq!(pacing(50.0), (1, Duration::from_millis(20)));
        let (k, t) = pacing(1234.0);
        assert_eq!(k, 12);
        assert!((k as f64 / t.as_secs_f64() - 1234.0).abs() < 0.01);
    }

    #[test]
    fn latency_body_carries_sent_ns_on_every_event() -> Result<()> {
        let v: Value = serde_json::from_slice(&latency_body(5, 3, 1_700_000_000_123_456_789))?;
        let arr = v.as_array().context("array")?;
        assert_eq!(arr.len(), 3);
        for (i, e) in arr.iter().enumerate() {
            assert_eq!(e["metadata"]["n"], 5 + i as u64);
            assert_eq!(e["metadata"]["sent_ns"], 1_700_000_000_123_456_789u64);
            assert_eq!(e["type"], "bench.latency");
        }
        Ok(())
    }

    #[test]
    fn sink_body_is_a_webhook_with_start_now_and_no_flush_wait() {
        let b = SinkSettings {
            max_events: 1000,
            max_in_flight: 4,
        }
        .body("n", "t", "http://127.0.0.1:1/hook");
        assert_eq!(b["kind"], "webhook");
        assert_eq!(b["start_at"], "now");
        assert_eq!(b["batch"]["max_events"], 1000);
        assert_eq!(b["batch"]["flush_interval_ms"], 0);
        assert_eq!(b["max_in_flight"], 4);
        assert_eq!(b["config"]["url"], "http://127.0.0.1:1/hook");
    }

    #[test]
    fn reads_prometheus_values() {
        let text = "# TYPE auditrelay_commit_group_events summary\n\
                    auditrelay_commit_group_events{quantile=\"0.5\"} 3300\n\
                    auditrelay_commit_group_events_sum 782100\n\
                    auditrelay_commit_group_events_count 238\n\
                    auditrelay_sink_delivered_batches_total{sink=\"a\"} 10\n\
                    auditrelay_sink_delivered_batches_total{sink=\"b\"} 5\n";
        assert_eq!(prom_value(text, "auditrelay_commit_group_events_count"), Some(238.0));
        assert_eq!(prom_value(text, "auditrelay_commit_group_events_sum"), Some(782100.0));
        assert_eq!(prom_value(text, "auditrelay_sink_delivered_batches_total"), Some(15.0));
        // A prefix of another metric's name is not that metric.
        assert_eq!(prom_value(text, "auditrelay_commit_group"), None);
        assert_eq!(prom_value(text, "missing"), None);
        assert_eq!(groups_between(Some(Some(10)), Some(Some(25))), Some(15));
        assert_eq!(groups_between(Some(None), Some(Some(25))), Some(25));
        assert_eq!(groups_between(None, Some(Some(25))), None);
        assert_eq!(groups_between(Some(Some(1)), Some(None)), None);
    }

    #[test]
    fn completeness_flags_missing_and_unexpected() {
        let c = Completeness {
            range: (1, 10),
            expected: 10,
            delivered: 8,
            unexpected: 1,
            gaps: Gaps {
                missing: 2,
                runs: vec![(4, 5)],
            },
            drain_secs: None,
            ..Completeness::default()
        };
        let f = c.failures("deliver-100");
        assert_eq!(f.len(), 2);
        assert!(f[0].contains("2 of 10 events") && f[0].contains("not drained"));
        assert!(Completeness::default().failures("x").is_empty());
    }
}
