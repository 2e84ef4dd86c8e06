//! What `sinkKinds` reads: the very answer of `GET /v1/sink-kinds`, so the two cannot differ.

use serde_json::Value;

use crate::api::sink_kinds::list_sink_kinds;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

/// The kinds this build can run, each with its formats, secrets, config schema and defaults.
/// Any valid token may read them (api.md: `GET /v1/sink-kinds` takes any valid token).
pub async fn sink_kinds(_state: &AppState, principal: &Principal) -> ApiResult<Value> {
    let axum::Json(answer) = list_sink_kinds(principal.clone()).await?;
    Ok(answer)
}
