//! Prometheus metrics (`GET /metrics`). Names are documented in the README.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_INGESTED: &str = "auditrelay_events_ingested_total";
pub const INGEST_REQUESTS: &str = "auditrelay_ingest_requests_total";
pub const INGEST_LATENCY: &str = "auditrelay_ingest_latency_seconds";
pub const COMMIT_GROUP_REQUESTS: &str = "auditrelay_commit_group_requests";
pub const COMMIT_GROUP_EVENTS: &str = "auditrelay_commit_group_events";
pub const LOG_HEAD: &str = "auditrelay_log_head";
pub const DUPLICATES: &str = "auditrelay_events_duplicate_total";
pub const PURGED: &str = "auditrelay_retention_purged_events_total";
pub const PURGE_FORCED: &str = "auditrelay_retention_forced_purges_total";

pub struct Metrics {
    handle: Option<PrometheusHandle>,
}

impl Metrics {
    /// Installs the process-wide recorder. A second install (tests in one process) keeps the
    /// first and renders nothing from this instance.
    pub fn install() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(INGEST_LATENCY.into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(auditrelay_engine::metrics::DELIVERY_LATENCY.into()),
                    auditrelay_engine::metrics::LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Prefix("auditrelay_commit_group".into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0,
                    ],
                )
            });
        let handle = builder.ok().and_then(|b| b.install_recorder().ok());
        if handle.is_none() {
            tracing::warn!("metrics recorder already installed; /metrics will be empty");
        }
        Metrics { handle }
    }

    pub fn render(&self) -> String {
        self.handle.as_ref().map(|h| h.render()).unwrap_or_default()
    }
}

pub fn observe_group(requests: usize, events: usize, heads: &std::collections::HashMap<String, u64>) {
    metrics::histogram!(COMMIT_GROUP_REQUESTS).record(requests as f64);
    metrics::histogram!(COMMIT_GROUP_EVENTS).record(events as f64);
    for (tenant, head) in heads {
        metrics::gauge!(LOG_HEAD, "tenant" => tenant.clone()).set(*head as f64);
    }
}

pub fn ingest_request(tenant: &str, status: u16) {
    metrics::counter!(INGEST_REQUESTS, "tenant" => tenant.to_owned(), "status" => status.to_string()).increment(1);
}
