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

use crate::SecretSpec;

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

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
