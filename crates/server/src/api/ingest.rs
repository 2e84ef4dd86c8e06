//! `POST /v1/events`: validate everything first, then append durably, then answer 202.

use auditrelay_core::{parse_request, BodyFormat, NewEvent};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::append::{
    append_events, refuse_far_oversized, refuse_system_tenant, requested_tenant, IngestRequestMetrics,
};
use super::doc;
use super::extract::{media_type, read_limited, unsupported_media_type, ApiQuery};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
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
        doc::BodyRequestErrors,
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
    let request_metrics =
        IngestRequestMetrics::start(&principal, query.as_ref().ok().and_then(|q| q.0.tenant.as_deref()));
    let result = ingest(&state, principal, query, &headers, body).await;
    let status = match &result {
        Ok(_) => StatusCode::ACCEPTED,
        Err(e) => e.status,
    };
    request_metrics.finish(status);
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
    refuse_far_oversized(headers, state.limits.max_request_bytes)?;
    // The operator may leave it to each event's `tenant_id`; a key's events may name only its own.
    let default_tenant = requested_tenant(&principal, query.tenant.as_deref())?;
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
        refuse_system_tenant(&tenant).map_err(|mut e| {
            e.message = format!("event {}: {}", ev.index, e.message);
            e.with_detail(json!({ "index": ev.index, "field": "tenant_id" }))
        })?;
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
