//! Operator routes: tenants and their keys.

use auditrelay_core::ids::{is_valid_tenant_id, new_prefixed_id, SYSTEM_TENANT};
use auditrelay_store::{ApiKey, NewApiKey, Tenant};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ApiJson, ApiQuery, Page};
use crate::audit::{self, Target};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tokens::{hash_token, random_token};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
    name: Option<String>,
}

fn tenant_json(t: &Tenant) -> Value {
    json!({ "id": t.id, "name": t.name, "created_at": t.created_at })
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "tenant": k.tenant_id, "name": k.name, "scopes": k.scopes,
        "created_at": k.created_at, "last_used_at": k.last_used_at, "revoked_at": k.revoked_at,
    })
}

/// A page of items with the opaque cursor for the next one (absent on the last page).
fn page_json(items: Vec<Value>, next: Option<String>) -> Json<Value> {
    Json(json!({ "items": items, "next_cursor": next }))
}

pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<CreateTenant>, ApiError>,
) -> ApiResult<Response> {
    // Scope first: a tenant key gets 403 whatever its body holds.
    principal.require_operator()?;
    let ApiJson(body) = body?;
    if !is_valid_tenant_id(&body.id) {
        return Err(ApiError::invalid_field(
            "id",
            "tenant id must be 1–64 characters of [a-z0-9_-]",
        ));
    }
    if body.id == SYSTEM_TENANT {
        // It exists from the first start; named explicitly so the answer does not depend on that.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("tenant id `{SYSTEM_TENANT}` is reserved for auditrelay's own audit trail"),
        )
        .with_detail(json!({ "field": "id" })));
    }
    let name = body.name.unwrap_or_else(|| body.id.clone());
    if name.len() > 256 {
        return Err(ApiError::invalid_field("name", "tenant name must be at most 256 bytes"));
    }
    let tenant = state.store.create_tenant(&body.id, &name).await?;
    state.tenants.insert(&tenant.id);
    state.engine.tenant_created(&tenant.id);
    audit::record(
        &state,
        &principal,
        "tenant.created",
        "create",
        Target {
            kind: "tenant",
            id: &tenant.id,
            name: Some(&tenant.name),
        },
        json!({ "tenant": tenant.id }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(tenant_json(&tenant))).into_response())
}

pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<Value>> {
    principal.require_operator()?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let tenants = state.store.list_tenants(page.cursor.as_deref(), limit).await?;
    let next = (tenants.len() == limit)
        .then(|| tenants.last().map(|t| t.id.clone()))
        .flatten();
    Ok(page_json(tenants.iter().map(tenant_json).collect(), next))
}

/// The operator sees any tenant; a tenant key sees its own (any scope).
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant = principal.tenant_for(Some(&tenant))?.unwrap_or(tenant);
    match state.store.tenant(&tenant).await? {
        Some(t) => Ok(Json(tenant_json(&t))),
        None => Err(ApiError::not_found(format!("tenant `{tenant}` not found"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: Option<String>,
    scopes: Vec<String>,
}

pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
    body: Result<ApiJson<CreateKey>, ApiError>,
) -> ApiResult<Response> {
    principal.require_operator()?;
    let ApiJson(body) = body?;
    if body.scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "a key needs at least one scope: ingest, read, manage",
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in &body.scopes {
        let Some(scope) = Scope::parse(s) else {
            return Err(ApiError::invalid_field(
                "scopes",
                format!("unknown scope `{s}`; scopes are {}", Scope::ALL.join(", ")),
            ));
        };
        if !scopes.iter().any(|x| x == scope.as_str()) {
            scopes.push(scope.as_str().to_owned());
        }
    }
    let name = body.name.unwrap_or_default();
    if name.len() > 256 {
        return Err(ApiError::invalid_field("name", "key name must be at most 256 bytes"));
    }
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    let secret = random_token("ark");
    let key = state
        .store
        .create_key(NewApiKey {
            id: new_prefixed_id("key"),
            tenant_id: tenant,
            name,
            scopes,
            hash: hash_token(&secret),
            created_at: auditrelay_core::time::now_rfc3339(),
        })
        .await?;
    // The secret is in this answer only: a failed audit append must not hide it (the event is
    // then in the server log, see `audit`).
    let _logged_on_failure = audit::record(
        &state,
        &principal,
        "key.created",
        "create",
        Target {
            kind: "api_key",
            id: &key.id,
            name: Some(&key.name),
        },
        json!({ "tenant": key.tenant_id, "scopes": key.scopes }),
    )
    .await;
    let mut body = key_json(&key);
    body["key"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<Value>> {
    principal.require_operator()?;
    let ApiQuery(page) = page?;
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    let limit = page.limit()?;
    let keys = state.store.list_keys(&tenant, page.cursor.as_deref(), limit).await?;
    let next = (keys.len() == limit)
        .then(|| keys.last().map(|k| k.id.clone()))
        .flatten();
    Ok(page_json(keys.iter().map(key_json).collect(), next))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    principal.require_operator()?;
    if state.store.revoke_key(&tenant, &key).await? {
        state.auth.forget_keys();
        audit::record(
            &state,
            &principal,
            "key.revoked",
            "revoke",
            Target {
                kind: "api_key",
                id: &key,
                name: None,
            },
            json!({ "tenant": tenant }),
        )
        .await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "key `{key}` not found in tenant `{tenant}`"
        )))
    }
}
