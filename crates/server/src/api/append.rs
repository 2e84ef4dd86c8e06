//! What the ways events come in over HTTP (`POST /v1/events`, `POST /otlp/v1/logs`) share, and
//! the durable append that sources share too: which tenant a request appends to, the early
//! refusal of a body declared far too large, the request metrics, and the group commit with its
//! per-tenant counters. One home, so the tenant rules and the error answers cannot drift apart.

use std::time::Instant;

use auditrelay_core::ids::SYSTEM_TENANT;
use auditrelay_core::{IngestError, NewEvent};
use axum::http::{header, HeaderMap, StatusCode};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{self as m};

/// The tenant a request names: the operator's `?tenant=` (`None` when it gives none), or a
/// tenant key's own tenant. A tenant key naming another tenant is answered exactly like a
/// missing tenant (`404`), so tenant ids cannot be probed.
pub(crate) fn requested_tenant(principal: &Principal, asked: Option<&str>) -> ApiResult<Option<String>> {
    match (principal, asked) {
        (Principal::Operator, asked) => Ok(asked.map(str::to_owned)),
        (Principal::Tenant { tenant, .. }, Some(asked)) if asked != tenant => {
            Err(ApiError::not_found(format!("tenant `{asked}` not found")))
        }
        (Principal::Tenant { tenant, .. }, _) => Ok(Some(tenant.clone())),
    }
}

/// Refuses appending to the system trail: it records what was done to this server, and nobody
/// may forge it.
pub(crate) fn refuse_system_tenant(tenant: &str) -> ApiResult<()> {
    if tenant == SYSTEM_TENANT {
        return Err(ApiError::forbidden(format!(
            "the `{SYSTEM_TENANT}` tenant is written by auditrelay itself"
        )));
    }
    Ok(())
}

/// Refuses a body whose `Content-Length` is far past `limit` before reading it; near the limit
/// the body is read (and drained) so that the 413 arrives instead of a reset connection.
pub(crate) fn refuse_far_oversized(headers: &HeaderMap, limit: usize) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(size) if size > 16 * limit => Err(IngestError::RequestTooLarge { size, limit }.into()),
        _ => Ok(()),
    }
}

/// The metrics of one ingest request: counted under its tenant (or `_operator`,
/// `_unauthenticated`) with its status, and its latency.
pub(crate) struct IngestRequestMetrics {
    started: Instant,
    tenant_label: String,
}

impl IngestRequestMetrics {
    /// Starts the clock; `asked` is the request's `?tenant=`, when its query could be read.
    pub(crate) fn start(principal: &Result<Principal, ApiError>, asked: Option<&str>) -> Self {
        let tenant_label = match principal {
            Ok(Principal::Tenant { tenant, .. }) => tenant.clone(),
            Ok(Principal::Operator) => asked.unwrap_or("_operator").to_owned(),
            Err(_) => "_unauthenticated".into(),
        };
        IngestRequestMetrics {
            started: Instant::now(),
            tenant_label,
        }
    }

    pub(crate) fn finish(self, status: StatusCode) {
        m::ingest_request(&self.tenant_label, status.as_u16());
        metrics::histogram!(m::INGEST_LATENCY).record(self.started.elapsed().as_secs_f64());
    }
}

/// The append every way in shares (`POST /v1/events`, OTLP, sources): validated events of known
/// tenants, one durable group commit, then the per-tenant counters. Returns only once the
/// events are durable.
pub(crate) async fn append_events(
    store: &dyn auditrelay_store::Store,
    events: Vec<NewEvent>,
) -> Result<Vec<auditrelay_store::AppendOutcome>, auditrelay_store::StoreError> {
    // Each event's tenant, run-length encoded (a request almost always names one tenant).
    let mut tenant_runs: Vec<(String, usize)> = Vec::with_capacity(1);
    for e in &events {
        match tenant_runs.last_mut() {
            Some((tenant, n)) if *tenant == e.tenant_id => *n += 1,
            _ => tenant_runs.push((e.tenant_id.clone(), 1)),
        }
    }
    let outcomes = store.append(events).await?;
    let tenants_of = tenant_runs
        .iter()
        .flat_map(|(tenant, n)| std::iter::repeat_n(tenant, *n));
    // Metrics are aggregated per tenant so a 100-event request costs a few updates, not 200.
    let mut per_tenant: Vec<(&str, u64, u64)> = Vec::new(); // (tenant, stored, duplicates)
    for (outcome, tenant) in outcomes.iter().zip(tenants_of) {
        let idx = match per_tenant.iter().position(|(t, ..)| *t == tenant.as_str()) {
            Some(i) => i,
            None => {
                per_tenant.push((tenant.as_str(), 0, 0));
                per_tenant.len() - 1
            }
        };
        let entry = &mut per_tenant[idx];
        if outcome.duplicate {
            entry.2 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for (tenant, stored, duplicates) in per_tenant {
        if stored > 0 {
            metrics::counter!(m::EVENTS_INGESTED, "tenant" => tenant.to_owned()).increment(stored);
        }
        if duplicates > 0 {
            metrics::counter!(m::DUPLICATES, "tenant" => tenant.to_owned()).increment(duplicates);
        }
    }
    Ok(outcomes)
}
