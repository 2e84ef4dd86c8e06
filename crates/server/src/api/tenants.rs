//! Operator routes: tenants and their keys.

use auditrelay_core::ids::{is_valid_tenant_id, new_prefixed_id, SYSTEM_TENANT};
use auditrelay_store::{ApiKey, NewApiKey, Tenant};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::doc;
use super::event_doc::TenantId;
use super::extract::{ApiJson, ApiQuery, Page};
use crate::audit::{self, Target};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tokens::{hash_token, random_token};

/// The longest tenant or key name, in characters.
const MAX_NAME_CHARS: usize = 256;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TenantCreate, example = json!({"id": "acme", "name": "Acme Corp"}))]
pub struct CreateTenant {
    /// 1–64 characters of `[a-z0-9_-]`; `system` is reserved.
    #[schema(value_type = TenantId)]
    id: String,
    /// Default: the id.
    #[schema(max_length = 256)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Tenant, example = json!({"id": "acme", "name": "Acme Corp", "created_at": "2026-06-01T10:00:00.000Z"}))]
pub struct TenantView {
    #[schema(value_type = TenantId)]
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at.clone(),
        }
    }
}

/// A key as listed: never its secret.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    #[schema(pattern = "^key_[0-9a-f]{32}$")]
    id: String,
    #[schema(value_type = TenantId)]
    tenant: String,
    name: String,
    #[schema(value_type = Vec<ScopeName>)]
    scopes: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// Updated at most once a minute.
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            tenant: k.tenant_id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            created_at: k.created_at.clone(),
            last_used_at: k.last_used_at.clone(),
            revoked_at: k.revoked_at.clone(),
        }
    }
}

/// A key just created, with its secret: shown this once, stored only as a hash.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyCreated)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    info: ApiKeyView,
    /// The secret for `Authorization: Bearer`.
    #[schema(pattern = "^ark_[A-Za-z0-9_-]{43}$")]
    key: String,
}

/// A scope a tenant key can carry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Scope)]
#[allow(dead_code)] // Only its schema is used; `auth::Scope` is the code's.
pub enum ScopeName {
    Ingest,
    Read,
    Manage,
}

#[derive(Serialize, ToSchema)]
pub struct TenantPage {
    items: Vec<TenantView>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyPage)]
pub struct KeyPage {
    items: Vec<ApiKeyView>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// Create a tenant. Its log starts empty; keys are created for it next.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    operation_id = "createTenant",
    tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created.", body = TenantView),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 408, response = doc::RequestTimeout),
        (status = 409, description = "`conflict`: a tenant with this id exists (or the id is `system`, reserved).", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 415, response = doc::UnsupportedMediaType),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
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
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            "tenant name must be at most 256 characters",
        ));
    }
    let tenant = state.store.create_tenant(&body.id, &name).await?;
    state.tenants.insert(&tenant.id);
    state
        .engine
        .tenant_created(&auditrelay_core::ids::TenantId::from_stored(tenant.id.clone()));
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
    Ok((StatusCode::CREATED, Json(TenantView::from(&tenant))).into_response())
}

/// List tenants in id order.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    operation_id = "listTenants",
    tag = "tenants",
    params(Page),
    responses(
        (status = 200, description = "A page of tenants.", body = TenantPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<TenantPage>> {
    principal.require_operator()?;
    let ApiQuery(page) = page?;
    let limit = page.limit()?;
    let tenants = state.store.list_tenants(page.cursor.as_deref(), limit).await?;
    let next = (tenants.len() == limit)
        .then(|| tenants.last().map(|t| t.id.clone()))
        .flatten();
    Ok(Json(TenantPage {
        items: tenants.iter().map(TenantView::from).collect(),
        next_cursor: next,
    }))
}

/// One tenant. The operator sees any tenant; a tenant key sees its own, whatever its scopes.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}",
    operation_id = "getTenant",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The tenant.", body = TenantView),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 429, response = doc::TooManyRequests),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantView>> {
    let tenant = principal.tenant_for(Some(&tenant))?.unwrap_or(tenant);
    match state.store.tenant(&tenant).await? {
        Some(t) => Ok(Json(TenantView::from(&t))),
        None => Err(ApiError::not_found(format!("tenant `{tenant}` not found"))),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyCreate, example = json!({"name": "billing-service", "scopes": ["ingest"]}))]
pub struct CreateKey {
    /// What the key is for; default empty.
    #[schema(max_length = 256)]
    name: Option<String>,
    /// At least one; repeats are ignored.
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    scopes: Vec<String>,
}

/// Create a key for a tenant. The answer holds the secret (`key`), shown this once.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/keys",
    operation_id = "createKey",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id.")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` is the secret, shown this once.", body = ApiKeyCreated),
        (status = 400, response = doc::BadRequest),
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
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            "key name must be at most 256 characters",
        ));
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
    let body = ApiKeyCreated {
        info: ApiKeyView::from(&key),
        key: secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A tenant's keys (revoked ones included), in id order.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/keys",
    operation_id = "listKeys",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id."), Page),
    responses(
        (status = 200, description = "A page of keys, without their secrets.", body = KeyPage),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(tenant): Path<String>,
    page: Result<ApiQuery<Page>, ApiError>,
) -> ApiResult<Json<KeyPage>> {
    principal.require_operator()?;
    let ApiQuery(page) = page?;
    state.tenants.ensure(state.store.as_ref(), &tenant).await?;
    let limit = page.limit()?;
    let keys = state.store.list_keys(&tenant, page.cursor.as_deref(), limit).await?;
    let next = (keys.len() == limit)
        .then(|| keys.last().map(|k| k.id.clone()))
        .flatten();
    Ok(Json(KeyPage {
        items: keys.iter().map(ApiKeyView::from).collect(),
        next_cursor: next,
    }))
}

/// Revoke a key: it is refused from the next request on (on other nodes within 30 s).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/keys/{key}",
    operation_id = "revokeKey",
    tag = "tenants",
    params(
        ("tenant" = String, Path, description = "The tenant id."),
        ("key" = String, Path, description = "The key id (`key_…`), not the secret."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
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
