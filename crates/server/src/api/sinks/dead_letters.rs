//! A sink's dead letters (batches that exhausted their attempts) and its delivery log.

use auditrelay_engine::AttemptResult;
use auditrelay_store::{DeadLetter, DeliveryAttempt, SinkRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::view::SinkId;
use super::{next_cursor, visible_sink};
use crate::api::doc;
use crate::api::event_doc::TenantId;
use crate::api::extract::{ApiQuery, Page};
use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// One attempt at a dead-lettered batch, as the engine recorded it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeadLetterAttempt {
    #[schema(minimum = 1)]
    attempt: u32,
    #[schema(format = DateTime)]
    at: String,
    #[schema(value_type = auditrelay_engine::AttemptOutcome)]
    outcome: String,
    status: Option<u16>,
    error: Option<String>,
    #[schema(minimum = 0)]
    latency_ms: f64,
}

/// A batch that exhausted its retries, with every attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterView {
    #[schema(pattern = "^dl_[0-9a-f]{32}$")]
    id: String,
    #[schema(value_type = SinkId)]
    sink_id: String,
    #[schema(value_type = TenantId)]
    tenant: String,
    first_offset: u64,
    last_offset: u64,
    /// Events of the range that matched the sink's type filter, i.e. what was sent.
    event_count: u64,
    reason: String,
    attempts: Vec<DeadLetterAttempt>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(dl: &DeadLetter) -> Self {
        DeadLetterView {
            id: dl.id.clone(),
            sink_id: dl.sink_id.clone(),
            tenant: dl.tenant_id.clone(),
            first_offset: dl.first_offset,
            last_offset: dl.last_offset,
            event_count: dl.event_count,
            reason: dl.reason.clone(),
            attempts: serde_json::from_str(&dl.attempts).unwrap_or_else(|e| {
                // The batch itself is what matters; an unreadable history is logged, not fatal.
                tracing::warn!(dead_letter = %dl.id, error = %e, "unreadable attempt history");
                Vec::new()
            }),
            created_at: dl.created_at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub(crate) items: Vec<DeadLetterView>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// A dead letter retried with success (it is deleted).
#[derive(Serialize, ToSchema)]
pub struct DeadLetterRetried {
    dead_letter_id: String,
    deleted: bool,
    pub(crate) attempt: AttemptResult,
}

/// The sink's dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/dead-letters",
    operation_id = "listDeadLetters",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), Page),
    responses(
        (status = 200, description = "A page of dead letters.", body = DeadLetterPage),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<DeadLetterPage>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let items = state
        .store
        .list_dead_letters(&row.id, page.cursor.as_deref(), limit)
        .await?;
    let next = next_cursor(&items, limit, |d| d.id.clone());
    Ok(Json(DeadLetterPage {
        items: items.iter().map(DeadLetterView::from).collect(),
        next_cursor: next,
    }))
}

async fn visible_dead_letter(state: &AppState, row: &SinkRow, dl: &str) -> ApiResult<DeadLetter> {
    state
        .store
        .dead_letter(&row.id, dl)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dead letter `{dl}` not found")))
}

/// One dead letter.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/dead-letters/{dl}",
    operation_id = "getDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 200, description = "The dead letter.", body = DeadLetterView),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn get_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<Json<DeadLetterView>> {
    let row = visible_sink(&state, &principal, &id).await?;
    Ok(Json(DeadLetterView::from(
        &visible_dead_letter(&state, &row, &dl).await?,
    )))
}

