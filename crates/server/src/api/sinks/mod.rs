//! Sink management (api.md "Sinks"): definitions with write-only secrets, and the operations
//! on a running sink — test delivery, health, pause/resume, replay, dead letters, delivery log.
//!
//! Visibility: a tenant key with `manage` sees only the sinks its tenant owns; anything else
//! answers 404 exactly like a missing sink, so ids cannot be probed.
//!
//! `POST /v1/graphql` calls these handlers too (`crate::graphql::schema`): what they decide and
//! answer is what GraphQL decides and answers, so a change here shows on both surfaces.

mod body;
mod dead_letters;
mod definitions;
mod operations;
mod preview;
mod stats;
mod view;

pub use dead_letters::*;
pub use definitions::*;
pub use operations::*;
pub use preview::*;
pub use stats::*;
pub use view::*;

use auditrelay_engine::spec::SinkSpec;
use auditrelay_engine::EngineError;
use auditrelay_sinks::{ConfigError, Secrets};
use auditrelay_store::SinkRow;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::Build(ConfigError { field, message }) => ApiError::new(
                StatusCode::CONFLICT,
                "sink_misconfigured",
                format!("the stored sink configuration does not work: {field}: {message}"),
            )
            .with_detail(json!({ "field": field })),
            EngineError::Gone(msg) => ApiError::new(StatusCode::GONE, "gone", msg),
            other => {
                tracing::error!(error = %other, "engine error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the sink could not be loaded",
                )
            }
        }
    }
}

pub(crate) fn config_error(e: ConfigError) -> ApiError {
    ApiError::invalid_field(&e.field, format!("{}: {}", e.field, e.message))
}

pub(crate) fn sink_view(row: &SinkRow, spec: &SinkSpec, secrets: &Secrets) -> SinkView {
    SinkView::new(row, spec.clone(), secrets)
}

pub(crate) fn parse_spec(row: &SinkRow) -> ApiResult<SinkSpec> {
    serde_json::from_str(&row.spec).map_err(|e| EngineError::Spec(e.to_string()).into())
}

pub(crate) fn open_secrets(state: &AppState, row: &SinkRow) -> ApiResult<Secrets> {
    state
        .engine
        .master_key()
        .open(&row.id, &row.sealed_secrets)
        .map_err(|e| EngineError::from(e).into())
}

pub(crate) fn respond(state: &AppState, row: &SinkRow) -> ApiResult<Json<SinkView>> {
    Ok(Json(sink_view(row, &parse_spec(row)?, &open_secrets(state, row)?)))
}

/// The 404 for a sink that is missing or not this principal's.
pub(crate) fn not_found_sink(id: &str) -> ApiError {
    ApiError::not_found(format!("sink `{id}` not found"))
}

/// The cursor for the next page: the last item's key when the page is full.
pub(crate) fn next_cursor<T>(items: &[T], limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
    (items.len() == limit).then(|| items.last().map(key)).flatten()
}

/// The sink if this principal may see it; 404 otherwise (also for another tenant's sink).
pub(crate) async fn visible_sink(state: &AppState, principal: &Principal, id: &str) -> ApiResult<SinkRow> {
    principal.require(Scope::Manage)?;
    let row = state.store.sink(id).await?;
    match (row, principal) {
        (Some(row), Principal::Operator) => Ok(row),
        (Some(row), Principal::Tenant { tenant, .. }) if row.owner_tenant.as_deref() == Some(tenant) => Ok(row),
        _ => Err(not_found_sink(id)),
    }
}
