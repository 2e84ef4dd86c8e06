//! Running the selected scenarios against a server: the tenant and key setup, then each
//! scenario in turn, its failures collected into the [`Report`]. The ingest scenarios run
//! `--runs` times against auditrelay and each ceiling; right after them the data dir is
//! measured against the events stored ([`crate::disk`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;

use crate::ceiling::Ceiling;
use crate::cli::{Cli, Scenario};
use crate::deliver::{self, BacklogConfig, LatencyConfig, SinkSettings, ThroughputConfig};
use crate::disk::{canonical_sample, dir_usage, DiskReport};
use crate::events::EventSpec;
use crate::http::{Auth, Conn, Target};
use crate::load::{self, LoadConfig};
use crate::procfs::Probe;
use crate::report::Report;
use crate::runs::{IngestSet, Subject};
use crate::server::Server;
use crate::wakeup::{self, WakeupConfig};

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

/// What the scenarios need besides the options.
pub struct Env<'a> {
    pub target: &'a Arc<Target>,
    pub operator: &'a Auth,
    pub server: &'a Option<Server>,
    /// The ceilings started for the ingest scenarios (empty with `--no-ceilings`).
    pub ceilings: &'a [Ceiling],
    pub events: Arc<EventSpec>,
    pub duration: Duration,
    pub warmup: Duration,
}

/// One ingest scenario: `--runs` rounds, each measuring every ceiling and auditrelay once (the
/// order rotates from round to round, so none always goes first).
async fn run_ingest(
    cli: &Cli,
    env: &Env<'_>,
    key: &Auth,
    scenario: Scenario,
    report: &mut Report,
) -> Result<IngestSet> {
    let batch = if scenario == Scenario::Ingest1 {
        1
    } else {
        cli.batch_size
    };
    let server_pid = env.server.as_ref().map(Server::pid);
    let mut subjects: Vec<(Subject, Arc<Target>, Option<Probe>)> = Vec::new();
    for c in env.ceilings {
        subjects.push((c.subject, c.target.clone(), Some(c.probe())));
    }
    subjects.push((Subject::Auditrelay, env.target.clone(), server_pid.map(Probe::Process)));
    let mut set = IngestSet::new(batch);
    for run in 0..cli.runs {
        for i in 0..subjects.len() {
            let (who, target, probe) = subjects[(i + run) % subjects.len()].clone();
            eprintln!(
                "{} run {}/{}, {}: {} connections, {} event(s)/request, {:.1}s warm-up + {:.1}s …",
                scenario.name(),
                run + 1,
                cli.runs,
                who.label(),
                cli.connections,
                batch,
                cli.warmup,
                cli.duration
            );
            let r = load::run(
                target,
                key.clone(),
                LoadConfig {
                    connections: cli.connections,
                    batch,
                    warmup: env.warmup,
                    duration: env.duration,
                    probe,
                    events: env.events.clone(),
                    max_events: None,
                    require_accepted: who != Subject::NoopHttp,
                },
            )
            .await
            .with_context(|| format!("{} ({})", scenario.name(), who.label()))?;
            if r.error_count() > 0 {
                report.failures.push(format!(
                    "{} ({}, run {}): {} errors (first: {})",
                    scenario.name(),
                    who.label(),
                    run + 1,
                    r.error_count(),
                    r.first_error.as_deref().unwrap_or("?")
                ));
            }
            set.push(who, r);
        }
    }
    Ok(set)
}

