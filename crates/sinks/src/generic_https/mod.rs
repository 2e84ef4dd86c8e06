//! The `generic_https` sink.
// SINK HELPER: replace this stub (keep `validate` and `build` signatures).

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

pub async fn validate(_config: &Value, _secrets: &mut Secrets, _env: &SinkEnv) -> Result<Secrets, ConfigError> {
    Err(ConfigError::new(
        "kind",
        "sink kind `generic_https` is not available in this build yet",
    ))
}

pub fn build(
    _config: &Value,
    _secrets: &Secrets,
    _format: Format,
    _env: &SinkEnv,
) -> Result<Arc<dyn Sink>, ConfigError> {
    Err(ConfigError::new(
        "kind",
        "sink kind `generic_https` is not available in this build yet",
    ))
}
