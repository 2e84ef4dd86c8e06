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
//!   ([`load`]), `--runs` times (median, min, max: [`runs`]), each run also
//!   against two in-process ceilings driven by the same load and bodies
//!   ([`ceiling`]: a do-nothing HTTP server and a minimal durable appender
//!   with group commit and fdatasync), so the report gives auditrelay's ratio
//!   to each. After them, bytes on disk per event against the canonical event
//!   size read back from the server ([`disk`]). Events: [`events`] (~500
//!   bytes by default, `--event-size 2k`, `--client-ids`).
//! - `wakeup`: append → long-poll answer latency ([`wakeup`]).
//! - `deliver-100`, `deliver-1000`: end-to-end delivery throughput into a
//!   loopback webhook receiver ([`receiver`]) with sink batches of 100 and
//!   1,000 events, `--deliver-in-flight` batches in flight, while the ingest
//!   load runs for `--duration`; then the drain, completeness (missing and
//!   duplicate offsets) and the sink's lag ([`deliver`]).
//! - `deliver-latency`: ingest → receipt latency at `--latency-rate` events/s
//!   through a sink with batches of ≤ 100 events and one in flight.
//! - `backlog` (not in `all`): a paused sink while `--backlog-events` are
//!   ingested (server RSS sampled every 200 ms), then resumed and the drain
//!   timed and checked for completeness.
//!
//! Each delivery scenario uses its own tenant (`<tenant>-d100`, `-d1000`,
//! `-dlat`) and sink, deleted afterwards.
//!
//! Modules: [`cli`] (options), [`scenarios`] (setup and running), [`report`] (table and
//! `BENCH_JSON`); this file starts and stops the server around them.

mod ceiling;
mod cli;
mod deliver;
mod disk;
mod events;
mod http;
mod load;
mod loopback;
mod many_sinks;
mod outbox;
mod peers;
mod procfs;
mod receiver;
mod report;
mod runs;
mod scenarios;
mod server;
mod stats;
mod wakeup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;

use crate::ceiling::{durable_appender, noop_http, Ceiling};
use crate::cli::{Cli, Scenario};
use crate::events::EventSpec;
use crate::http::{Auth, Target};
use crate::report::{print_json, print_table, Footer};
use crate::runs::IngestSet;
use crate::scenarios::{run_scenarios, Env};
use crate::server::{Server, SpawnOptions, StopOutcome};

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
    let outcome = if cli.selected() == [Scenario::Peers] {
        rt.block_on(run_peers(&cli))
    } else {
        rt.block_on(run(cli))
    };
    match outcome {
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

/// `peers` starts its own forwarders (auditrelay among them) for every run.
async fn run_peers(cli: &Cli) -> Result<bool> {
    if cli.url.is_some() {
        anyhow::bail!("peers starts its own servers; --url does not apply");
    }
    let contenders = if cli.peers_contenders.is_empty() {
        peers::Contender::ALL.to_vec()
    } else {
        cli.peers_contenders.clone()
    };
    peers::run(peers::Options {
        events: cli.peers_events,
        message_size: cli.peers_message_size,
        runs: cli.runs,
        contenders,
        out_dir: cli.peers_out.clone(),
        work_dir: cli.work_dir.clone().unwrap_or_else(std::env::temp_dir),
        server_bin: cli.server_bin.clone().unwrap_or_else(default_server_bin),
    })
    .await
}

fn generated_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench-op-{:x}-{:x}", nanos, std::process::id())
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
                work_dir: cli.work_dir.clone(),
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

    let events = Arc::new(EventSpec::new(cli.event_size, cli.client_ids));
    eprintln!(
        "events: {} bytes as sent ({}{})",
        events.typical_len(),
        cli.event_size.label(),
        if cli.client_ids { ", with client ids" } else { "" }
    );

    // The ceilings, beside the server, for the ingest scenarios.
    let wants_ceilings = !cli.no_ceilings
        && scenarios
            .iter()
            .any(|s| matches!(s, Scenario::Ingest1 | Scenario::Ingest100));
    let ceilings: Vec<Ceiling> = if wants_ceilings {
        // The durable appender writes beside the server's data dir (same filesystem).
        let parent = server
            .as_ref()
            .and_then(|s| s.data_dir.parent().map(std::path::Path::to_path_buf))
            .or_else(|| cli.work_dir.clone())
            .unwrap_or_else(std::env::temp_dir);
        let noop = noop_http::start()?;
        let durable = durable_appender::start(&parent)?;
        eprintln!(
            "ceilings: do-nothing HTTP at {}, durable appender at {} (file under {})",
            noop.target.base(),
            durable.target.base(),
            parent.display()
        );
        vec![noop, durable]
    } else {
        Vec::new()
    };

    let env = Env {
        target: &target,
        operator: &operator,
        server: &server,
        ceilings: &ceilings,
        events: events.clone(),
        duration,
        warmup,
    };
    let result = run_scenarios(&cli, &scenarios, &env).await;
    drop(ceilings);

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
    let events_appended = report.ingest1.as_ref().map_or(0, IngestSet::auditrelay_events)
        + report.ingest100.as_ref().map_or(0, IngestSet::auditrelay_events)
        + report.backlog.as_ref().map_or(0, |b| b.check.expected)
        + report.wakeup.as_ref().map_or(0, |w| w.appended)
        + report.deliver100.as_ref().map_or(0, |d| d.check.expected)
        + report.deliver1000.as_ref().map_or(0, |d| d.check.expected)
        + report.deliver_latency.as_ref().map_or(0, |d| d.check.expected);
    let bytes_per_event = data_dir_live
        .filter(|_| events_appended > 0)
        .map(|b| b as f64 / events_appended as f64);

    let footer = Footer {
        peak_rss,
        data_dir_live,
        data_dir_after,
        events_appended,
        bytes_per_event,
        stop: stop.as_ref(),
        loadavg_start: loadavg_start.as_deref(),
    };
    print_table(&cli, &events, &mode, &report, footer);
    print_json(
        &cli,
        &events,
        &mode,
        &target,
        &scenarios,
        &report,
        footer,
        loadavg_end.as_deref(),
    );
    Ok(report.failures.is_empty())
}
