//! `GET /v1/sink-kinds` (api.md "One typed sink model, several projections"): every sink kind
//! with its formats, secrets, the JSON Schema of its `config` and the definition defaults.

use axum::Json;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::ApiResult;

/// Any valid token may read it: it describes the server, not a tenant's data, but every `/v1`
/// route authenticates.
pub async fn list_sink_kinds(_principal: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "kinds": auditrelay_engine::sink_kinds() })))
}
