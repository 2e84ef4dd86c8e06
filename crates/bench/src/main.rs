//! `auditrelay-bench`: load and latency benchmark for the auditrelay server.
//!
//! Starts the real `auditrelay serve` on a free port with a temporary data
//! directory and `--allow-private-networks` (or targets a running server with
//! `--url` + `--token`), creates a tenant and a key through the public API,
//! runs the scenarios, prints a table and one `BENCH_JSON {…}` line with every
//! figure.
//!
//! Scenarios:
//! - `ingest-1`, `ingest-100`: closed-loop ingest throughput and latency
//!   ([`load`]).
//! - `wakeup`: append → long-poll answer latency ([`wakeup`]).
//! - `deliver-100`, `deliver-1000`: end-to-end delivery throughput into a
//!   loopback webhook receiver ([`receiver`]) with sink batches of 100 and
//!   1,000 events, `--deliver-in-flight` batches in flight, while the ingest
//!   load runs for `--duration`; then the drain, completeness (missing and
//!   duplicate offsets) and the sink's lag ([`deliver`]).
//! - `deliver-latency`: ingest → receipt latency at `--latency-rate` events/s
//!   through a sink with batches of ≤ 100 events and one in flight.
//!
//! Each delivery scenario uses its own tenant (`<tenant>-d100`, `-d1000`,
//! `-dlat`) and sink, deleted afterwards.

mod deliver;
mod http;
mod load;
mod procfs;
mod receiver;
mod server;
mod stats;
mod wakeup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hyper::StatusCode;
use serde::Deserialize;

use crate::deliver::{LatencyConfig, LatencyResult, SinkSettings, ThroughputConfig, ThroughputResult};
use crate::http::{Auth, Conn, Target};
use crate::load::{LoadConfig, LoadResult};
use crate::server::{Server, SpawnOptions, StopOutcome};
use crate::stats::ms;
use crate::wakeup::{WakeupConfig, WakeupResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Scenario {
    /// 1 event per request, `--connections` keep-alive connections.
    #[value(name = "ingest-1")]
    Ingest1,
    /// `--batch-size` events per request (JSON array).
    #[value(name = "ingest-100")]
    Ingest100,
    /// Append → long-poll wakeup latency.
    Wakeup,
    /// Ingest → webhook sink → loopback receiver throughput, sink batches of
    /// 100 events, `--deliver-in-flight` in flight, while `--connections`
    /// ingest `--batch-size` events/request for `--duration`.
    #[value(name = "deliver-100")]
    Deliver100,
    /// As deliver-100 with sink batches of 1,000 events.
    #[value(name = "deliver-1000")]
    Deliver1000,
    /// Ingest → receipt latency at `--latency-rate` events/s on one
    /// connection (sink batches ≤ 100 events, 1 in flight).
    #[value(name = "deliver-latency")]
    DeliverLatency,
    /// All of the above, in that order.
    All,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ingest1 => "ingest-1",
            Scenario::Ingest100 => "ingest-100",
            Scenario::Wakeup => "wakeup",
            Scenario::Deliver100 => "deliver-100",
            Scenario::Deliver1000 => "deliver-1000",
            Scenario::DeliverLatency => "deliver-latency",
            Scenario::All => "all",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay-bench",
    version,
    about = "Benchmark the auditrelay server: ingest throughput and latency, long-poll wakeup latency, \
             webhook delivery throughput and ingest-to-receipt latency",
    after_help = "Exit status: 0 = ran clean; 1 = could not run; 2 = ran but saw errors (non-202 answers, \
                  failed checks) or the server did not exit 0 on SIGTERM."
)]
struct Cli {
    /// Scenarios to run (default: all). Same as --scenario.
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,

    /// Scenarios to run, comma-separated (default: all).
    #[arg(long = "scenario", value_name = "SCENARIO", value_enum, value_delimiter = ',')]
    scenario_flag: Vec<Scenario>,

    /// Server binary to start [default: `auditrelay` next to this binary,
    /// else target/release/auditrelay].
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,

