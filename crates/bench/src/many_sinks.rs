//! `many-sinks`: what thousands of sinks cost a server while they have nothing to do, and what
//! sinks behind a dead receiver cost while they fail.
//!
//! 1. The server's RSS and idle CPU before any sink exist (the baseline).
//! 2. `--sinks` tenants with one event each (RSS measured again), then one webhook sink each
//!    (to the bench's loopback receiver, which answers 200), created concurrently over
//!    keep-alive connections; wait until the receiver has every event, let the cursors settle,
//!    then measure the server's CPU over `--duration` and its RSS. RSS per sink = (RSS − RSS
//!    with the tenants but no sinks) / sinks; also given with the tenant (− the first RSS).
//! 3. `--dead-sinks` more tenants and sinks pointing at a closed loopback port, with
//!    `DEAD_EVENTS` events each pending, then the server's CPU over `--duration` from right
//!    after the events were accepted (the retries' busiest time: backoff and breaker are still
//!    ramping up), and the failed attempts it made meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::deliver::prom_value;
use crate::http::{Auth, Conn, Target};
use crate::procfs::{cpu_time, proc_status_kib};
use crate::receiver::Receiver;
use crate::server::free_port;

/// Events pending per dead sink: enough that every sink keeps retrying through the window.
const DEAD_EVENTS: usize = 10;
/// Events per ingest request when handing each tenant its events.
const EVENTS_PER_REQUEST: usize = 500;
/// How long the receiver may take to get every sink's event.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// After the last delivery, before measuring: the cursor commits and the delivery log's flush.
const SETTLE: Duration = Duration::from_secs(3);
/// Then up to this long for the work queued by the set-up (10,000 lanes starting, their cursor
/// writes, audit events, the delivery log) to finish: until one second uses under
/// `QUIET_PERCENT` of a core. The time it took is reported, so a server that never quiets
/// down shows as such (and is then measured anyway).
const QUIET_TIMEOUT: Duration = Duration::from_secs(120);
const QUIET_PERCENT: f64 = 2.0;
/// When the dead sinks' second window starts, counted from their events' acceptance: after
/// five failures (backoff ceilings 1 + 2 + 4 + 8 s) every breaker is open, and each sink tries
/// once per cooldown (30 s) until its batches are dead-lettered.
const STEADY_AFTER: Duration = Duration::from_secs(40);

pub struct ManySinksConfig {
    pub sinks: usize,
    pub dead_sinks: usize,
    pub concurrency: usize,
    pub window: Duration,
    pub server_pid: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ManySinksResult {
    pub sinks: usize,
    pub dead_sinks: usize,
    pub window_secs: f64,
    pub baseline_rss: u64,
    pub baseline_cpu_pct: f64,
    /// With the tenants and their one event each, before any sink.
    pub tenants_rss: u64,
    pub create_secs: f64,
    pub deliver_secs: f64,
    /// From the last delivery until the server went quiet (see `QUIET_TIMEOUT`).
    pub quiet_secs: f64,
    pub idle_rss: u64,
    pub idle_cpu_pct: f64,
    pub dead_cpu_pct: f64,
    pub dead_failed_attempts: Option<f64>,
    /// The same sinks `STEADY_AFTER` after their events were accepted: breakers open.
    pub dead_steady_cpu_pct: f64,
    /// When the dead sinks' events were accepted, and after the window.
    pub dead_rss_start: u64,
    pub dead_rss: u64,
}

impl ManySinksResult {
    /// (RSS with the sinks − RSS with their tenants but no sinks) / sinks, in bytes.
    pub fn rss_per_sink(&self) -> f64 {
        self.idle_rss.saturating_sub(self.tenants_rss) as f64 / self.sinks.max(1) as f64
    }

    /// (RSS with the sinks − RSS of the fresh server) / sinks, in bytes: the sink and its tenant.
    pub fn rss_per_sink_and_tenant(&self) -> f64 {
        self.idle_rss.saturating_sub(self.baseline_rss) as f64 / self.sinks.max(1) as f64
    }

    pub fn to_json(&self) -> Value {
        json!({
            "sinks": self.sinks,
            "dead_sinks": self.dead_sinks,
            "window_secs": self.window_secs,
            "baseline_rss_bytes": self.baseline_rss,
            "baseline_cpu_percent": self.baseline_cpu_pct,
            "create_secs": self.create_secs,
            "deliver_secs": self.deliver_secs,
            "quiet_secs": self.quiet_secs,
            "idle_rss_bytes": self.idle_rss,
            "idle_cpu_percent": self.idle_cpu_pct,
            "tenants_rss_bytes": self.tenants_rss,
            "rss_per_sink_bytes": self.rss_per_sink(),
            "rss_per_sink_and_tenant_bytes": self.rss_per_sink_and_tenant(),
            "dead_cpu_percent": self.dead_cpu_pct,
            "dead_failed_attempts": self.dead_failed_attempts,
            "dead_steady_cpu_percent": self.dead_steady_cpu_pct,
            "dead_rss_start_bytes": self.dead_rss_start,
            "dead_rss_bytes": self.dead_rss,
        })
    }

