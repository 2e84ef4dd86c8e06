//! Operator-only administration of the server itself.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::doc;
use crate::audit::{self, Target};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

/// The new operator token.
#[derive(Serialize, ToSchema)]
#[schema(as = RotatedToken)]
pub struct Rotated {
    /// Shown this once; only its hash is stored.
    token: String,
}

/// `POST /v1/admin/token/rotate`: a new operator token, shown once; the old one is refused from
/// the next request on, on this server. The new hash is stored in the data dir and wins over
/// `AUDITRELAY_ADMIN_TOKEN` from then on (see `keyfiles::operator_token`).
#[utoipa::path(
    post,
    path = "/v1/admin/token/rotate",
    operation_id = "rotateOperatorToken",
    tag = "admin",
    description = "Replace the operator token. The answer holds the new token, shown this once; the old one is refused from the next request on (on this server; other nodes read the stored hash when they start). The new token's hash is kept in the data directory and wins over `AUDITRELAY_ADMIN_TOKEN` from then on.",
    responses(
        (status = 200, description = "The new token.", body = Rotated),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
    security(("bearerAuth" = ["operator"])),
)]
pub async fn rotate_token(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Rotated>> {
    principal.require_operator()?;
    let token = state.auth.rotate_operator_token(&state.data_dir).await?;
    tracing::info!("operator token rotated");
    // The new token is in this answer only: if the audit append failed, answering 503 would
    // lock the operator out. The failed event is in the server log (see `audit`).
    let _logged_on_failure = audit::record(
        &state,
        &principal,
        "operator_token.rotated",
        "rotate",
        Target {
            kind: "operator_token",
            id: "operator",
            name: None,
        },
        json!({}),
    )
    .await;
    Ok(Json(Rotated { token }))
}
