//! Operator-only administration of the server itself.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::audit::{self, Target};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

/// `POST /v1/admin/token/rotate`: a new operator token, shown once; the old one is refused from
/// the next request on, on this server. The new hash is stored in the data dir and wins over
/// `AUDITRELAY_ADMIN_TOKEN` from then on (see `keyfiles::operator_token`).
pub async fn rotate_token(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "token": token })))
}
