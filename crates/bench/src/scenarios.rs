//! Running the selected scenarios against a server: the tenant and key setup, then each
//! scenario in turn, its failures collected into the [`Report`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;

use crate::cli::{Cli, Scenario};
use crate::deliver::{self, LatencyConfig, SinkSettings, ThroughputConfig};
use crate::http::{Auth, Conn, Target};
use crate::load::{self, LoadConfig};
use crate::report::Report;
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

pub async fn run_scenarios(
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
