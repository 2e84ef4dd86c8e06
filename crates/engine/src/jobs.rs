//! Deliveries outside the main cursor: a test delivery, a dead-letter retry, and replay of a
//! range. None of them moves the sink's cursor: they are separate jobs with their own progress,
//! so a replay can never push the main cursor past an undelivered event or pull it back.

use std::sync::{Arc, Mutex};

use auditrelay_core::ids::{ReplayId, SinkId, TenantId};

use auditrelay_core::StoredEvent;
use auditrelay_sinks::Outcome;
use auditrelay_store::{DeadLetter, ReadQuery, SinkRow};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::deliver::{
    attempt_once, deliver_with_retries, observe, outcome_name, round_ms, BatchJob, TimedAttempt, Verdict,
};
use crate::shared::{DeliveryCtx, EngineShared};
use crate::stage::Staged;
use crate::EngineError;

/// What one immediate attempt gave.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptResult {
    /// The receiver accepted the delivery.
    pub delivered: bool,
    /// `delivered`, `retry` (a transient failure), `rejected` (a permanent one) or
    /// `misconfigured` (the sink's settings do not work).
    #[schema(value_type = AttemptOutcome)]
    pub outcome: String,
    /// The receiver's HTTP status, when there was one.
    pub status: Option<u16>,
    #[schema(minimum = 0)]
    pub latency_ms: f64,
    pub error: Option<String>,
}

/// How one delivery attempt ended: the names `outcome_name` gives.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum AttemptOutcome {
    Delivered,
    /// Some records of the batch were accepted, the others are retried.
    Partial,
    Retry,
    Rejected,
    Misconfigured,
}

fn result_of(timed: &TimedAttempt) -> AttemptResult {
    let report = &timed.report;
    AttemptResult {
        delivered: report.outcome == Outcome::Delivered,
        outcome: outcome_name(&report.outcome).to_owned(),
        status: report.status,
        latency_ms: round_ms(timed.latency.as_secs_f64() * 1000.0),
        error: report.error.clone(),
    }
}

/// A synthetic `system.test` event for `tenant`.
fn test_event(tenant: &str) -> StoredEvent {
    let id = auditrelay_core::ids::new_event_id();
    let now = auditrelay_core::time::now_rfc3339();
    let body = json!({
        "id": id,
        "tenant_id": tenant,
        "type": "system.test",
        "occurred_at": now,
        "received_at": now,
        "actor": {"id": "auditrelay", "type": "system"},
        "action": "test",
        "outcome": "success",
        "severity": 0,
        "metadata": {"message": "test delivery from auditrelay; not part of the audit log"},
    });
    StoredEvent {
        tenant_id: tenant.to_owned(),
        offset: 0,
        id,
        event_type: "system.test".into(),
        chain: None,
        body: body.to_string(),
    }
}

pub(crate) async fn test_delivery(shared: &EngineShared, row: &SinkRow) -> Result<AttemptResult, EngineError> {
    let ctx = shared.delivery_ctx(row)?;
    let tenant = row
        .owner_tenant
        .clone()
        .or_else(|| ctx.spec.tenants.as_ref().and_then(|t| t.first().cloned()))
        .unwrap_or_else(|| "system".into());
    let job = BatchJob {
        events: vec![test_event(&tenant)],
        tenant,
        commit_to: 0,
        id_salt: Some("test".into()),
    };
    let timed = attempt_once(&ctx, &job).await;
    observe(&ctx, &job, "test", 1, &timed, false);
    Ok(result_of(&timed))
}

/// The events a dead letter names, re-read from the log through the sink's filter.
async fn dead_letter_events(
    shared: &EngineShared,
    ctx: &DeliveryCtx,
    dl: &DeadLetter,
) -> Result<Vec<StoredEvent>, EngineError> {
    let span = dl.last_offset.saturating_sub(dl.first_offset) + 1;
    let mut events = shared
        .store
        .read(ReadQuery {
            tenant: dl.tenant_id.clone(),
            after: dl.first_offset.saturating_sub(1),
            limit: span.min(1_000_000) as usize,
            filter: ctx.spec.type_filter(),
        })
        .await?;
    events.retain(|e| e.offset <= dl.last_offset);
    Ok(events)
}

/// One attempt at a dead letter now. Delivered → the dead letter is deleted. Otherwise the
/// attempt joins its history and it stays.
pub(crate) async fn retry_dead_letter(
    shared: &EngineShared,
    row: &SinkRow,
    dl: &DeadLetter,
) -> Result<AttemptResult, EngineError> {
    let ctx = shared.delivery_ctx(row)?;
    let events = dead_letter_events(shared, &ctx, dl).await?;
    if events.is_empty() {
        return Err(EngineError::Gone(format!(
            "the events {}..={} of tenant `{}` are no longer in the log",
            dl.first_offset, dl.last_offset, dl.tenant_id
        )));
    }
    let job = BatchJob {
        tenant: dl.tenant_id.clone(),
        commit_to: dl.last_offset,
        id_salt: Some(dl.id.clone()),
        events,
    };
    let mut history: Vec<Value> = serde_json::from_str(&dl.attempts).unwrap_or_default();
    let timed = attempt_once(&ctx, &job).await;
    let attempt = observe(&ctx, &job, "dead_letter_retry", history.len() as u32 + 1, &timed, false);
    let result = result_of(&timed);
    if result.delivered {
        shared.store.delete_dead_letter(&row.id, &dl.id).await?;
    } else {
        history.push(attempt);
        shared
            .store
            .update_dead_letter_attempts(&row.id, &dl.id, &Value::Array(history).to_string())
            .await?;
    }
    Ok(result)
}