/// Deliver a dead letter's batch again now. Delivered: the dead letter is deleted. Refused:
/// `502` with the attempt, and the dead letter is kept.
#[utoipa::path(
    post,
    path = "/v1/sinks/{id}/dead-letters/{dl}/retry",
    operation_id = "retryDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 200, description = "Delivered; the dead letter is deleted.", body = DeadLetterRetried),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 410, description = "`gone`: the batch's events were purged by retention.", body = ErrorBody),
        (status = 429, response = doc::TooManyRequests),
        (status = 500, response = doc::Internal),
        (status = 502, description = "`delivery_failed`: the receiver did not accept it; `detail.attempt` is the attempt. The dead letter is kept.", body = ErrorBody),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn retry_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeadLetterRetried>)> {
    let row = visible_sink(&state, &principal, &id).await?;
    let dead_letter = visible_dead_letter(&state, &row, &dl).await?;
    let result = state.engine.retry_dead_letter(&row, &dead_letter).await?;
    audit::sink_event_outcome(
        &state,
        &principal,
        "dead_letter.retried",
        "retry",
        result.delivered,
        &row,
        json!({ "dead_letter_id": dl, "delivered": result.delivered }),
    )
    .await?;
    if result.delivered {
        return Ok((
            StatusCode::OK,
            Json(DeadLetterRetried {
                dead_letter_id: dl,
                deleted: true,
                attempt: result,
            }),
        ));
    }
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "delivery_failed",
        format!(
            "the receiver did not accept the retry: {}; the dead letter is kept",
            result.error.clone().unwrap_or_else(|| result.outcome.clone())
        ),
    )
    .with_detail(json!({ "dead_letter_id": dl, "attempt": result })))
}

/// Delete a dead letter (its events stay in the log).
#[utoipa::path(
    delete,
    path = "/v1/sinks/{id}/dead-letters/{dl}",
    operation_id = "deleteDeadLetter",
    tag = "sinks",
    params(("id" = String, Path, description = "The sink id (`snk_…`)."), ("dl" = String, Path, description = "The dead letter id (`dl_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn delete_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, dl)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let row = visible_sink(&state, &principal, &id).await?;
    if state.store.delete_dead_letter(&row.id, &dl).await? {
        audit::sink_event(
            &state,
            &principal,
            "dead_letter.deleted",
            "delete",
            &row,
            json!({ "dead_letter_id": dl }),
        )
        .await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("dead letter `{dl}` not found")))
    }
}

/// One attempt in the delivery log.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
pub struct AttemptView {
    /// Its position in the sink's delivery log (the cursor pages by it).
    #[schema(minimum = 1)]
    seq: u64,
    #[schema(value_type = TenantId)]
    tenant: String,
    first_offset: u64,
    last_offset: u64,
    event_count: u64,
    #[schema(value_type = AttemptPurpose)]
    purpose: String,
    #[schema(minimum = 1)]
    attempt: u32,
    #[schema(value_type = auditrelay_engine::AttemptOutcome)]
    outcome: String,
    status: Option<u16>,
    #[schema(minimum = 0)]
    latency_ms: f64,
    error: Option<String>,
    #[schema(format = DateTime)]
    at: String,
}

/// What an attempt was for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum AttemptPurpose {
    Delivery,
    Replay,
    DeadLetterRetry,
    Test,
}

impl AttemptView {
    fn new(seq: u64, a: &DeliveryAttempt) -> Self {
        AttemptView {
            seq,
            tenant: a.tenant_id.clone(),
            first_offset: a.first_offset,
            last_offset: a.last_offset,
            event_count: a.event_count,
            purpose: a.purpose.clone(),
            attempt: a.attempt,
            outcome: a.outcome.clone(),
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            at: a.at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttemptPage)]
pub struct AttemptPage {
    items: Vec<AttemptView>,
    /// The cursor for the next (older) page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// The delivery log, newest first; `cursor` pages backwards.
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/deliveries",
    operation_id = "listDeliveries",
    tag = "sinks",
    params(
        ("id" = String, Path, description = "The sink id (`snk_…`)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size: 1–1000, default 100."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,19}$", description = "The previous page's `next_cursor`: the page then holds the attempts older than the last one returned. Absent: the newest attempts."),
    ),
    responses(
        (status = 200, description = "A page of attempts, newest first.", body = AttemptPage),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<AttemptPage>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let before = match page.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| ApiError::invalid_param("cursor", "`cursor` must come from a previous answer"))?,
        ),
    };
    let rows = state.store.list_attempts(&row.id, before, limit).await?;
    let next = next_cursor(&rows, limit, |(s, _)| s.to_string());
    Ok(Json(AttemptPage {
        items: rows.iter().map(|(s, a)| AttemptView::new(*s, a)).collect(),
        next_cursor: next,
    }))
}
