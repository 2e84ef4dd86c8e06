//! The `webhook` sink: the batch as one JSON object, signed per Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), with signing-secret rotation.

mod config;
mod sign;
mod sink;

pub use config::{
    rotation_grace, validate, WebhookConfig, DEFAULT_ROTATION_GRACE_SECS, MAX_ROTATION_GRACE_SECS,
    PREVIOUS_SIGNING_SECRET, PREVIOUS_SIGNING_SECRET_EXPIRES_AT, SIGNING_SECRET,
};
pub use sign::{generate_secret, sign, SECRET_PREFIX};
pub use sink::{batch_body, WebhookSink};

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, SecretSpec, Secrets, Sink, SinkEnv};

/// Builds the sink from a validated definition (the registry's entry point, as for every kind).
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(WebhookSink::new(config, secrets, format.name(), env)?))
}

impl crate::KindConfig for WebhookConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "webhook",
        formats: &["json"],
        secrets: &[SecretSpec::optional(
            SIGNING_SECRET,
            "`whsec_…`; generated when absent and shown once",
        )],
        rotating_secrets: &[SIGNING_SECRET],
    };

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}