    pub fn print(&self) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!();
        println!(
            "many-sinks: {} sinks created in {:.1}s, their events delivered {:.1}s later, server quiet {:.1}s after that",
            self.sinks, self.create_secs, self.deliver_secs, self.quiet_secs
        );
        println!(
            "  no sinks:  {:.2}% of a core, RSS {:.1} MiB",
            self.baseline_cpu_pct,
            mib(self.baseline_rss)
        );
        println!(
            "  {} tenants with one event each, no sinks: RSS {:.1} MiB",
            self.sinks,
            mib(self.tenants_rss)
        );
        println!(
            "  {} idle sinks: {:.2}% of a core over {:.1}s, RSS {:.1} MiB = {:.1} KB per sink ({:.1} KB with its tenant)",
            self.sinks,
            self.idle_cpu_pct,
            self.window_secs,
            mib(self.idle_rss),
            self.rss_per_sink() / 1000.0,
            self.rss_per_sink_and_tenant() / 1000.0
        );
        println!(
            "  + {} sinks behind a dead receiver: {:.2}% of a core over {:.1}s ({} failed attempts), RSS {:.1} MiB at the start, {:.1} MiB at the end",
            self.dead_sinks,
            self.dead_cpu_pct,
            self.window_secs,
            self.dead_failed_attempts
                .map_or_else(|| "?".into(), |n| format!("{n:.0}")),
            mib(self.dead_rss_start),
            mib(self.dead_rss)
        );
        println!(
            "    the same {:.0}s after their events were accepted (breakers open): {:.2}% of a core over {:.1}s",
            STEADY_AFTER.as_secs_f64(),
            self.dead_steady_cpu_pct,
            self.window_secs
        );
    }
}

fn rss(pid: u32) -> Result<u64> {
    proc_status_kib(pid, "VmRSS:")
        .map(|k| k * 1024)
        .context("reading the server's VmRSS")
}

/// The server's CPU use over `window`, in percent of one core.
async fn cpu_over(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_time(pid).context("reading the server's CPU time")?;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let used = cpu_time(pid)
        .context("reading the server's CPU time")?
        .saturating_sub(before);
    Ok(used.as_secs_f64() / start.elapsed().as_secs_f64() * 100.0)
}