    /// Benchmark an already-running server at this base URL (plain http)
    /// instead of starting one; needs --token.
    #[arg(long, requires = "token")]
    url: Option<String>,

    /// Operator token. With --url: the running server's token; otherwise
    /// the token given to the started server [default: generated].
    #[arg(long, env = "AUDITRELAY_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Passed to `auditrelay serve --database-url` (e.g. postgres://…);
    /// unset = embedded SQLite in the temporary data dir.
    #[arg(long, env = "AUDITRELAY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Measurement time per ingest scenario, seconds; also the ingest time of
    /// deliver-100/-1000 and the measured sending time of deliver-latency.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Warm-up before each ingest measurement, seconds (also deliver-latency's
    /// unmeasured lead-in; deliver-100/-1000 have none).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Concurrent keep-alive connections for the ingest and deliver-100/-1000
    /// scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// Events per request in ingest-100 and deliver-100/-1000.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,

    /// Sink `max_in_flight` (batches on the wire at once) in deliver-100/-1000.
    #[arg(long, default_value_t = 4)]
    deliver_in_flight: usize,

    /// deliver-latency's steady ingest rate, events/s (sent in 10 ms ticks of
    /// rate/100 events; below 100/s, one event per longer tick).
    #[arg(long, default_value_t = 1000.0)]
    latency_rate: f64,

    /// After ingest stops, how long the delivery scenarios wait for the
    /// receiver to hold every event before counting the rest as missing,
    /// seconds.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,

    /// Wakeup rounds.
    #[arg(long, default_value_t = 200)]
    wakeup_iterations: usize,

    /// Pause between parking the long-poll and appending, milliseconds.
    #[arg(long, default_value_t = 20)]
    wakeup_delay_ms: u64,

    /// Tenant to create (409 = already there, reused).
    #[arg(long, default_value = "bench")]
    tenant: String,

    /// Client runtime threads (1 keeps the client on one core).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,

    /// Keep the temporary data dir (and server log) after the run.
    #[arg(long)]
    keep_data: bool,
}

impl Cli {
    fn selected(&self) -> Vec<Scenario> {
        let mut s: Vec<Scenario> = self
            .scenarios
            .iter()
            .chain(self.scenario_flag.iter())
            .copied()
            .collect();
        if s.is_empty() || s.contains(&Scenario::All) {
            s = vec![
                Scenario::Ingest1,
                Scenario::Ingest100,
                Scenario::Wakeup,
                Scenario::Deliver100,
                Scenario::Deliver1000,
                Scenario::DeliverLatency,
            ];
        }
        s.sort();
        s.dedup();
        s
    }

    fn validate(&self) -> Result<()> {
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            bail!("--duration must be > 0");
        }
        if !(self.warmup >= 0.0 && self.warmup.is_finite()) {
            bail!("--warmup must be >= 0");
        }
        if self.connections == 0 || self.batch_size == 0 || self.client_threads == 0 {
            bail!("--connections, --batch-size and --client-threads must be >= 1");
        }
        if !(1..=64).contains(&self.deliver_in_flight) {
            bail!("--deliver-in-flight must be 1..=64 (the server's limit)");
        }
        if !(self.latency_rate > 0.0 && self.latency_rate.is_finite()) {
            bail!("--latency-rate must be > 0");
        }
        if !(self.drain_timeout >= 0.0 && self.drain_timeout.is_finite()) {
            bail!("--drain-timeout must be >= 0");
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = cli.validate() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let rt = if cli.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.client_threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn default_server_bin() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let sibling = dir.join("auditrelay");
            if sibling.exists() {
                return sibling;
            }
        }
    }
    PathBuf::from("target/release/auditrelay")
}

/// `git` revision of the working directory (`abc1234` or `abc1234-dirty`),
/// so recorded figures say which code they measured.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

fn generated_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench-op-{:x}-{:x}", nanos, std::process::id())
}

#[derive(Deserialize)]
struct CreatedKey {
    key: String,
}

