//! Operations on a running sink: a test delivery, health, pause and resume, replay.

use auditrelay_core::ids::{ReplayId, TenantId};
use auditrelay_core::time;
use auditrelay_engine::{AttemptResult, ReplayInfo, SinkHealth};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::view::SinkView;
use super::{not_found_sink, parse_spec, respond, visible_sink};
use crate::api::doc;
use crate::api::extract::ApiJson;
use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Deliver one synthetic `system.test` event now and answer what the receiver did, without
/// touching the cursor. A receiver's refusal is an answer (`delivered: false`), not an error.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/test",
    operation_id = "testSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "What the receiver answered.", body = AttemptResult),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn test_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<AttemptResult>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(state.engine.test_delivery(&row).await?))
}

/// The sink's state, lag, failures, counters and delivery latency.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/health",
    operation_id = "getSinkHealth",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "Health.", body = SinkHealth),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn sink_health(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkHealth>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(state.engine.health(&row).await?))
}

fn who(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "the operator".into(),
        Principal::Tenant { key_id, .. } => format!("key {key_id}"),
    }
}

/// Pause delivery: the cursor stays where it is; events keep arriving in the log.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/pause",
    operation_id = "pauseSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "The paused sink.", body = SinkView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn pause_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let reason = format!("paused by {}", who(&principal));
    let row = state
        .store
        .set_sink_paused(&row.id, true, Some(&reason))
        .await?
        .ok_or_else(|| not_found_sink(&id))?;
    state.engine.reload(&row.sink_id());
    audit::sink_event(&state, &principal, "sink.paused", "pause", &row, json!({})).await?;
    respond(&state, &row)
}

/// Resume delivery from the committed cursor (also after a pause on exhausted retries).
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/resume",
    operation_id = "resumeSink",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    responses(
        (status = 200, description = "The resumed sink.", body = SinkView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn resume_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let row = state
        .store
        .set_sink_paused(&row.id, false, None)
        .await?
        .ok_or_else(|| not_found_sink(&id))?;
    state.engine.resumed(&row.sink_id());
    audit::sink_event(&state, &principal, "sink.resumed", "resume", &row, json!({})).await?;
    respond(&state, &row)
}

/// A position in a replay body: an offset (integer ≥ 1) or an RFC 3339 time.
enum Position {
    Offset(u64),
    Time(String),
}

fn position(body: &Map<String, Value>, field: &str) -> ApiResult<Option<Position>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().or_else(|| auditrelay_core::integral(n.as_f64())) {
            Some(o) if o >= 1 => Ok(Some(Position::Offset(o))),
            _ => Err(ApiError::invalid_field(
                field,
                format!("`{field}` offset must be an integer ≥ 1"),
            )),
        },
        Some(Value::String(s)) if time::parse_rfc3339(s).is_some() => Ok(Some(Position::Time(s.clone()))),
        Some(Value::String(s)) if s.parse::<u64>().is_ok_and(|o| o >= 1) => {
            Ok(Some(Position::Offset(s.parse().unwrap_or(1))))
        }
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("`{field}` must be an offset (integer ≥ 1) or an RFC 3339 time"),
        )),
    }
}

/// A replay range: `from` and `to` are offsets (integers ≥ 1, or their decimal strings) or
/// RFC 3339 times (events received from `from`, before `to`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": 1, "to": 500}))]
#[allow(dead_code)] // Only its schema is used; `replay_sink` reads the body.
pub struct ReplayRequest {
    from: ReplayPosition,
    /// Default: the log head. An offset past the head means the head.
    to: Option<ReplayPosition>,
    /// The tenant to replay: required for an operator sink over several tenants; a tenant's
    /// sink replays its own tenant.
    tenant: Option<String>,
}

doc::json_schema! {
    /// An offset, as a number or its decimal string, or an RFC 3339 time.
    pub struct ReplayPosition = {
        "description": "An offset (an integer ≥ 1, or its decimal string) or an RFC 3339 time.",
        "oneOf": [
            { "type": "integer", "minimum": 1, "maximum": 18446744073709551615u64 },
            { "type": "string", "pattern": "^[1-9][0-9]{0,18}$" },
            { "type": "string", "format": "date-time" }
        ]
    }
}

/// Re-deliver a range of the log to this sink only, beside its normal delivery (its cursor
/// does not move). Answers at once; follow the replay with `GET …/replays/{replay}`.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/replay",
    operation_id = "startReplay",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`).")),
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Started.", body = ReplayInfo),
        (status = 400, description = "`invalid_json`, or `invalid_request` naming the field (`from`, `to`, `tenant`).", body = ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn replay_sink(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> ApiResult<(StatusCode, Json<ReplayInfo>)> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiJson(body) = body?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some(unknown) = body.keys().find(|k| !["from", "to", "tenant"].contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown field `{unknown}` (known: from, to, tenant)"),
        ));
    }
    let spec = parse_spec(&row)?;
    let requested = match body.get("tenant") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(ApiError::invalid_field("tenant", "tenant must be a string")),
    };
    let tenant = match (&row.owner_tenant, &spec.tenants, requested) {
        (Some(owner), _, None) => owner.clone(),
        (Some(owner), _, Some(t)) if &t == owner => t,
        (Some(_), _, Some(t)) => return Err(ApiError::not_found(format!("tenant `{t}` not found"))),
        (None, Some(list), None) if list.len() == 1 => list[0].clone(),
        (None, Some(list), Some(t)) if !list.contains(&t) => {
            return Err(ApiError::invalid_field(
                "tenant",
                format!("this sink does not read tenant `{t}`"),
            ))
        }
        (None, _, Some(t)) => t,
        (None, _, None) => {
            return Err(ApiError::invalid_field(
                "tenant",
                "this sink reads several tenants: name the one to replay (`tenant`)",
            ))
        }
    };
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    let head = state.store.head(&tenant).await?;
    let from = match position(&body, "from")? {
        None => {
            return Err(ApiError::invalid_field(
                "from",
                "`from` is required (an offset or a time)",
            ))
        }
        Some(Position::Offset(o)) => o,
        Some(Position::Time(t)) => state.store.offset_at_time(&tenant, &t).await? + 1,
    };
    let to = match position(&body, "to")? {
        None => head,
        Some(Position::Offset(o)) => o.min(head),
        Some(Position::Time(t)) => state.store.offset_at_time(&tenant, &t).await?,
    };
    if from > to {
        return Err(ApiError::invalid_field(
            "from",
            format!("the range is empty: from offset {from} to offset {to} (the log head is {head})"),
        )
        .with_detail(json!({ "field": "from", "from_offset": from, "to_offset": to, "head": head })));
    }
    let info = state
        .engine
        .start_replay(&row, &TenantId::from_stored(tenant.clone()), from, to)?;
    audit::sink_event(
        &state,
        &principal,
        "sink.replayed",
        "replay",
        &row,
        json!({ "replay_id": info.id, "replay_tenant": tenant, "from_offset": from, "to_offset": to }),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(info)))
}

/// A replay's progress (kept in memory by the node that runs it).
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/replays/{replay}",
    operation_id = "getReplay",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("replay" = String, Path, description = "The replay id (`rpl_…`).")),
    responses(
        (status = 200, description = "Progress.", body = ReplayInfo),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn get_replay(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, replay)): Path<(String, String)>,
) -> ApiResult<Json<ReplayInfo>> {
    let row = visible_sink(&state, &principal, &id).await?;
    state
        .engine
        .replay(&row.sink_id(), &ReplayId::from_stored(replay.clone()))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("replay `{replay}` not found")))
}
