//! Self-audit: every administrative action is itself an audit event, appended to the reserved
//! `system` tenant, so operators can forward auditrelay's own trail like any other tenant's
//! (`GET /v1/events?tenant=system`, or a sink with `"tenants": ["system"]`).
//!
//! The events use the public event shape: `type` (`sink.created`, …), `actor` (the operator, or
//! the key and its tenant), `target` (the object), `metadata` (the acting tenant and what
//! changed — secret *names* only, never a value).
//!
//! **Durability.** The event is appended after the action and *before* the answer, through the
//! same durable append as ingest (group commit, fsync), so a 2xx to an admin call means its
//! audit record is on disk. The action cannot be rolled back if the append then fails (the
//! store went away between the two writes): the call answers 503 `audit_unavailable`, saying
//! the change was applied, and the full event is written to the server log at error level, so
//! the record is never silently lost. Writing the event *before* the action was rejected: a
//! failed action would then leave a trail of something that never happened.

use auditrelay_core::ids::SYSTEM_TENANT;
use auditrelay_core::time::Clock;
use auditrelay_core::{parse_request, BodyFormat, Limits};
use auditrelay_store::{Store, StoreError};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Creates the `system` tenant on first start (it is reserved: the API refuses to create it).
pub async fn ensure_system_tenant(store: &dyn Store) -> anyhow::Result<()> {
    match store.create_tenant(SYSTEM_TENANT, "auditrelay system trail").await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("creating the system tenant")),
    }
}

/// The object an action was done to.
pub struct Target<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub name: Option<&'a str>,
}

/// The `actor` of an event, and the tenant the principal acts for (`None` for the operator).
fn actor(principal: &Principal) -> (Value, Value) {
    match principal {
        Principal::Operator => (json!({ "type": "operator", "id": "operator" }), Value::Null),
        Principal::Tenant { tenant, key_id, .. } => (
            json!({ "type": "api_key", "id": key_id, "name": format!("key {key_id} of tenant {tenant}") }),
            json!(tenant),
        ),
    }
}

/// Renders the event (public shape, without the server-set fields).
fn event_json(
    (actor, acting_tenant): (Value, Value),
    event_type: &str,
    action: &str,
    success: bool,
    target: &Target,
    details: Value,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("acting_tenant".into(), acting_tenant);
    if let Value::Object(extra) = details {
        metadata.extend(extra);
    }
    let mut target_json = json!({ "type": target.kind, "id": target.id });
    if let Some(name) = target.name.filter(|n| !n.is_empty()) {
        target_json["name"] = json!(name);
    }
    json!({
        "type": event_type,
        "action": action,
        "outcome": if success { "success" } else { "failure" },
        "actor": actor,
        "target": target_json,
        "metadata": metadata,
        "source": { "service": "auditrelay", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// Appends one audit event for an action that succeeded; see the module doc for durability.
pub async fn record(
    state: &AppState,
    principal: &Principal,
    event_type: &str,
    action: &str,
    target: Target<'_>,
    details: Value,
) -> Result<(), ApiError> {
    record_outcome(state, principal, event_type, action, true, target, details).await
}

/// [`record`] with an explicit outcome (a dead-letter retry the receiver refused is still an
/// administrative action worth recording).
pub async fn record_outcome(
    state: &AppState,
    principal: &Principal,
    event_type: &str,
    action: &str,
    success: bool,
    target: Target<'_>,
    details: Value,
) -> Result<(), ApiError> {
    let event = event_json(actor(principal), event_type, action, success, &target, details);
    append_event(state.store.as_ref(), state.clock.as_ref(), event).await
}

/// Appends one audit event for something auditrelay did by itself (a retention purge): the
/// actor is `{"type": "system", "id": <component>}`.
pub async fn record_system(
    store: &dyn Store,
    clock: &dyn Clock,
    component: &str,
    event_type: &str,
    action: &str,
    target: Target<'_>,
    details: Value,
) -> Result<(), ApiError> {
    let actor = json!({ "type": "system", "id": component, "name": format!("auditrelay {component}") });
    let event = event_json((actor, Value::Null), event_type, action, true, &target, details);
    append_event(store, clock, event).await
}

async fn append_event(store: &dyn Store, clock: &dyn Clock, event: Value) -> Result<(), ApiError> {
    let text = event.to_string();
    // The event goes through the same validation as ingested events: one shape for all.
    // Metadata is ours and small; a generous limit keeps a long sink name from failing it.
    let limits = Limits {
        max_event_bytes: 1024 * 1024,
        max_request_bytes: 2 * 1024 * 1024,
        max_request_events: 1,
    };
    let parsed = match parse_request(text.as_bytes(), BodyFormat::Json, &limits) {
        Ok(mut p) if p.len() == 1 => p.remove(0),
        other => {
            tracing::error!(event = %text, result = ?other.err(), "audit event failed validation; this is a bug");
            return Err(audit_unavailable());
        }
    };
    let received_at = clock.now_rfc3339();
    let new_event = parsed.into_new_event(SYSTEM_TENANT.to_owned(), &received_at);
    match store.append(vec![new_event]).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, event = %text, "could not append the audit event; the action was applied");
            Err(audit_unavailable())
        }
    }
}

fn audit_unavailable() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the change was applied, but its audit record could not be stored (it is in the server log)",
    );
    e.retry_after = Some(1);
    e
}

/// An audit event about a sink: its id and name as the target, its owner tenant in `metadata`
/// beside `details`. Callers pass secret *names* only.
pub async fn sink_event(
    state: &AppState,
    principal: &Principal,
    event_type: &str,
    action: &str,
    sink: &auditrelay_store::SinkRow,
    details: Value,
) -> Result<(), ApiError> {
    sink_event_outcome(state, principal, event_type, action, true, sink, details).await
}

/// [`sink_event`] with an explicit outcome.
pub async fn sink_event_outcome(
    state: &AppState,
    principal: &Principal,
    event_type: &str,
    action: &str,
    success: bool,
    sink: &auditrelay_store::SinkRow,
    details: Value,
) -> Result<(), ApiError> {
    let spec: Value = serde_json::from_str(&sink.spec).unwrap_or(Value::Null);
    let mut metadata = json!({ "tenant": sink.owner_tenant });
    if let (Value::Object(m), Value::Object(extra)) = (&mut metadata, details) {
        m.extend(extra);
    }
    let target = Target {
        kind: "sink",
        id: &sink.id,
        name: spec["name"].as_str(),
    };
    record_outcome(state, principal, event_type, action, success, target, metadata).await
}