/// The data dir against the events the ingest scenarios stored (a started server only).
async fn measure_disk(env: &Env<'_>, key: &Auth, report: &Report) -> Option<DiskReport> {
    let server = env.server.as_ref()?;
    let events = report.ingest1.as_ref().map_or(0, IngestSet::auditrelay_events)
        + report.ingest100.as_ref().map_or(0, IngestSet::auditrelay_events);
    let usage = dir_usage(&server.data_dir);
    let (canonical, canonical_error) = match canonical_sample(env.target, key).await {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Some(DiskReport {
        usage,
        events,
        sent_bytes: env.events.typical_len(),
        canonical,
        canonical_error,
    })
}

pub async fn run_scenarios(cli: &Cli, scenarios: &[Scenario], env: &Env<'_>) -> Result<Report> {
    let (target, operator) = (env.target, env.operator);
    let (duration, warmup) = (env.duration, env.warmup);
    let key = setup(target, operator, &cli.tenant)
        .await
        .context("setup (tenant + key)")?;
    let server_pid = env.server.as_ref().map(Server::pid);
    let mut report = Report::default();
    for &scenario in scenarios {
        let is_ingest = matches!(scenario, Scenario::Ingest1 | Scenario::Ingest100);
        if !is_ingest && report.disk.is_none() && (report.ingest1.is_some() || report.ingest100.is_some()) {
            report.disk = measure_disk(env, &key, &report).await;
        }
        match scenario {
            Scenario::Ingest1 | Scenario::Ingest100 => {
                let set = run_ingest(cli, env, &key, scenario, &mut report).await?;
                if scenario == Scenario::Ingest1 {
                    report.ingest1 = Some(set);
                } else {
                    report.ingest100 = Some(set);
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
                        events: env.events.clone(),
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
            Scenario::Backlog => {
                let tenant = format!("{}-backlog", cli.tenant);
                let bkey = setup(target, operator, &tenant)
                    .await
                    .context("backlog: setup (tenant + key)")?;
                // At least 60 s, or 2,000 events/s.
                let drain_timeout = cli.drain_timeout.max(cli.backlog_events as f64 / 2000.0).max(60.0);
                eprintln!(
                    "backlog: tenant {tenant}, sink paused; {} events ({} connections × {} event(s)/request), then resume and drain (≤ {:.0}s) …",
                    cli.backlog_events, cli.connections, cli.batch_size, drain_timeout,
                );
                let r = deliver::run_backlog(
                    target.clone(),
                    operator,
                    bkey,
                    &tenant,
                    BacklogConfig {
                        events: cli.backlog_events,
                        sink: SinkSettings {
                            max_events: 1000,
                            max_in_flight: cli.deliver_in_flight,
                        },
                        connections: cli.connections,
                        events_per_request: cli.batch_size,
                        drain_timeout: Duration::from_secs_f64(drain_timeout),
                        server_pid,
                        spec: env.events.clone(),
                    },
                )
                .await
                .context("backlog")?;
                if r.ingest.error_count() > 0 {
                    report.failures.push(format!(
                        "backlog: {} ingest errors (first: {})",
                        r.ingest.error_count(),
                        r.ingest.first_error.as_deref().unwrap_or("?")
                    ));
                }
                if r.delivered_while_paused > 0 {
                    report.failures.push(format!(
                        "backlog: {} events delivered while the sink was paused",
                        r.delivered_while_paused
                    ));
                }
                report.failures.extend(r.check.failures("backlog"));
                report.backlog = Some(r);
            }
            Scenario::ManySinks => {
                let Some(server_pid) = server_pid else {
                    report
                        .failures
                        .push("many-sinks: needs a server the bench starts (it reads its /proc)".into());
                    continue;
                };
                let r = crate::many_sinks::run(
                    target.clone(),
                    operator,
                    crate::many_sinks::ManySinksConfig {
                        sinks: cli.sinks,
                        dead_sinks: cli.dead_sinks,
                        concurrency: cli.connections,
                        window: duration,
                        server_pid,
                    },
                )
                .await
                .context("many-sinks")?;
                report.many_sinks = Some(r);
            }
            Scenario::Outbox => {
                let tenant = format!("{}-outbox", cli.tenant);
                setup(target, operator, &tenant)
                    .await
                    .context("outbox: setup (tenant + key)")?;
                let r = crate::outbox::run(
                    target.clone(),
                    operator,
                    crate::outbox::OutboxConfig {
                        rows: cli.outbox_rows,
                        batch_size: cli.outbox_batch,
                        runs: cli.runs,
                        postgres_admin_url: cli.outbox_postgres.clone(),
                        mysql_admin_url: cli.outbox_mysql.clone(),
                        tenant,
                        server_pid,
                    },
                )
                .await
                .context("outbox")?;
                report.outbox = r;
            }
            Scenario::Peers => report
                .failures
                .push("peers runs on its own (`auditrelay-bench peers`), not beside other scenarios".into()),
            Scenario::All => {}
        }
    }
    if report.disk.is_none() && (report.ingest1.is_some() || report.ingest100.is_some()) {
        report.disk = measure_disk(env, &key, &report).await;
    }
    Ok(report)
}
