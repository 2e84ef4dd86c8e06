//! `/health` of a sink and the lag gauge: where each cursor stands against its tenant's head,
//! plus the live status (breaker, backoff, counters, latency percentiles).

use auditrelay_store::{SinkRow, Store};
use serde::Serialize;
use utoipa::ToSchema;

use crate::spec::SinkSpec;
use crate::status::LastError;
use crate::supervisor::{tenants_of, EngineShared};
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
        None if spec.start_at == "now" => 0,
        None => head,
    }
}

pub(crate) async fn publish_lag(shared: &EngineShared, sink_ids: &[String]) {
    for id in sink_ids {
        let Ok(Some(row)) = shared.store.sink(id).await else {
            continue;
        };
        let Ok(spec) = serde_json::from_str::<SinkSpec>(&row.spec) else {
            continue;
        };
        if let Ok(pos) = positions(shared.store.as_ref(), &row, &spec).await {
            let total: u64 = pos.iter().map(|(_, c, h)| lag(&spec, *c, *h)).sum();
            metrics::gauge!(crate::metrics::LAG, "sink" => id.clone()).set(total as f64);
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
    /// Dead letters kept now.
    pub dead_letters: u64,
    /// Percentiles of recent successful attempts; `null` before the first.
    pub latency_ms: Option<LatencyPercentiles>,
    #[schema(format = DateTime)]
    pub counts_since: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkState {
    Active,
    BackingOff,
    CircuitOpen,
    Paused,
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
    let spec: SinkSpec = serde_json::from_str(&row.spec).map_err(|e| EngineError::Spec(e.to_string()))?;
    let pos = positions(shared.store.as_ref(), row, &spec).await?;
    let status = shared.status(&row.id, &spec).snapshot();
    let dead_letters = shared.store.count_dead_letters(&row.id).await?;
    let total_lag: u64 = pos.iter().map(|(_, c, h)| lag(&spec, *c, *h)).sum();
    let state = if row.paused {
        SinkState::Paused
    } else if status.circuit_open {
        SinkState::CircuitOpen
    } else if status.backing_off {
        SinkState::BackingOff
    } else {
        SinkState::Active
    };
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