/// Create the tenant (or reuse it) and a key with ingest + read.
async fn setup(target: &Arc<Target>, operator: &Auth, tenant: &str) -> Result<Auth> {
    let mut conn = Conn::connect(target.clone()).await?;
    let body = serde_json::json!({"id": tenant, "name": "Bench"}).to_string();
    let resp = conn.post_json("/v1/tenants", operator, Bytes::from(body)).await?;
    match resp.status {
        StatusCode::CREATED => {}
        StatusCode::CONFLICT => eprintln!("tenant {tenant:?} exists; reusing it"),
        s => bail!("POST /v1/tenants answered {s}: {}", resp.body_snippet()),
    }
    let body = serde_json::json!({"name": "bench", "scopes": ["ingest", "read"]}).to_string();
    let resp = conn
        .post_json(&format!("/v1/tenants/{tenant}/keys"), operator, Bytes::from(body))
        .await?;
    if resp.status != StatusCode::CREATED {
        bail!(
            "POST /v1/tenants/{tenant}/keys answered {}: {}",
            resp.status,
            resp.body_snippet()
        );
    }
    let key: CreatedKey = resp.json()?;
    Auth::bearer(&key.key)
}

#[derive(Default)]
struct Report {
    ingest1: Option<LoadResult>,
    ingest100: Option<LoadResult>,
    wakeup: Option<WakeupResult>,
    deliver100: Option<ThroughputResult>,
    deliver1000: Option<ThroughputResult>,
    deliver_latency: Option<LatencyResult>,
    failures: Vec<String>,
}