/// Where a replay is; shown as `running`, `completed`, `failed` or `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// Progress of a replay, as `GET /v1/sinks/{id}/replays/{replay}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Replay)]
pub struct ReplayInfo {
    #[schema(value_type = String, pattern = "^rpl_[0-9a-f]{32}$")]
    pub id: ReplayId,
    #[schema(value_type = String)]
    pub sink_id: SinkId,
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(minimum = 1)]
    pub from_offset: u64,
    #[schema(minimum = 1)]
    pub to_offset: u64,
    pub state: ReplayState,
    pub delivered_events: u64,
    pub dead_lettered_batches: u64,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

pub(crate) type ReplayTable = Mutex<std::collections::HashMap<ReplayId, (ReplayInfo, CancellationToken)>>;

fn update(table: &ReplayTable, id: &ReplayId, f: impl FnOnce(&mut ReplayInfo)) {
    if let Some((info, _)) = table.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
        f(info);
    }
}

/// Re-delivers offsets `from..=to` of one tenant to this sink only, in batches, with the sink's
/// retry policy. Exhausted batches become dead letters; a misconfigured receiver fails the
/// replay (the main lane pauses the sink on its own).
pub(crate) async fn run_replay(
    shared: Arc<EngineShared>,
    table: Arc<ReplayTable>,
    ctx: Arc<DeliveryCtx>,
    id: ReplayId,
    stop: CancellationToken,
) {
    let (tenant, from, to) = match table.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        Some((info, _)) => (info.tenant.to_string(), info.from_offset, info.to_offset),
        None => return,
    };
    let mut pos = from.saturating_sub(1);
    let filter = ctx.spec.type_filter();
    let (state, error) = loop {
        if pos >= to {
            break (ReplayState::Completed, None);
        }
        if stop.is_cancelled() {
            break (ReplayState::Cancelled, None);
        }
        let mut events = match shared
            .store
            .read(ReadQuery {
                tenant: tenant.clone(),
                after: pos,
                limit: ctx.spec.batch.max_events,
                filter: filter.clone(),
            })
            .await
        {
            Ok(e) => e,
            Err(e) => break (ReplayState::Failed, Some(format!("reading the log: {e}"))),
        };
        events.retain(|e| e.offset <= to);
        if events.is_empty() {
            break (ReplayState::Completed, None);
        }
        let last = events.last().map_or(to, |e| e.offset);
        // A replay sends what the sink would have sent: its filter and transform apply.
        if let Some(stage) = &ctx.stage {
            events = events
                .into_iter()
                .filter_map(|e| match stage.apply(e) {
                    Staged::Send(e) => Some(e),
                    Staged::Skip | Staged::FilterError(_) => None,
                })
                .collect();
            if events.is_empty() {
                pos = last;
                continue;
            }
        }
        let count = events.len() as u64;
        let job = BatchJob {
            tenant: tenant.clone(),
            events,
            commit_to: last,
            id_salt: Some(id.to_string()),
        };
        match deliver_with_retries(&ctx, &job, "replay", &stop).await {
            Verdict::Delivered { rejected } => {
                let refused: u64 = rejected.iter().map(|d| d.count).sum();
                for dead in rejected {
                    let dl = dead.into_dead_letter(&ctx.sink_id, &tenant, &format!("replay {id}: "));
                    if let Err(e) = shared.store.add_dead_letter(dl).await {
                        tracing::warn!(error = %e, "could not write a replay dead letter");
                    }
                }
                update(&table, &id, |i| i.delivered_events += count - refused);
            }
            Verdict::Exhausted(dead) => {
                let dl = dead.into_dead_letter(&ctx.sink_id, &tenant, &format!("replay {id}: "));
                if let Err(e) = shared.store.add_dead_letter(dl).await {
                    break (ReplayState::Failed, Some(format!("writing a dead letter: {e}")));
                }
                update(&table, &id, |i| i.dead_lettered_batches += 1);
            }
            Verdict::Misconfigured { reason } => break (ReplayState::Failed, Some(reason)),
            Verdict::Abandoned => break (ReplayState::Cancelled, None),
        }
        pos = last;
    };
    update(&table, &id, |i| {
        i.state = state;
        i.error = error;
        i.finished_at = Some(auditrelay_core::time::now_rfc3339());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_states_are_spelled_as_before() {
        let spelled: Vec<String> = [
            ReplayState::Running,
            ReplayState::Completed,
            ReplayState::Failed,
            ReplayState::Cancelled,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        assert_eq!(
            spelled,
            [r#""running""#, r#""completed""#, r#""failed""#, r#""cancelled""#]
        );
    }
}
