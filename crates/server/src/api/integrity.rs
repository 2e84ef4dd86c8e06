//! `GET /v1/integrity/key` and `GET /v1/integrity/checkpoints` (docs/integrity.md).

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::consume::reading_tenant;
use super::extract::{ApiQuery, Page};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The checkpoint public key. Any valid token may fetch it: it is public, but every `/v1`
/// route authenticates.
pub async fn public_key(State(state): State<AppState>, _principal: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({
        "algorithm": "Ed25519",
        "public_key": state.integrity.public_key_base64(),
        "public_key_pem": state.integrity.public_key_pem(),
    })))
}

/// A tenant's signed checkpoints in offset order; `cursor` is the offset to list after.
pub async fn list_checkpoints(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
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
        Some(last) if checkpoints.len() == limit => Value::String(last.offset.to_string()),
        _ => Value::Null,
    };
    let items: Vec<Value> = checkpoints
        .iter()
        .map(|c| {
            json!({
                "tenant_id": c.tenant_id,
                "offset": c.offset,
                "chain": hex::encode(c.chain),
                "signed_at": c.signed_at,
                "signature": b64.encode(c.signature),
            })
        })
        .collect();
    Ok(Json(json!({ "checkpoints": items, "next_cursor": next_cursor })))
}
