//! Pull consumption: `GET /v1/events` (long-poll) and `GET /v1/stream` (SSE).
//!
//! Both wait on the store's per-tenant notifier, never on a timer against the database: a
//! waiting request wakes the moment a commit moves its tenant's head.

use std::convert::Infallible;
use std::time::Duration;

use auditrelay_core::{StoredEvent, TypeFilter};
use auditrelay_store::ReadQuery;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use super::doc;
use super::extract::ApiQuery;
use crate::abuse::StreamSlot;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const MAX_WAIT_SECS: f64 = 60.0;
/// Events read per step of an SSE stream.
const SSE_BATCH: usize = 500;

// Numbers arrive as strings so that a bad one is answered by `parse_u64` naming it; the
// `param` attributes give the OpenAPI document the rules those parsers enforce.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// The tenant to read. Required with the operator token (else `400 invalid_parameter`); a
    /// tenant key may omit it or give its own tenant (another answers `404`).
    tenant: Option<String>,
    /// Return events with offsets greater than this (the previous answer's `next_cursor`).
    /// Default 0: from the start of the log.
    #[param(value_type = Option<u64>, minimum = 0, default = 0)]
    after: Option<String>,
    /// Most events to return: 1–1000, default 100.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<String>,
    /// Seconds (fractions allowed) to hold the request while no event is after the cursor:
    /// 0–60, default 0 (answer at once). It answers the moment an event commits.
    #[param(value_type = Option<f64>, minimum = 0, maximum = 60, default = 0)]
    wait: Option<String>,
    /// Comma-separated type globs (e.g. `decision.*,auth.login`): only matching events.
    /// `*` matches any run of characters (dots included), `?` exactly one. Each glob is 1–128
    /// characters of `[a-z0-9_.*?-]`; absent = all types.
    #[param(
        pattern = r"^[a-z0-9_.*?-]{1,128}(,[a-z0-9_.*?-]{1,128})*$",
        example = "decision.*,auth.login"
    )]
    types: Option<String>,
}

super::doc::json_schema! {
    /// One Server-Sent Event of `GET /v1/stream` (OpenAPI 3.1: the `text/event-stream` schema
    /// describes each event): `id` is the offset, `data` the event as JSON.
    pub struct SseEvent = {
        "type": "object",
        "description": "One event of the stream: `id` is the event's offset (send it back as `Last-Event-ID` to resume), `data` the event as JSON.",
        "required": ["id", "data"],
        "properties": {
            "id": { "type": "string", "pattern": "^[1-9][0-9]*$" },
            "event": { "type": "string", "const": "message" },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": "#/components/schemas/StoredEvent" }
            }
        }
    }
}

/// A page of events read by cursor.
#[derive(Serialize, ToSchema)]
#[schema(as = PollResponse)]
pub struct EventsPage {
    /// In offset order; empty when none arrived in time.
    #[schema(value_type = Vec<super::event_doc::StoredEvent>)]
    events: Vec<Box<RawValue>>,
    /// The cursor for the next read (`after=`): the last event's offset, else the one sent.
    next_cursor: u64,
    /// Set when the cursor was inside the archive (events past the tenant's active window, see
    /// docs/retention.md) and moved to its end: the jump in offsets is retention, not loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    archived_through: Option<u64>,
}

pub(super) fn parse_u64(name: &str, v: Option<&str>) -> ApiResult<Option<u64>> {
    v.map(|s| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_param(name, format!("`{name}` must be a non-negative integer, got `{s}`")))
    })
    .transpose()
}

pub(super) fn parse_types(types: Option<&str>) -> ApiResult<TypeFilter> {
    match types {
        None => Ok(TypeFilter::all()),
        Some(list) => TypeFilter::parse_list(list).map_err(|e| ApiError::invalid_param("types", e.to_string())),
    }
}

/// One of a tenant key's open-stream slots (the operator is not capped); 429 over the cap.
fn stream_slot(state: &AppState, principal: &Principal) -> ApiResult<Option<StreamSlot>> {
    match principal {
        Principal::Operator => Ok(None),
        Principal::Tenant { key_id, .. } => state.abuse.streams.acquire(key_id),
    }
}

