//! What `sinkKinds` reads.
//!
//! Stand-in until `GET /v1/sink-kinds` (and `auditrelay_sinks::sink_kinds()` /
//! `config_schema(kind)`) exist: then this function becomes a call of that handler, and
//! nothing else in the GraphQL layer changes, since it already answers REST's shape
//! (`{"kinds": [{"kind", "formats", "default_format", "secrets": [{"name", "required"}],
//! "config_schema", "defaults"}]}`).

use auditrelay_engine::spec::{
    DEFAULT_BATCH, DEFAULT_BREAKER, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS,
};
use auditrelay_sinks::registry::ALL_KINDS;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

/// The kinds this build can run, each with its formats and secrets. Any valid token may read
/// them (api.md: `GET /v1/sink-kinds` takes any valid token).
///
/// Limits of the stand-in: `config_schema` is null, and `required` is false for every secret
/// because the registry does not say which ones a kind needs (its validation does, per config).
pub async fn sink_kinds(_state: &AppState, _principal: &Principal) -> ApiResult<Value> {
    let defaults = json!({
        "batch": DEFAULT_BATCH,
        "retry": DEFAULT_RETRY,
        "breaker": DEFAULT_BREAKER,
        "timeout_ms": DEFAULT_TIMEOUT_MS,
        "max_in_flight": DEFAULT_MAX_IN_FLIGHT,
        "on_exhausted": "dead_letter",
        "start_at": "now",
    });
    // A kind named by the contract but left out of this build (kafka without its feature) has
    // no spec: it cannot be created here, so it is not listed.
    let kinds: Vec<Value> = ALL_KINDS
        .iter()
        .filter_map(|k| auditrelay_sinks::kind_spec(k))
        .map(|spec| {
            json!({
                "kind": spec.kind,
                "formats": spec.formats,
                "default_format": spec.formats.first().copied().unwrap_or("json"),
                "secrets": spec.secrets.iter().map(|s| json!({ "name": s, "required": false })).collect::<Vec<_>>(),
                "config_schema": null,
                "defaults": defaults,
            })
        })
        .collect();
    Ok(json!({ "kinds": kinds }))
}
