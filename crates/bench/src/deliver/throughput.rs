//! The delivery throughput scenarios (`deliver-100`, `deliver-1000`): closed-loop ingest while
//! a sink delivers to the loopback receiver, then the drain (see [`crate::deliver`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::{commit_groups, drain, finish, groups_between, Completeness, SinkHandle, SinkSettings};
use crate::events::EventSpec;
use crate::http::{Auth, Target};
use crate::load::{self, round1, round3, LoadConfig, LoadResult};
use crate::procfs::{proc_status_kib, CpuMeter};
use crate::receiver::{arrival_gaps, timeline, Receiver};
use crate::stats::{Samples, Summary};

/// Bucket width of the delivered-events timeline.
const TIMELINE_BUCKET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    pub sink: SinkSettings,
    pub connections: usize,
    pub events_per_request: usize,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
    pub events: Arc<EventSpec>,
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
        LoadConfig::timed(
            cfg.connections,
            cfg.events_per_request,
            Duration::ZERO,
            cfg.duration,
            cfg.server_pid,
            cfg.events.clone(),
        ),
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
