//! `auditrelay-bench`: load and latency benchmark for the auditrelay server.
//!
//! Starts the real `auditrelay serve` on a free port with a temporary data
//! directory (or targets a running server with `--url` + `--token`), creates
//! a tenant and a key through the public API, runs the scenarios, prints a
//! table and one `BENCH_JSON {…}` line with every figure.

mod http;
mod load;
mod procfs;
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
    /// All of the above, in that order.
    All,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ingest1 => "ingest-1",
            Scenario::Ingest100 => "ingest-100",
            Scenario::Wakeup => "wakeup",
            Scenario::All => "all",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay-bench",
    version,
    about = "Benchmark the auditrelay server: ingest throughput and latency, long-poll wakeup latency",
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

    /// Measurement time per ingest scenario, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Warm-up before each ingest measurement, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Concurrent keep-alive connections for the ingest scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// Events per request in ingest-100.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,

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
            s = vec![Scenario::Ingest1, Scenario::Ingest100, Scenario::Wakeup];
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
        + report.wakeup.as_ref().map_or(0, |w| w.appended);
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
