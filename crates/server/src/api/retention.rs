//! `/v1/tenants/{tenant}/retention`: a tenant's retention policy (docs/retention.md). The
//! operator sets it; a tenant key may read its own tenant's, to know how long its trail is kept.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::doc;
use super::event_doc::TenantId;
use super::extract::ApiJson;
use crate::audit::{self, Target};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::retention::{PolicyOverride, RetentionPolicy};
use crate::state::AppState;

/// The policy in force, what the tenant overrides, the server's defaults, and where the log
/// stands.
#[derive(Serialize, ToSchema)]
pub struct RetentionState {
    #[schema(value_type = TenantId)]
    tenant: String,
    /// In force: the overrides laid on the defaults.
    policy: RetentionPolicy,
    /// What this tenant sets; `null`: the defaults apply.
    overrides: Option<PolicyOverride>,
    /// The server's defaults.
    defaults: RetentionPolicy,
    log: LogPosition,
}

/// Where a tenant's log stands.
#[derive(Serialize, ToSchema)]
pub struct LogPosition {
    /// The last offset.
    head: u64,
    /// Events up to this offset are archived (not served by the consume routes).
    archived_through: u64,
    /// Events up to this offset were deleted.
    purged_through: u64,
}

async fn retention_state(state: &AppState, tenant: &str) -> ApiResult<RetentionState> {
    let (over, effective) = state.retention.policy(tenant).await?;
    Ok(RetentionState {
        tenant: tenant.to_owned(),
        policy: effective,
        overrides: over,
        defaults: state.retention.defaults(),
        log: LogPosition {
            head: state.store.head(tenant).await?,
            archived_through: state.retention.archived_through(tenant).await?,
            purged_through: state.store.purged_through(tenant).await?,
        },
    })
}

/// A tenant's retention policy (docs/retention.md). The operator, or a key of that tenant
/// (whatever its scopes) to know how long its trail is kept.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/retention",
    operation_id = "getRetention",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The policy and where the log stands.", body = RetentionState),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
pub async fn get_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<RetentionState>> {
    // Another tenant's id answers 404, like a missing one.
    let tenant = principal.tenant_for(Some(&tenant))?.unwrap_or(tenant);
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    Ok(Json(retention_state(&state, &tenant).await?))
}

/// Set a tenant's overrides (replacing the previous ones; omitted fields follow the defaults).
/// Recorded in the `system` tenant.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/retention",
    operation_id = "setRetention",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id.")),
    request_body = PolicyOverride,
    responses(
        (status = 200, description = "The new state.", body = RetentionState),
        (status = 400, description = "`invalid_json`, or `invalid_request` naming the field whose window does not nest (`active_days` ≤ `purge_after_days` ≤ `hard_limit_days`, with the defaults for the fields left out).", body = crate::error::ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 408, response = doc::RequestTimeout),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn put_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
    body: Result<ApiJson<PolicyOverride>, ApiError>,
) -> ApiResult<Json<RetentionState>> {
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

/// Drop a tenant's overrides: the defaults apply again. Recorded in the `system` tenant.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/retention",
    operation_id = "resetRetention",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The new state.", body = RetentionState),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn delete_retention(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<RetentionState>> {
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
) -> ApiResult<Json<RetentionState>> {
    state.retention.set_override(tenant, over).await?;
    let answer = retention_state(state, tenant).await?;
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
        json!({ "tenant": tenant, "overrides": over, "policy": answer.policy }),
    )
    .await?;
    Ok(Json(answer))
}
