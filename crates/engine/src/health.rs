//! `/health` of a sink and the lag gauge: where each cursor stands against its tenant's head,
//! plus the live status (breaker, backoff, counters, latency percentiles).

use auditrelay_store::{SinkRow, Store};
use serde_json::{json, Value};

use crate::spec::SinkSpec;
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

pub(crate) async fn health(shared: &EngineShared, row: &SinkRow) -> Result<Value, EngineError> {
    let spec: SinkSpec = serde_json::from_str(&row.spec).map_err(|e| EngineError::Spec(e.to_string()))?;
    let pos = positions(shared.store.as_ref(), row, &spec).await?;
    let status = shared.status(&row.id, &spec).snapshot();
    let dead_letters = shared.store.count_dead_letters(&row.id).await?;
    let total_lag: u64 = pos.iter().map(|(_, c, h)| lag(&spec, *c, *h)).sum();
    let state = if row.paused {
        "paused"
    } else if status.circuit_open {
        "circuit_open"
    } else if status.backing_off {
        "backing_off"
    } else {
        "active"
    };
    let c = status.counters;
    Ok(json!({
        "sink_id": row.id,
        "state": state,
        "paused": row.paused,
        "pause_reason": row.pause_reason,
        "lag": total_lag,
        "tenants": pos.iter().map(|(t, cur, head)| json!({
            "tenant": t, "cursor": cur, "head": head, "lag": lag(&spec, *cur, *head),
        })).collect::<Vec<_>>(),
        "consecutive_failures": status.consecutive_failures,
        "consecutive_exhausted_batches": status.consecutive_exhausted,
        "last_error": status.last_error,
        "last_success_at": status.last_success_at,
        "success_count": c.delivered_batches,
        "failure_count": c.failed_attempts,
        "delivered_events": c.delivered_events,
        "retried_attempts": c.retried_attempts,
        "dead_lettered_batches": c.dead_lettered_batches,
        "dead_lettered_events": c.dead_lettered_events,
        "dead_letters": dead_letters,
        "latency_ms": status.latency_ms.map(|(p50, p90, p99)| json!({
            "p50": round3(p50), "p90": round3(p90), "p99": round3(p99),
        })),
        "counts_since": shared.started_at,
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
