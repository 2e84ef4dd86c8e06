//! The one way a source appends: validate each candidate event exactly like `POST /v1/events`
//! (core's parser and limits), then hand the batch to the server's append path, which returns
//! only when it is durable.

use async_trait::async_trait;
use auditrelay_core::{parse_request, BodyFormat, Limits, NewEvent};
use auditrelay_store::AppendOutcome;
use serde_json::Value;

/// The append failed as a whole (nothing of the batch is stored); the source retries it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AppendFailure(pub String);

/// Implemented by the server on its ingest path (tenant checks, group commit, metrics).
#[async_trait]
pub trait Appender: Send + Sync {
    /// The same limits `POST /v1/events` applies.
    fn limits(&self) -> Limits;
    /// "Now" as canonical RFC 3339, for `received_at`.
    fn now_rfc3339(&self) -> String;
    /// Appends already validated events of one or more tenants; returns once they are durable,
    /// with one outcome per event in order. All or nothing, as the store's `append`.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, AppendFailure>;
    /// Whether `tenant` exists (sources that take the tenant from each record check it, so one
    /// bad record never fails a whole batch).
    async fn tenant_exists(&self, tenant: &str) -> Result<bool, AppendFailure>;
}

/// Validates one event (a JSON object) as `POST /v1/events` would, for `tenant`. The error
/// names the field at fault, as the API's 400 does.
pub fn validate_event(event: &Value, tenant: &str, limits: &Limits, received_at: &str) -> Result<NewEvent, String> {
    let body = serde_json::to_vec(event).map_err(|e| format!("serializing the event: {e}"))?;
    let mut parsed = parse_request(&body, BodyFormat::Json, limits).map_err(|e| e.to_string())?;
    match (parsed.pop(), parsed.is_empty()) {
        (Some(one), true) => Ok(one.into_new_event(tenant.to_owned(), received_at)),
        _ => Err("expected exactly one event".into()),
    }
}