/// The tenant to read, checked to exist. Tenant keys read their own tenant only.
pub(super) async fn reading_tenant(
    state: &AppState,
    principal: &Principal,
    requested: Option<&str>,
) -> ApiResult<String> {
    principal.require(Scope::Read)?;
    let tenant = principal
        .tenant_for(requested)?
        .ok_or_else(|| ApiError::invalid_param("tenant", "the operator token must name the tenant with ?tenant="))?;
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    Ok(tenant)
}

/// Each event is rendered once, from its stored bytes, and embedded as it is.
fn events_json(events: &[StoredEvent], next_cursor: u64, archived_through: Option<u64>) -> ApiResult<Response> {
    let rendered = events
        .iter()
        .map(|e| RawValue::from_string(e.to_json()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tracing::error!(error = %e, "a stored event did not render as JSON");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "a stored event could not be rendered",
            )
        })?;
    Ok(axum::Json(EventsPage {
        events: rendered,
        next_cursor,
        archived_through,
    })
    .into_response())
}

/// Read events after a cursor (long-poll). Answers at once when events exist after `after`,
/// else holds up to `wait` seconds and answers the moment one commits. The same cursor gives
/// the same events in the same order every time.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "pollEvents",
    tag = "events",
    params(PollQuery),
    responses(
        (status = 200, description = "Events after the cursor (maybe none).", body = EventsPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["read"])),
)]
pub async fn long_poll(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> ApiResult<Response> {
    let tenant = reading_tenant(&state, &principal, q.tenant.as_deref()).await?;
    let after = parse_u64("after", q.after.as_deref())?.unwrap_or(0);
    let limit = match parse_u64("limit", q.limit.as_deref())? {
        None => DEFAULT_LIMIT,
        // The documented range (api.md: max 1000) is enforced, not clamped, so a client that
        // asks for more learns it instead of silently paging short.
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::invalid_param("limit", "`limit` must be from 1 to 1000")),
    };
    let wait = match q.wait.as_deref() {
        None => 0.0,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&w) => w,
            _ => {
                return Err(ApiError::invalid_param(
                    "wait",
                    format!("`wait` must be seconds from 0 to 60, got `{s}`"),
                ))
            }
        },
    };
    let filter = parse_types(q.types.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(wait);
    // A read that may wait holds one of the key's stream slots until it answers.
    let _slot = if wait > 0.0 {
        stream_slot(&state, &principal)?
    } else {
        None
    };

    // Subscribe before the first read so a commit in between still wakes us.
    let mut heads = state.store.subscribe(&tenant);
    let query = ReadQuery {
        tenant: tenant.clone(),
        after,
        limit,
        filter,
    };
    loop {
        heads.borrow_and_update();
        let (events, archived) = state.retention.read_active(query.clone()).await?;
        if !events.is_empty() {
            let next = events.last().map(|e| e.offset).unwrap_or(after);
            return events_json(&events, next, archived);
        }
        if let Some(archived) = archived {
            // Everything after the cursor is archived: the client resumes from the boundary.
            return events_json(&[], archived, Some(archived));
        }
        tokio::select! {
            changed = heads.changed() => {
                if changed.is_err() { break; }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = state.shutdown.cancelled() => break,
        }
    }
    events_json(&[], after, None)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The tenant to read. Required with the operator token (else `400 invalid_parameter`); a
    /// tenant key may omit it or give its own tenant (another answers `404`).
    tenant: Option<String>,
    /// Comma-separated type globs, as for `GET /v1/events`.
    #[param(pattern = r"^[a-z0-9_.*?-]{1,128}(,[a-z0-9_.*?-]{1,128})*$", example = "decision.*")]
    types: Option<String>,
    /// Start after this offset when no `Last-Event-ID` header is sent. With neither, the stream
    /// starts at the current head (new events only); `0` replays the whole log.
    #[param(value_type = Option<u64>, minimum = 0)]
    after: Option<String>,
}

/// SSE: each event's `id:` is its offset, so a reconnect with `Last-Event-ID` resumes exactly
/// after the last event the client saw. Without it, `?after=` picks the start; with neither,
/// the stream starts at the current head (live events only).
#[utoipa::path(
    get,
    path = "/v1/stream",
    operation_id = "streamEvents",
    tag = "events",
    description = "Server-Sent Events. Each event is `id: <offset>` and `data: <the event as JSON, a StoredEvent>`, so a reconnect with `Last-Event-ID` resumes with no gap and no repeat. Comment lines (`: heartbeat`) keep an idle connection open. The stream does not end by itself. Each open stream holds one of the key's stream slots (`429 too_many_streams` over the cap).",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, minimum = 0, description = "Resume after this offset (an `EventSource` sends the last `id:` it saw when it reconnects). Takes precedence over `?after=`."),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`: `id: <offset>` + `data: <StoredEvent as JSON>` per event, and heartbeat comments.",
            content_type = "text/event-stream", body = SseEvent,
            example = json!("id: 1\ndata: {\"offset\":1,\"id\":\"evt-1\",\"tenant_id\":\"acme\",\"type\":\"decision.rejected\",\"occurred_at\":\"2026-06-01T10:13:20.000Z\",\"received_at\":\"2026-06-01T10:13:20.120Z\",\"outcome\":\"success\",\"severity\":9}\n\n: heartbeat\n\n")),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["read"])),
)]
pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let tenant = reading_tenant(&state, &principal, q.tenant.as_deref()).await?;
    let filter = parse_types(q.types.as_deref())?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid_param("Last-Event-ID", "Last-Event-ID must be an event offset"))
        })
        .transpose()?;
    let slot = stream_slot(&state, &principal)?;
    let heads = state.store.subscribe(&tenant);
    let start = match (last_event_id, parse_u64("after", q.after.as_deref())?) {
        (Some(id), _) => id,
        (None, Some(after)) => after,
        (None, None) => state.store.head(&tenant).await?,
    };
    let stream = futures::stream::unfold(
        SseState {
            state: state.clone(),
            query: ReadQuery {
                tenant,
                after: start,
                limit: SSE_BATCH,
                filter,
            },
            heads,
            buffer: std::collections::VecDeque::new(),
            _slot: slot,
        },
        next_sse_event,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.sse_heartbeat).text("heartbeat")))
}

struct SseState {
    state: AppState,
    query: ReadQuery,
    heads: tokio::sync::watch::Receiver<u64>,
    buffer: std::collections::VecDeque<StoredEvent>,
    /// Freed when the stream is dropped (the client went away or the server stops).
    _slot: Option<StreamSlot>,
}

async fn next_sse_event(mut s: SseState) -> Option<(Result<Event, Infallible>, SseState)> {
    loop {
        if let Some(ev) = s.buffer.pop_front() {
            let event = Event::default().id(ev.offset.to_string()).data(ev.to_json());
            return Some((Ok(event), s));
        }
        if s.state.shutdown.is_cancelled() {
            return None;
        }
        s.heads.borrow_and_update();
        match s.state.retention.read_active(s.query.clone()).await {
            Ok((events, archived)) if !events.is_empty() || archived.is_some() => {
                // Archived events are not streamed: carry on from the end of the archive.
                s.query.after = s.query.after.max(archived.unwrap_or(0));
                s.query.after = events.last().map(|e| e.offset).unwrap_or(s.query.after);
                s.buffer.extend(events);
            }
            Ok(_) => {
                tokio::select! {
                    changed = s.heads.changed() => if changed.is_err() { return None; },
                    _ = s.state.shutdown.cancelled() => return None,
                }
            }
            Err(e) => {
                // End the stream; the client reconnects with Last-Event-ID and loses nothing.
                tracing::warn!(error = %e, "SSE read failed; closing the stream");
                return None;
            }
        }
    }
}