async fn run(cli: Cli) -> Result<bool> {
    let scenarios = cli.selected();
    let duration = Duration::from_secs_f64(cli.duration);
    let warmup = Duration::from_secs_f64(cli.warmup);
    let loadavg_start = procfs::loadavg();

    // The server: ours or theirs.
    let (mut server, target, operator, mode) = match &cli.url {
        Some(url) => {
            let target = Arc::new(Target::parse(url)?);
            server::probe_health(&target)
                .await
                .with_context(|| format!("{url} is not healthy"))?;
            if cli.database_url.is_some() {
                eprintln!("note: --database-url is ignored with --url");
            }
            let token = cli.token.clone().context("--url needs --token")?;
            (None, target, Auth::bearer(&token)?, "external".to_string())
        }
        None => {
            let bin = cli.server_bin.clone().unwrap_or_else(default_server_bin);
            let token = cli.token.clone().unwrap_or_else(generated_token);
            eprintln!("starting {} serve …", bin.display());
            let server = Server::spawn(SpawnOptions {
                bin,
                database_url: cli.database_url.clone(),
                admin_token: token.clone(),
                keep_data: cli.keep_data,
            })
            .await?;
            eprintln!(
                "server pid {} at {} (data dir {}, log {})",
                server.pid(),
                server.target.base(),
                server.data_dir.display(),
                server.log_path().display()
            );
            let mode = match &cli.database_url {
                Some(u) if u.starts_with("postgres") => "postgres",
                Some(_) => "database-url",
                None => "sqlite",
            };
            let target = server.target.clone();
            (Some(server), target, Auth::bearer(&token)?, mode.to_string())
        }
    };

    let result = run_scenarios(&cli, &scenarios, &target, &operator, &server, duration, warmup).await;

    // Measure and stop the server even when a scenario failed.
    let peak_rss = server.as_ref().and_then(Server::peak_rss_bytes);
    let data_dir_live = server.as_ref().map(|s| server::dir_size(&s.data_dir));
    let data_dir = server.as_ref().map(|s| s.data_dir.clone());
    let log_tail = server.as_ref().map(|s| s.log_tail(2000));
    let loadavg_end = procfs::loadavg();
    let stop: Option<StopOutcome> = match server.as_mut() {
        Some(s) => Some(s.stop(Duration::from_secs(30)).await?),
        None => None,
    };
    let data_dir_after = data_dir.as_deref().map(server::dir_size);
    // Deletes the temporary data dir (unless --keep-data).
    drop(server);

    let mut report = result?;
    if let Some(stop) = &stop {
        if !stop.exited_zero() {
            report
                .failures
                .push(format!("server did not exit 0 on SIGTERM: {}", stop.describe()));
            if let Some(tail) = &log_tail {
                eprintln!("server log tail:\n{tail}");
            }
        }
    }

    // Every event the run appended (warm-ups and wakeup rounds included),
    // to relate the data dir size to the log.
    let events_appended = report.ingest1.as_ref().map_or(0, |r| r.total_events)
        + report.ingest100.as_ref().map_or(0, |r| r.total_events)
        + report.wakeup.as_ref().map_or(0, |w| w.appended)
        + report.deliver100.as_ref().map_or(0, |d| d.check.expected)
        + report.deliver1000.as_ref().map_or(0, |d| d.check.expected)
        + report.deliver_latency.as_ref().map_or(0, |d| d.check.expected);
    let bytes_per_event = data_dir_live
        .filter(|_| events_appended > 0)
        .map(|b| b as f64 / events_appended as f64);

    print_table(
        &cli,
        &mode,
        &report,
        Footer {
            peak_rss,
            data_dir_live,
            data_dir_after,
            events_appended,
            bytes_per_event,
            stop: stop.as_ref(),
            loadavg_start: loadavg_start.as_deref(),
        },
    );

    let json = serde_json::json!({
        "server": mode,
        "git": git_revision(),
        "target": target.base(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "client_threads": cli.client_threads,
        "duration_s": cli.duration,
        "warmup_s": cli.warmup,
        "scenarios": scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "ingest_1": report.ingest1.as_ref().map(LoadResult::to_json),
        "ingest_100": report.ingest100.as_ref().map(LoadResult::to_json),
        "wakeup": report.wakeup.as_ref().map(WakeupResult::to_json),
        "deliver_100": report.deliver100.as_ref().map(ThroughputResult::to_json),
        "deliver_1000": report.deliver1000.as_ref().map(ThroughputResult::to_json),
        "deliver_latency": report.deliver_latency.as_ref().map(LatencyResult::to_json),
        "deliver_in_flight": cli.deliver_in_flight,
        "latency_rate": cli.latency_rate,
        "server_peak_rss_bytes": peak_rss,
        "data_dir_bytes": data_dir_live,
        "data_dir_bytes_after_stop": data_dir_after,
        "events_appended": events_appended,
        "data_dir_bytes_per_event": bytes_per_event.map(load::round1),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg_end,
        "sigterm_exit_zero": stop.as_ref().map(StopOutcome::exited_zero),
        "sigterm_exit": stop.as_ref().map(StopOutcome::describe),
        "shutdown_ms": stop.as_ref().map(|s| s.shutdown_time.as_millis() as u64),
        "failures": report.failures,
    });
    println!("BENCH_JSON {json}");
    Ok(report.failures.is_empty())
}

async fn run_scenarios(
    cli: &Cli,
    scenarios: &[Scenario],
    target: &Arc<Target>,
    operator: &Auth,
    server: &Option<Server>,
    duration: Duration,
    warmup: Duration,
) -> Result<Report> {
    let key = setup(target, operator, &cli.tenant)
        .await
        .context("setup (tenant + key)")?;
    let server_pid = server.as_ref().map(Server::pid);
    let mut report = Report::default();
    for &scenario in scenarios {
        match scenario {
            Scenario::Ingest1 | Scenario::Ingest100 => {
                let batch = if scenario == Scenario::Ingest1 {
                    1
                } else {
                    cli.batch_size
                };
                eprintln!(
                    "{}: {} connections, {} event(s)/request, {:.1}s warm-up + {:.1}s …",
                    scenario.name(),
                    cli.connections,
                    batch,
                    cli.warmup,
                    cli.duration
                );
                let r = load::run(
                    target.clone(),
                    key.clone(),
                    LoadConfig {
                        connections: cli.connections,
                        batch,
                        warmup,
                        duration,
                        server_pid,
                    },
                )
                .await
                .with_context(|| scenario.name())?;
                if r.error_count() > 0 {
                    report.failures.push(format!(
                        "{}: {} errors (first: {})",
                        scenario.name(),
                        r.error_count(),
                        r.first_error.as_deref().unwrap_or("?")
                    ));
                }
                if scenario == Scenario::Ingest1 {
                    report.ingest1 = Some(r);
                } else {
                    report.ingest100 = Some(r);
                }
            }
            Scenario::Wakeup => {
                eprintln!(
                    "wakeup: {} rounds, long-poll then append after {} ms …",
                    cli.wakeup_iterations, cli.wakeup_delay_ms
                );
                let r = wakeup::run(
                    target.clone(),
                    key.clone(),
                    WakeupConfig {
                        iterations: cli.wakeup_iterations,
                        delay: Duration::from_millis(cli.wakeup_delay_ms),
                        wait_secs: 30,
                    },
                )
                .await
                .context("wakeup")?;
                if r.errors > 0 || r.early_returns > 0 {
                    report.failures.push(format!(
                        "wakeup: {} errors, {} long-polls answered before the append (first: {})",
                        r.errors,
                        r.early_returns,
                        r.first_error.as_deref().unwrap_or("-")
                    ));
                }
                report.wakeup = Some(r);
            }
            Scenario::Deliver100 | Scenario::Deliver1000 => {
                let (max_events, suffix) = if scenario == Scenario::Deliver100 {
                    (100, "d100")
                } else {
                    (1000, "d1000")
                };
                let tenant = format!("{}-{suffix}", cli.tenant);
                let dkey = setup(target, operator, &tenant)
                    .await
                    .with_context(|| format!("{}: setup (tenant + key)", scenario.name()))?;
                eprintln!(
                    "{}: tenant {tenant}, sink batches of {max_events}, {} in flight; {} connections × {} event(s)/request for {:.1}s, then drain (≤ {:.0}s) …",
                    scenario.name(),
                    cli.deliver_in_flight,
                    cli.connections,
                    cli.batch_size,
                    cli.duration,
                    cli.drain_timeout,
                );
                let r = deliver::run_throughput(
                    target.clone(),
                    operator,
                    dkey,
                    &tenant,
                    ThroughputConfig {
                        sink: SinkSettings {
                            max_events,
                            max_in_flight: cli.deliver_in_flight,
                        },
                        connections: cli.connections,
                        events_per_request: cli.batch_size,
                        duration,
                        drain_timeout: Duration::from_secs_f64(cli.drain_timeout),
                        server_pid,
                    },
                )
                .await
                .with_context(|| scenario.name())?;
                if r.ingest.error_count() > 0 {
                    report.failures.push(format!(
                        "{}: {} ingest errors (first: {})",
                        scenario.name(),
                        r.ingest.error_count(),
                        r.ingest.first_error.as_deref().unwrap_or("?")
                    ));
                }
                report.failures.extend(r.check.failures(scenario.name()));
                if scenario == Scenario::Deliver100 {
                    report.deliver100 = Some(r);
                } else {
                    report.deliver1000 = Some(r);
                }
            }
            Scenario::DeliverLatency => {
                let tenant = format!("{}-dlat", cli.tenant);
                let dkey = setup(target, operator, &tenant)
                    .await
                    .context("deliver-latency: setup (tenant + key)")?;
                let (k, tick) = deliver::pacing(cli.latency_rate);
                eprintln!(
                    "deliver-latency: tenant {tenant}, {} events/s ({k} every {:.1} ms) on one connection, {:.1}s warm-up + {:.1}s, sink batches ≤ 100, 1 in flight …",
                    cli.latency_rate,
                    tick.as_secs_f64() * 1000.0,
                    cli.warmup,
                    cli.duration,
                );
                let r = deliver::run_latency(
                    target.clone(),
                    operator,
                    dkey,
                    &tenant,
                    LatencyConfig {
                        rate: cli.latency_rate,
                        warmup,
                        duration,
                        drain_timeout: Duration::from_secs_f64(cli.drain_timeout),
                        server_pid,
                    },
                )
                .await
                .context("deliver-latency")?;
                if r.ingest_errors > 0 {
                    report.failures.push(format!(
                        "deliver-latency: {} ingest errors (first: {})",
                        r.ingest_errors,
                        r.first_ingest_error.as_deref().unwrap_or("?")
                    ));
                }
                if r.without_sent_ns > 0 {
                    report.failures.push(format!(
                        "deliver-latency: {} delivered events carried no metadata.sent_ns",
                        r.without_sent_ns
                    ));
                }
                report.failures.extend(r.check.failures("deliver-latency"));
                report.deliver_latency = Some(r);
            }
            Scenario::All => {}
        }
    }
    Ok(report)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0}%", v)).unwrap_or_else(|| "-".into())
}

