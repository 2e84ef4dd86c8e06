//! `/health` of a sink and the lag gauge: where each cursor stands against its tenant's head,
//! plus the live status (breaker, backoff, counters, latency percentiles).
//!
//! The gauge costs nothing while nothing happens: a running sink's lanes set it when their
//! cursor or their tenant's head moves ([`publish_lag`]), and a paused sink has a watcher that
//! wakes only when one of its tenants' heads moves ([`watch_paused_lag`]). Nothing re-reads
//! every sink on a timer.

use std::sync::Arc;

use auditrelay_store::{SinkRow, Store};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::shared::EngineShared;
use crate::spec::{SinkSpec, StartAt};
use crate::status::{LastError, SinkState, SinkStatus};
use crate::tenants::tenants_of;
use crate::EngineError;

/// Per tenant: (tenant, committed cursor if any, head).
pub(crate) async fn positions(
    store: &dyn Store,
    row: &SinkRow,
    spec: &SinkSpec,
) -> Result<Vec<(String, Option<u64>, u64)>, EngineError> {
    let cursors: std::collections::HashMap<String, u64> = store.cursors_of(&row.id).await?.into_iter().collect();
    let mut out = Vec::new();
    for tenant in tenants_of(store, row, spec).await? {
        let head = store.head(&tenant).await?;
        out.push((tenant.clone(), cursors.get(&tenant).copied(), head));
    }
    Ok(out)
}

/// Lag of one tenant: events the sink has yet to pass. Before its first lane start a sink
/// starting at `now` owes nothing; one starting earlier owes up to the head.
fn lag(spec: &SinkSpec, cursor: Option<u64>, head: u64) -> u64 {
    match cursor {
        Some(c) => head.saturating_sub(c),
        None if spec.start_at == StartAt::Now => 0,
        None => head,
    }
}

/// Records what one tenant still owes the sink and sets the sink's lag gauge to the new total.
pub(crate) fn publish_lag(sink_id: &str, status: &SinkStatus, tenant: &str, lag: u64) {
    let total = status.set_lag(tenant, lag);
    metrics::gauge!(crate::metrics::LAG, "sink" => sink_id.to_owned()).set(total as f64);
}

/// Keeps a paused sink's lag gauge current until `stop`: its cursors do not move while it is
/// paused, so only the heads are followed, each through its tenant's notifier.
pub(crate) async fn watch_paused_lag(
    store: Arc<dyn Store>,
    row: SinkRow,
    status: Arc<SinkStatus>,
    stop: CancellationToken,
) {
    let Ok(spec) = SinkSpec::from_stored(&row.spec) else {
        return;
    };
    let positions = tokio::select! {
        _ = stop.cancelled() => return,
        p = positions(store.as_ref(), &row, &spec) => p,
    };
    let Ok(positions) = positions else {
        // The gauge keeps its last value; the next reload tries again.
        return;
    };
    status.clear_lags();
    let mut heads = stream::select_all(positions.into_iter().map(|(tenant, cursor, head)| {
        // Subscribed after the head was read: an append in between is seen as a change.
        let rx = store.subscribe(&tenant);
        publish_lag(&row.id, &status, &tenant, lag(&spec, cursor, head));
        Box::pin(stream::unfold(
            (tenant, cursor, rx),
            |(tenant, cursor, mut rx)| async move {
                rx.changed().await.ok()?;
                let head = *rx.borrow_and_update();
                Some(((tenant.clone(), cursor, head), (tenant, cursor, rx)))
            },
        ))
    }));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            next = heads.next() => match next {
                Some((tenant, cursor, head)) => publish_lag(&row.id, &status, &tenant, lag(&spec, cursor, head)),
                None => return,
            },
        }
    }
}

/// `GET /v1/sinks/{id}/health`. Counters are since this process started (`counts_since`);
/// the delivery log keeps the durable history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkHealth {
    pub sink_id: String,
    pub state: SinkState,
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// Events behind the log head, summed over the tenants the sink reads.
    pub lag: u64,
    pub tenants: Vec<TenantPosition>,
    pub consecutive_failures: u32,
    pub consecutive_exhausted_batches: u32,
    pub last_error: Option<LastError>,
    pub last_success_at: Option<String>,
    /// Delivered batches.
    pub success_count: u64,
    /// Failed attempts.
    pub failure_count: u64,
    pub delivered_events: u64,
    pub retried_attempts: u64,
    pub dead_lettered_batches: u64,
    pub dead_lettered_events: u64,
    /// Events the sink's `filter` said no to (the cursor passed them).
    pub filtered_events: u64,
    /// Events the `filter` could not be evaluated on (a missing field, a wrong type): counted as no.
    pub filter_errors: u64,
    /// Dead letters kept now.
    pub dead_letters: u64,
    /// Percentiles of recent successful attempts; `null` before the first.
    pub latency_ms: Option<LatencyPercentiles>,
    #[schema(format = DateTime)]
    pub counts_since: String,
}

/// Where the sink's cursor stands in one tenant's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SinkTenantPosition)]
pub struct TenantPosition {
    pub tenant: String,
    /// The committed cursor; `null` before the first delivery from this tenant.
    pub cursor: Option<u64>,
    pub head: u64,
    pub lag: u64,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct LatencyPercentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

pub(crate) async fn health(shared: &EngineShared, row: &SinkRow) -> Result<SinkHealth, EngineError> {
    let spec = SinkSpec::from_stored(&row.spec)?;
    let pos = positions(shared.store.as_ref(), row, &spec).await?;
    let status = shared.status(&row.id, &spec).snapshot();
    let dead_letters = shared.store.count_dead_letters(&row.id).await?;
    let total_lag: u64 = pos.iter().map(|(_, c, h)| lag(&spec, *c, *h)).sum();
    let state = SinkState::of(row.paused, &status);
    let c = status.counters;
    Ok(SinkHealth {
        sink_id: row.id.clone(),
        state,
        paused: row.paused,
        pause_reason: row.pause_reason.clone(),
        lag: total_lag,
        tenants: pos
            .iter()
            .map(|(t, cur, head)| TenantPosition {
                tenant: t.clone(),
                cursor: *cur,
                head: *head,
                lag: lag(&spec, *cur, *head),
            })
            .collect(),
        consecutive_failures: status.consecutive_failures,
        consecutive_exhausted_batches: status.consecutive_exhausted,
        last_error: status.last_error,
        last_success_at: status.last_success_at,
        success_count: c.delivered_batches,
        failure_count: c.failed_attempts,
        delivered_events: c.delivered_events,
        retried_attempts: c.retried_attempts,
        dead_lettered_batches: c.dead_lettered_batches,
        dead_lettered_events: c.dead_lettered_events,
        filtered_events: c.filtered_events,
        filter_errors: c.filter_errors,
        dead_letters,
        latency_ms: status.latency_ms.map(|(p50, p90, p99)| LatencyPercentiles {
            p50: round3(p50),
            p90: round3(p90),
            p99: round3(p99),
        }),
        counts_since: shared.started_at.clone(),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
