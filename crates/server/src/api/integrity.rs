//! `GET /v1/integrity/key` and `GET /v1/integrity/checkpoints` (docs/integrity.md).

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use super::consume::reading_tenant;
use super::doc;
use super::event_doc::TenantId;
use super::extract::{ApiQuery, Page};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The key that signs checkpoints.
#[derive(Serialize, ToSchema)]
pub struct IntegrityKey {
    algorithm: Algorithm,
    /// The raw 32-byte public key, base64.
    public_key: String,
    /// The same key as a PEM `PUBLIC KEY` (SPKI).
    public_key_pem: String,
}

#[derive(Serialize, ToSchema)]
pub enum Algorithm {
    Ed25519,
}

/// A signed statement that the tenant's chain through `offset` was `chain`.
#[derive(Serialize, ToSchema)]
pub struct Checkpoint {
    #[schema(value_type = TenantId)]
    tenant_id: String,
    #[schema(minimum = 1)]
    offset: u64,
    /// The chain hash through `offset`, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    chain: String,
    #[schema(format = DateTime)]
    signed_at: String,
    /// Ed25519 over the checkpoint statement (docs/integrity.md), base64.
    signature: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointPage {
    checkpoints: Vec<Checkpoint>,
    /// The cursor for the next page; `null` when this page was not full.
    next_cursor: Option<String>,
}

/// The checkpoint public key. Any valid token may fetch it: it is public, but every `/v1`
/// route authenticates.
#[utoipa::path(
    get,
    path = "/v1/integrity/key",
    operation_id = "getIntegrityKey",
    tag = "integrity",
    responses(
        (status = 200, description = "The public key.", body = IntegrityKey),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyRequests),
    ),
    security(("bearerAuth" = [])),
)]
pub async fn public_key(State(state): State<AppState>, _principal: Principal) -> ApiResult<Json<IntegrityKey>> {
    Ok(Json(IntegrityKey {
        algorithm: Algorithm::Ed25519,
        public_key: state.integrity.public_key_base64(),
        public_key_pem: state.integrity.public_key_pem(),
    }))
}

/// A tenant's signed checkpoints in offset order; `cursor` is the offset to list after.
#[utoipa::path(
    get,
    path = "/v1/integrity/checkpoints",
    operation_id = "listCheckpoints",
    tag = "integrity",
    params(
        ("tenant" = Option<String>, Query, description = "The tenant. Required with the operator token (else `400 invalid_parameter`); a tenant key may omit it or give its own tenant (another answers `404`)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size: 1–1000, default 100."),
        ("cursor" = Option<u64>, Query, minimum = 0, description = "List the checkpoints after this offset (the previous page's `next_cursor`)."),
    ),
    responses(
        (status = 200, description = "A page of checkpoints.", body = CheckpointPage),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["read"])),
)]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<CheckpointPage>> {
    let tenant = reading_tenant(&state, &principal, page.tenant.as_deref()).await?;
    let limit = page.limit()?;
    let after = match page.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_param("cursor", format!("`cursor` must be an offset, got `{c}`")))?,
    };
    let checkpoints = state.store.list_checkpoints(&tenant, after, limit).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let next_cursor = match checkpoints.last() {
        Some(last) if checkpoints.len() == limit => Some(last.offset.to_string()),
        _ => None,
    };
    let items = checkpoints
        .iter()
        .map(|c| Checkpoint {
            tenant_id: c.tenant_id.clone(),
            offset: c.offset,
            chain: hex::encode(c.chain),
            signed_at: c.signed_at.clone(),
            signature: b64.encode(c.signature),
        })
        .collect();
    Ok(Json(CheckpointPage {
        checkpoints: items,
        next_cursor,
    }))
}
