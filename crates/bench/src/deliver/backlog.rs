//! The backlog scenario (`backlog`): a webhook sink whose receiver is unreachable for a while.
//!
//! The sink (batches of 1,000 events, `--deliver-in-flight` in flight) is created on its own
//! tenant, its lane waits until it pinned its start cursor, then it is **paused** through the
//! API (`POST /v1/sinks/{id}/pause`: the server's own way of holding deliveries back; a receiver
//! answering 503 would instead put the sink into back-off and retries, whose timing would
//! dominate the drain). `--backlog-events` events are then ingested at full speed
//! (`--connections` × `--batch-size`) while the server's RSS is sampled every 200 ms; the
//! figures are the ingest rate and the highest RSS. Then the sink is **resumed** and the drain
//! is timed from the resume until the receiver holds every event of the tenant's log range;
//! RSS is sampled through the drain as well. Missing events are failures, as in the other
//! delivery scenarios.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::{drain, finish, Completeness, SinkHandle, SinkSettings};
use crate::events::EventSpec;
use crate::http::{Auth, Target};
use crate::load::{self, round1, round3, spawn_rss_sampler, LoadConfig, LoadResult};
use crate::procfs::{CpuMeter, Probe};

#[derive(Debug, Clone)]
pub struct BacklogConfig {
    pub events: u64,
    pub sink: SinkSettings,
    pub connections: usize,
    pub events_per_request: usize,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
    pub spec: Arc<EventSpec>,
}

#[derive(Debug, Clone)]
pub struct BacklogResult {
    pub tenant: String,
    pub sink: SinkSettings,
    pub target_events: u64,
    pub ingest: LoadResult,
    pub rss_before_bytes: Option<u64>,
    /// The highest RSS sampled while the backlog was ingested, and while it drained.
    pub max_rss_ingest_bytes: Option<u64>,
    pub max_rss_drain_bytes: Option<u64>,
    /// Events the receiver got while the sink was paused (should be 0).
    pub delivered_while_paused: u64,
    /// Resume → last new event received; `None` = not within the timeout.
    pub drain_secs: Option<f64>,
    pub drain_per_sec: Option<f64>,
    pub server_cpu_drain_percent: Option<f64>,
    pub check: Completeness,
}

impl BacklogResult {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": self.tenant,
            "sink_max_events": self.sink.max_events,
            "sink_max_in_flight": self.sink.max_in_flight,
            "backlog_events": self.target_events,
            "ingest_events_per_s": round1(self.ingest.events_per_sec),
            "ingest_s": round3(self.ingest.window_secs),
            "server_rss_before_bytes": self.rss_before_bytes,
            "server_max_rss_ingest_bytes": self.max_rss_ingest_bytes,
            "server_max_rss_drain_bytes": self.max_rss_drain_bytes,
            "delivered_while_paused": self.delivered_while_paused,
            "drain_s": self.drain_secs.map(round3),
            "drain_events_per_s": self.drain_per_sec.map(round1),
            "server_cpu_pct_ingest": self.ingest.server_cpu_percent.map(round1),
            "server_cpu_pct_drain": self.server_cpu_drain_percent.map(round1),
            "delivery": self.check.to_json(),
            "ingest": self.ingest.to_json(),
        })
    }
}

pub async fn run_backlog(
    target: Arc<Target>,
    operator: &Auth,
    key: Auth,
    tenant: &str,
    cfg: BacklogConfig,
) -> Result<BacklogResult> {
    let receiver = crate::receiver::Receiver::start(false)?;
    let mut sink = SinkHandle::create(&target, operator, tenant, cfg.sink, &receiver.url()).await?;
    let h0 = sink.wait_started().await?;
    sink.set_paused(true).await.context("pause the sink")?;
    let probe = cfg.server_pid.map(Probe::Process);
    let rss_before_bytes = probe.and_then(Probe::rss_bytes);

    let ingest = load::run(
        target.clone(),
        key,
        LoadConfig {
            connections: cfg.connections,
            batch: cfg.events_per_request,
            warmup: Duration::ZERO,
            // Bounded by the event count; this only guards against a stuck server.
            duration: Duration::from_secs(24 * 3600),
            probe,
            events: cfg.spec.clone(),
            max_events: Some(cfg.events),
            require_accepted: true,
        },
    )
    .await
    .context("backlog ingest")?;
    let h1 = sink.head().await?;
    let delivered_while_paused = receiver.books().offsets(tenant).map_or(0, |s| s.distinct());
    if h1.saturating_sub(h0) != ingest.total_events {
        eprintln!(
            "note: the log gained {} events, the 202 answers acknowledged {}",
            h1.saturating_sub(h0),
            ingest.total_events
        );
    }

    eprintln!(
        "backlog: {} events in {:.1}s; resuming the sink …",
        h1.saturating_sub(h0),
        ingest.window_secs
    );
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss = probe.map(|p| spawn_rss_sampler(p, rss_stop.clone()));
    let cpu = cfg.server_pid.map(CpuMeter::start);
    let resumed = Instant::now();
    sink.set_paused(false).await.context("resume the sink")?;
    let drain_secs = drain(&receiver, tenant, h0 + 1, h1, resumed, cfg.drain_timeout).await;
    let server_cpu_drain_percent = cpu.and_then(|m| m.percent());
    rss_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_rss_drain_bytes = match rss {
        Some(h) => h.await.ok().flatten(),
        None => None,
    };
    let check = finish(sink, &receiver, h0 + 1, h1, drain_secs).await;
    let drained = check.delivered;
    Ok(BacklogResult {
        tenant: tenant.to_string(),
        sink: cfg.sink,
        target_events: cfg.events,
        max_rss_ingest_bytes: ingest.server_max_rss_bytes,
        ingest,
        rss_before_bytes,
        max_rss_drain_bytes,
        delivered_while_paused,
        drain_per_sec: drain_secs.filter(|s| *s > 0.0).map(|s| drained as f64 / s),
        drain_secs,
        server_cpu_drain_percent,
        check,
    })
}