/// Runs `requests(i)` for `i in 0..count` over `concurrency` keep-alive connections; each must
/// answer `expect`.
async fn post_all(
    target: &Arc<Target>,
    operator: &Auth,
    count: usize,
    concurrency: usize,
    expect: StatusCode,
    request: impl Fn(usize) -> (String, String) + Send + Sync + 'static,
) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count).max(1) {
        let (target, operator, next, request) = (target.clone(), operator.clone(), next.clone(), request.clone());
        workers.spawn(async move {
            let mut conn = Conn::connect(target.clone()).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let (path, body) = request(i);
                if conn.is_closed() {
                    conn = Conn::connect(target.clone()).await?;
                }
                let resp = conn.post_json(&path, &operator, Bytes::from(body)).await?;
                if resp.status != expect {
                    bail!("POST {path} answered {}: {}", resp.status, resp.body_snippet());
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("a request worker panicked")??;
    }
    Ok(())
}

/// Creates tenants `{prefix}{i}`.
async fn create_tenants(
    target: &Arc<Target>,
    operator: &Auth,
    prefix: &'static str,
    count: usize,
    concurrency: usize,
) -> Result<()> {
    let tenant = move |i: usize| format!("{prefix}{i:05}");
    post_all(target, operator, count, concurrency, StatusCode::CREATED, move |i| {
        let body = json!({"id": tenant(i), "name": tenant(i)});
        ("/v1/tenants".into(), body.to_string())
    })
    .await
    .context("creating tenants")
}

/// Creates a webhook sink to `url` for each tenant `{prefix}{i}`, starting at its first event.
async fn create_sinks(
    target: &Arc<Target>,
    operator: &Auth,
    prefix: &'static str,
    count: usize,
    concurrency: usize,
    url: String,
) -> Result<()> {
    let tenant = move |i: usize| format!("{prefix}{i:05}");
    post_all(target, operator, count, concurrency, StatusCode::CREATED, move |i| {
        let body = json!({
            "name": format!("many-{}", tenant(i)),
            "kind": "webhook",
            "tenant": tenant(i),
            "config": {"url": url},
            "start_at": "earliest",
            "batch": {"flush_interval_ms": 0},
        });
        ("/v1/sinks".into(), body.to_string())
    })
    .await
    .context("creating sinks")
}

/// Appends `per_tenant` small events to each tenant `{prefix}{i}`, several tenants a request.
async fn append_events(
    target: &Arc<Target>,
    operator: &Auth,
    prefix: &'static str,
    tenants: usize,
    per_tenant: usize,
    concurrency: usize,
) -> Result<()> {
    let total = tenants * per_tenant;
    let requests = total.div_ceil(EVENTS_PER_REQUEST);
    post_all(
        target,
        operator,
        requests,
        concurrency,
        StatusCode::ACCEPTED,
        move |r| {
            let events: Vec<Value> = (r * EVENTS_PER_REQUEST..((r + 1) * EVENTS_PER_REQUEST).min(total))
                .map(|n| {
                    json!({
                        "tenant_id": format!("{prefix}{:05}", n % tenants),
                        "type": "bench.many_sinks",
                        "actor": {"id": "usr_1"},
                        "action": "update",
                        "outcome": "success",
                        "severity": 5,
                        "metadata": {"n": n},
                    })
                })
                .collect();
            ("/v1/events".into(), Value::Array(events).to_string())
        },
    )
    .await
    .context("appending events")
}

async fn failed_attempts(target: &Arc<Target>) -> Option<f64> {
    let mut conn = Conn::connect(target.clone()).await.ok()?;
    let resp = conn.get("/metrics", None).await.ok()?;
    if resp.status != StatusCode::OK {
        return None;
    }
    Some(
        prom_value(
            &String::from_utf8_lossy(&resp.body),
            "auditrelay_sink_failed_attempts_total",
        )
        .unwrap_or(0.0),
    )
}

pub async fn run(target: Arc<Target>, operator: &Auth, config: ManySinksConfig) -> Result<ManySinksResult> {
    let pid = config.server_pid;
    let mut out = ManySinksResult {
        sinks: config.sinks,
        dead_sinks: config.dead_sinks,
        window_secs: config.window.as_secs_f64(),
        ..ManySinksResult::default()
    };
    eprintln!("many-sinks: the server without sinks, {:.1}s …", out.window_secs);
    out.baseline_cpu_pct = cpu_over(pid, config.window).await?;
    out.baseline_rss = rss(pid)?;

    let receiver = Receiver::start(false)?;
    eprintln!(
        "many-sinks: creating {} tenants and sinks over {} connections …",
        config.sinks, config.concurrency
    );
    let started = Instant::now();
    create_tenants(&target, operator, "ms", config.sinks, config.concurrency).await?;
    // Their events go first, so the RSS before the sinks counts the tenants' log state too.
    append_events(&target, operator, "ms", config.sinks, 1, config.concurrency).await?;
    tokio::time::sleep(SETTLE).await;
    out.tenants_rss = rss(pid)?;
    create_sinks(
        &target,
        operator,
        "ms",
        config.sinks,
        config.concurrency,
        receiver.url(),
    )
    .await?;
    out.create_secs = started.elapsed().as_secs_f64();

    eprintln!("many-sinks: waiting for every sink to deliver its tenant's event …");
    let started = Instant::now();
    loop {
        let got = receiver.books().tenants.values().filter(|s| s.distinct() > 0).count();
        if got >= config.sinks {
            break;
        }
        if started.elapsed() > DELIVERY_TIMEOUT {
            bail!(
                "only {got} of {} sinks delivered within {DELIVERY_TIMEOUT:?}",
                config.sinks
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.deliver_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    tokio::time::sleep(SETTLE).await;
    while started.elapsed() < QUIET_TIMEOUT && cpu_over(pid, Duration::from_secs(1)).await? >= QUIET_PERCENT {}
    out.quiet_secs = started.elapsed().as_secs_f64();

    eprintln!("many-sinks: {} idle sinks, {:.1}s …", config.sinks, out.window_secs);
    out.idle_cpu_pct = cpu_over(pid, config.window).await?;
    out.idle_rss = rss(pid)?;

    if config.dead_sinks > 0 {
        // Bound, then closed: nothing listens there, so every connect is refused.
        let dead_url = format!("http://127.0.0.1:{}/hook", free_port()?);
        eprintln!(
            "many-sinks: {} sinks to a closed port ({dead_url}), {DEAD_EVENTS} events each …",
            config.dead_sinks
        );
        create_tenants(&target, operator, "md", config.dead_sinks, config.concurrency).await?;
        create_sinks(&target, operator, "md", config.dead_sinks, config.concurrency, dead_url).await?;
        append_events(
            &target,
            operator,
            "md",
            config.dead_sinks,
            DEAD_EVENTS,
            config.concurrency,
        )
        .await?;
        let accepted = Instant::now();
        out.dead_rss_start = rss(pid)?;
        out.dead_cpu_pct = cpu_over(pid, config.window).await?;
        out.dead_rss = rss(pid)?;
        // Read after the RSS: rendering /metrics for thousands of sinks is itself a burst of
        // memory. The idle sinks never failed, so the total is the dead sinks' alone.
        out.dead_failed_attempts = failed_attempts(&target).await;
        tokio::time::sleep(STEADY_AFTER.saturating_sub(accepted.elapsed())).await;
        out.dead_steady_cpu_pct = cpu_over(pid, config.window).await?;
    }
    Ok(out)
}
