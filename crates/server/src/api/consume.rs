//! Pull consumption: `GET /v1/events` (long-poll) and `GET /v1/stream` (SSE).
//!
//! Both wait on the store's per-tenant notifier, never on a timer against the database: a
//! waiting request wakes the moment a commit moves its tenant's head.

use std::convert::Infallible;
use std::time::Duration;

use auditrelay_core::{StoredEvent, TypeFilter};
use auditrelay_store::ReadQuery;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::Stream;
use serde::Deserialize;
use tokio::time::Instant;

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

#[derive(Deserialize)]
pub struct PollQuery {
    tenant: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
    types: Option<String>,
}

fn parse_u64(name: &str, v: Option<&str>) -> ApiResult<Option<u64>> {
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

/// `archived_through` is set when the cursor was inside the archive (events past the tenant's
/// active window) and moved to its end: the jump in offsets is retention, not loss.
fn events_json(events: &[StoredEvent], next_cursor: u64, archived_through: Option<u64>) -> String {
    let mut out = String::with_capacity(64 + events.iter().map(|e| e.body.len() + 24).sum::<usize>());
    out.push_str("{\"events\":[");
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&ev.to_json());
    }
    out.push_str("],\"next_cursor\":");
    out.push_str(&next_cursor.to_string());
    if let Some(archived) = archived_through {
        out.push_str(",\"archived_through\":");
        out.push_str(&archived.to_string());
    }
    out.push('}');
    out
}

pub async fn long_poll(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> ApiResult<Response> {
    let tenant = reading_tenant(&state, &principal, q.tenant.as_deref()).await?;
    let after = parse_u64("after", q.after.as_deref())?.unwrap_or(0);
    let limit = match parse_u64("limit", q.limit.as_deref())? {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(ApiError::invalid_param("limit", "`limit` must be at least 1")),
        Some(n) => (n as usize).min(MAX_LIMIT),
    };
    let wait = match q.wait.as_deref() {
        None => 0.0,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 => w.min(MAX_WAIT_SECS),
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
            return Ok(json_response(events_json(&events, next, archived)));
        }
        if let Some(archived) = archived {
            // Everything after the cursor is archived: the client resumes from the boundary.
            return Ok(json_response(events_json(&[], archived, Some(archived))));
        }
        tokio::select! {
            changed = heads.changed() => {
                if changed.is_err() { break; }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = state.shutdown.cancelled() => break,
        }
    }
    Ok(json_response(events_json(&[], after, None)))
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
pub struct StreamQuery {
    tenant: Option<String>,
    types: Option<String>,
    after: Option<String>,
}

/// SSE: each event's `id:` is its offset, so a reconnect with `Last-Event-ID` resumes exactly
/// after the last event the client saw. Without it, `?after=` picks the start; with neither,
/// the stream starts at the current head (live events only).
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
