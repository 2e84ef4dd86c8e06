//! `POST /v1/events`: validate everything first, then append durably, then answer 202.

use std::time::Instant;

use auditrelay_core::{parse_request, BodyFormat, NewEvent};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::doc;
use super::extract::{media_type, read_limited, unsupported_media_type, ApiQuery};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::metrics::{self as m};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// Operator token: the tenant to append to (or name it per event with `tenant_id`). A tenant
    /// key may omit it or give its own tenant; another answers `404`, like a missing tenant.
    tenant: Option<String>,
}

/// `202`: every event of the request is durable.
#[derive(Serialize, ToSchema)]
#[schema(as = IngestResponse, example = json!({"accepted": 2, "events": [{"id": "evt-1", "offset": 41, "duplicate": true}, {"id": "0190b5d2-7c1e-7f3a-9a51-3f0e9c2d4b11", "offset": 42}]}))]
pub struct IngestAnswer<'a> {
    /// Events in the request (duplicates included).
    #[schema(minimum = 1)]
    accepted: usize,
    /// One entry per event, in request order.
    events: Vec<AcceptedEvent<'a>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = IngestedEvent)]
pub struct AcceptedEvent<'a> {
    /// The client's id, or the one the server generated (time-ordered).
    #[schema(value_type = super::event_doc::EventId)]
    id: &'a str,
    /// The event's offset in its tenant's log; for a duplicate, the original's.
    #[schema(minimum = 1)]
    offset: u64,
    /// Present (and `true`) when this id was already stored: nothing was stored again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(value_type = Option<bool>, nullable = false)]
    duplicate: bool,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match media_type(ct).as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Ok(BodyFormat::Ndjson),
        _ => Err(unsupported_media_type(ct, "application/json or application/x-ndjson")),
    }
}

/// Append events. The answer comes only after the events are durable (fsync'd); a request is all
/// or nothing: any invalid event rejects it whole with `400` naming the index and field.
#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "ingestEvents",
    tag = "events",
    params(IngestQuery),
    request_body(
        description = "One event, a JSON array of events, or NDJSON (one event per line; `application/ndjson`, `application/jsonl`, `application/x-jsonlines` and `application/jsonlines` are accepted too).",
        content(
            (super::event_doc::EventsBody = "application/json", example = json!([
                {"id": "evt-1", "type": "decision.rejected", "actor": {"id": "usr_123", "ip_address": "203.0.113.42"},
                 "action": "reject", "target": {"type": "decision", "id": "dec_9"}, "outcome": "success", "severity": 9},
                {"type": "auth.login", "actor": {"id": "usr_123"}}
            ])),
            (super::event_doc::NdjsonEvents = "application/x-ndjson", example = json!([
                {"type": "auth.login", "actor": {"id": "usr_1"}},
                {"type": "auth.logout", "actor": {"id": "usr_1"}}
            ])),
        )
    ),
    responses(
        (status = 202, description = "Durable: each event's id and offset, in request order.", body = IngestAnswer),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["ingest"])),
)]
pub async fn post_events(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    query: Result<ApiQuery<IngestQuery>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let tenant_label = match &principal {
        Ok(Principal::Tenant { tenant, .. }) => tenant.clone(),
        Ok(Principal::Operator) => query
            .as_ref()
            .ok()
            .and_then(|q| q.0.tenant.clone())
            .unwrap_or_else(|| "_operator".into()),
        Err(_) => "_unauthenticated".into(),
    };
    let result = ingest(&state, principal, query, &headers, body).await;
    let status = match &result {
        Ok(_) => StatusCode::ACCEPTED,
        Err(e) => e.status,
    };
    m::ingest_request(&tenant_label, status.as_u16());
    metrics::histogram!(m::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
    match result {
        Ok(body) => (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ingest(
    state: &AppState,
    principal: Result<Principal, ApiError>,
    query: Result<ApiQuery<IngestQuery>, ApiError>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<String> {
    let principal = principal?;
    principal.require(Scope::Ingest)?;
    let ApiQuery(query) = query?;
    let format = body_format(headers)?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Refuse early only far past the limit; near it, read and drain so the 413 arrives.
        if len > 16 * state.limits.max_request_bytes {
            return Err(auditrelay_core::IngestError::RequestTooLarge {
                size: len,
                limit: state.limits.max_request_bytes,
            }
            .into());
        }
    }
    let default_tenant = match &principal {
        Principal::Operator => query.tenant.clone(),
        // A tenant key may name its own tenant; naming another is refused below per event.
        Principal::Tenant { tenant, .. } => Some(tenant.clone()),
    };
    if let (Principal::Tenant { tenant, .. }, Some(asked)) = (&principal, &query.tenant) {
        if asked != tenant {
            // Another tenant answers exactly like a missing one, so tenant ids cannot be probed.
            return Err(ApiError::not_found(format!("tenant `{asked}` not found")));
        }
    }
    let bytes = read_limited(body, state.limits.max_request_bytes).await?;
    let parsed = parse_request(&bytes, format, &state.limits)?;

    // Settle every event's tenant before anything is stored: all or nothing.
    let received_at = state.clock.now_rfc3339();
    let mut events: Vec<NewEvent> = Vec::with_capacity(parsed.len());
    let mut checked: Vec<String> = Vec::new();
    for ev in parsed {
        let tenant = match (&principal, ev.tenant_claim.as_deref(), default_tenant.as_deref()) {
            (Principal::Tenant { tenant, .. }, Some(claim), _) if claim != tenant => {
                return Err(
                    ApiError::not_found(format!("event {}: tenant `{claim}` not found", ev.index))
                        .with_detail(json!({ "index": ev.index, "field": "tenant_id" })),
                );
            }
            (_, Some(claim), _) => claim.to_owned(),
            (_, None, Some(default)) => default.to_owned(),
            (_, None, None) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_event",
                    format!(
                        "event {}: the operator token must name the tenant with ?tenant= or the event's tenant_id",
                        ev.index
                    ),
                )
                .with_detail(json!({ "index": ev.index, "field": "tenant_id" })));
            }
        };
        if tenant == auditrelay_core::ids::SYSTEM_TENANT {
            // The system trail records what was done to this server; nobody may forge it.
            return Err(ApiError::forbidden(format!(
                "event {}: the `{}` tenant is written by auditrelay itself",
                ev.index,
                auditrelay_core::ids::SYSTEM_TENANT
            ))
            .with_detail(json!({ "index": ev.index, "field": "tenant_id" })));
        }
        if !checked.contains(&tenant) {
            state.tenants.ensure(state.store.as_ref(), &tenant).await?;
            checked.push(tenant.clone());
        }
        events.push(ev.into_new_event(tenant, &received_at));
    }

    let outcomes = append_events(state.store.as_ref(), events).await?;

    // The answer borrows the ids: serde_json::json! (a `Value` per event) was a visible cost at
    // 100 events, a typed struct serialized directly is not.
    let answer = IngestAnswer {
        accepted: outcomes.len(),
        events: outcomes
            .iter()
            .map(|outcome| AcceptedEvent {
                id: &outcome.id,
                offset: outcome.offset,
                duplicate: outcome.duplicate,
            })
            .collect(),
    };
    serde_json::to_string(&answer).map_err(|e| {
        tracing::error!(error = %e, "serializing the ingest answer");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the answer could not be written; the events are stored",
        )
    })
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
