//! `GET /v1/sink-kinds` (api.md "One typed sink model, several projections"): every sink kind
//! with its formats, secrets, the JSON Schema of its `config` and the definition defaults.

use axum::Json;
use serde_json::{json, Value};

use super::doc;
use crate::auth::Principal;
use crate::error::ApiResult;

doc::json_schema! {
    /// The answer of `GET /v1/sink-kinds`. Each `config_schema` is the JSON Schema the server
    /// parses that kind's `config` with (also in this document as `SinkConfig_<kind>`).
    pub struct SinkKindList = {
        "type": "object",
        "required": ["kinds"],
        "properties": {
            "kinds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "formats", "default_format", "secrets", "config_schema", "defaults"],
                    "properties": {
                        "kind": { "$ref": "#/components/schemas/SinkKind" },
                        "formats": { "type": "array", "items": { "type": "string", "enum": ["json", "cef", "leef", "ocsf", "raw"] } },
                        "default_format": { "type": "string", "enum": ["json", "cef", "leef", "ocsf", "raw"] },
                        "secrets": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "required"],
                                "properties": {
                                    "name": { "type": "string" },
                                    "required": { "type": "boolean", "description": "Whether every definition of the kind needs it." },
                                    "note": { "type": "string", "description": "When it is needed although not always, or what happens without it." }
                                }
                            }
                        },
                        "config_schema": { "type": "object", "description": "JSON Schema 2020-12 of the kind's `config`, self-contained (`$schema`, `$defs`)." },
                        "defaults": { "type": "object", "description": "What a sink of this kind gets for each field its definition leaves out (`batch`, `retry`, `timeout_ms`, …)." }
                    }
                }
            }
        }
    }
}

/// List the sink kinds this build can run.
///
/// Any valid token may read it: it describes the server, not a tenant's data, but every `/v1`
/// route authenticates.
#[utoipa::path(
    get,
    path = "/v1/sink-kinds",
    operation_id = "listSinkKinds",
    tag = "sinks",
    responses(
        (status = 200, description = "Every kind with its formats, secrets, the JSON Schema of its `config` and its defaults.", body = SinkKindList),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyRequests),
    ),
    security(("bearerAuth" = [])),
)]
pub async fn list_sink_kinds(_principal: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "kinds": auditrelay_engine::sink_kinds() })))
}