fn opt_secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}s")).unwrap_or_else(|| "TIMEOUT".into())
}

/// The delivery scenarios' tables (nothing when none ran).
fn print_delivery(report: &Report) {
    let rows: Vec<(&str, &ThroughputResult)> = [
        ("deliver-100", report.deliver100.as_ref()),
        ("deliver-1000", report.deliver1000.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, r)| r.map(|r| (n, r)))
    .collect();
    if !rows.is_empty() {
        println!();
        println!(
            "{:<13} {:>7} {:>11} {:>11} {:>11} {:>9} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8}",
            "delivery",
            "in-fl",
            "ingest ev/s",
            "deliv ev/s",
            "during ing",
            "lag@stop",
            "drained",
            "requests",
            "ev/req",
            "dup",
            "missing",
            "srv cpu",
            "+drain"
        );
        for (name, r) in &rows {
            let c = &r.check;
            println!(
                "{:<13} {:>7} {:>11} {:>11} {:>11} {:>9} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8}",
                name,
                r.sink.max_in_flight,
                format!("{:.0}", r.ingest.events_per_sec),
                r.delivered_per_sec
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.0}", r.delivered_during_ingest as f64 / r.ingest.window_secs),
                r.lag_at_ingest_end,
                opt_secs(c.drain_secs),
                c.requests,
                if c.requests > 0 {
                    format!("{:.0}", (c.delivered + c.duplicates) as f64 / c.requests as f64)
                } else {
                    "-".into()
                },
                c.duplicates,
                c.missing(),
                opt_pct(r.ingest.server_cpu_percent),
                opt_pct(r.server_cpu_total_percent),
            );
        }
        for (name, r) in &rows {
            println!(
                "  {name}: events received per 0.5 s from ingest start: {:?}; while ingesting: {} webhook requests, {} server group commits, gap between requests p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; after: p50 {:.2} ms",
                r.timeline,
                r.requests_during_ingest,
                r.commit_groups_during_ingest
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "?".into()),
                ms(r.gaps_during_ingest.p50),
                ms(r.gaps_during_ingest.p99),
                ms(r.gaps_during_ingest.max),
                ms(r.gaps_after_ingest.p50),
            );
        }
        println!(
            "  (deliv ev/s: distinct events received / first → last receipt; during ing: received while ingest ran / ingest time; \
             lag@stop: events not yet received when ingest stopped; drained: ingest stop → last event received; \
             srv cpu: during ingest, +drain: ingest and drain)"
        );
    }
    if let Some(r) = &report.deliver_latency {
        let l = &r.latency;
        let c = &r.check;
        println!();
        println!(
            "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>8} {:>8}",
            "latency",
            "events",
            "sent/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "dup",
            "missing",
            "srv cpu"
        );
        println!(
            "{:<16} {:>8} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>5} {:>8} {:>8}",
            "deliver-latency",
            l.count,
            format!("{:.0}", r.sent_per_sec),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            c.duplicates,
            c.missing(),
            opt_pct(r.server_cpu_percent),
        );
        println!(
            "  (ingest → receipt of events sent after the warm-up, {} per request every {:.1} ms, target {:.0}/s; \
             POST → 202 p50 {:.2} ms, p99 {:.2} ms; {} late ticks, worst {:.1} ms behind schedule (warm-up: {}, {:.1} ms); {} webhook requests, drained in {})",
            r.events_per_request,
            r.tick.as_secs_f64() * 1000.0,
            r.rate,
            ms(r.post_latency.p50),
            ms(r.post_latency.p99),
            r.late_ticks,
            r.max_behind_schedule.as_secs_f64() * 1000.0,
            r.late_ticks_warmup,
            r.max_behind_schedule_warmup.as_secs_f64() * 1000.0,
            c.requests,
            opt_secs(c.drain_secs),
        );
    }
}

