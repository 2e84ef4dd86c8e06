//! `/v1/tenants/{tenant}/retention`: a tenant's retention policy (docs/retention.md). The
//! operator sets it; a tenant key may read its own tenant's, to know how long its trail is kept.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::extract::ApiJson;
use crate::audit::{self, Target};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::retention::PolicyOverride;
use crate::state::AppState;

/// The policy in force, what the tenant overrides, the server's defaults, and where the log
/// stands: its head, the end of the archive, and how far it was purged.
async fn retention_json(state: &AppState, tenant: &str) -> ApiResult<Json<Value>> {
    let (over, effective) = state.retention.policy(tenant).await?;
    let head = state.store.head(tenant).await?;
    let archived_through = state.retention.archived_through(tenant).await?;
    let purged_through = state.store.purged_through(tenant).await?;
    Ok(Json(json!({
        "tenant": tenant,
        "policy": effective,
        "overrides": over,
        "defaults": state.retention.defaults(),
        "log": {
            "head": head,
            "archived_through": archived_through,
            "purged_through": purged_through,
        },
    })))
}

pub async fn get_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    // Another tenant's id answers 404, like a missing one.
    let tenant = principal.tenant_for(Some(&tenant))?.unwrap_or(tenant);
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    retention_json(&state, &tenant).await
}

pub async fn put_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
    body: Result<ApiJson<PolicyOverride>, ApiError>,
) -> ApiResult<Json<Value>> {
    principal.require_operator()?;
    let ApiJson(over) = body?;
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    // As given: a stored policy whose windows stop nesting after a change of the server's
    // defaults is widened when read, but a request that does not nest is a mistake to report.
    state
        .retention
        .defaults()
        .exactly_with(&over)
        .validate()
        .map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    apply(&state, &principal, &tenant, Some(&over)).await
}

pub async fn delete_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    principal.require_operator()?;
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    apply(&state, &principal, &tenant, None).await
}

/// Stores the tenant's overrides (`None`: back to the defaults), records the change in the
/// `system` tenant, and answers the new state.
async fn apply(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    over: Option<&PolicyOverride>,
) -> ApiResult<Json<Value>> {
    state.retention.set_override(tenant, over).await?;
    let answer = retention_json(state, tenant).await?;
    audit::record(
        state,
        principal,
        "tenant.retention_updated",
        "update",
        Target {
            kind: "tenant",
            id: tenant,
            name: None,
        },
        json!({ "tenant": tenant, "overrides": over, "policy": answer.0["policy"] }),
    )
    .await?;
    Ok(answer)
}