struct Footer<'a> {
    peak_rss: Option<u64>,
    data_dir_live: Option<u64>,
    data_dir_after: Option<u64>,
    events_appended: u64,
    bytes_per_event: Option<f64>,
    stop: Option<&'a StopOutcome>,
    loadavg_start: Option<&'a str>,
}

fn print_table(cli: &Cli, mode: &str, report: &Report, footer: Footer<'_>) {
    let Footer {
        peak_rss,
        data_dir_live,
        data_dir_after,
        events_appended,
        bytes_per_event,
        stop,
        loadavg_start,
    } = footer;
    println!();
    println!(
        "auditrelay bench — server: {mode}, {} connections, {:.0}s warm-up + {:.0}s per ingest scenario, {} client thread(s), {} CPUs",
        cli.connections,
        cli.warmup,
        cli.duration,
        cli.client_threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    println!();
    println!(
        "{:<11} {:>11} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8}",
        "scenario", "events/s", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "srv cpu", "cli cpu"
    );
    for (name, r) in [("ingest-1", &report.ingest1), ("ingest-100", &report.ingest100)] {
        if let Some(r) = r {
            println!(
                "{:<11} {:>11} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>8} {:>8}",
                name,
                format!("{:.0}", r.events_per_sec),
                format!("{:.0}", r.requests_per_sec),
                ms(r.latency.p50),
                ms(r.latency.p99),
                ms(r.latency.max),
                r.error_count(),
                opt_pct(r.server_cpu_percent),
                opt_pct(r.client_cpu_percent),
            );
        }
    }
    if let Some(w) = &report.wakeup {
        println!(
            "{:<11} {:>11} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>8} {:>8}",
            "wakeup",
            "-",
            "-",
            ms(w.wakeup.p50),
            ms(w.wakeup.p99),
            ms(w.wakeup.max),
            w.errors + w.early_returns,
            "-",
            "-",
        );
        println!(
            "  (wakeup: POST sent → long-poll answer received, {} of {} rounds measured; the append's own 202: p50 {:.2} ms, p99 {:.2} ms)",
            w.wakeup.count,
            w.iterations,
            ms(w.append.p50),
            ms(w.append.p99),
        );
    }
    print_delivery(report);
    println!();
    if let Some(rss) = peak_rss {
        println!("server peak RSS (VmHWM): {}", mib(rss));
    }
    if let Some(d) = data_dir_live {
        println!(
            "data dir: {} before stop, {} after; {} events appended{}",
            mib(d),
            data_dir_after.map(mib).unwrap_or_else(|| "-".into()),
            events_appended,
            bytes_per_event
                .map(|b| format!(" ({b:.0} bytes/event)"))
                .unwrap_or_default()
        );
    }
    if let Some(l) = loadavg_start {
        println!("load average at start: {l} (other work on the machine skews the figures)");
    }
    if let Some(s) = stop {
        println!(
            "SIGTERM: {} after {} ms{}",
            s.describe(),
            s.shutdown_time.as_millis(),
            if s.exited_zero() { "" } else { "  <-- NOT CLEAN" }
        );
    }
    for f in &report.failures {
        println!("FAILURE: {f}");
    }
    println!();
}
