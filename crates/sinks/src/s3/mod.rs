//! The `s3` sink: each batch becomes ONE object of JSON lines (one encoded event + `\n` each),
//! gzipped by default, `PUT` to any S3-compatible endpoint and signed with AWS Signature
//! Version 4 (the shared `aws-sigv4` signing, `crate::aws::sign::sign_s3`). The object key is
//! rendered from the batch alone (tenant, date, offset range), so a retry of the same batch
//! overwrites the same object instead of adding a duplicate.

mod config;
mod request;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub(crate) use config::dotted_bucket_rule;
pub use config::{
    validate, Compression, S3Config, ACCESS_KEY_ID, DEFAULT_KEY_TEMPLATE, DEFAULT_REGION, SECRET_ACCESS_KEY,
};
pub use request::CONTENT_TYPE;
pub use sink::S3Sink;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(S3Sink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for S3Config {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "s3",
        formats: &["json", "ocsf", "raw"],
        secrets: &[
            SecretSpec::optional(
                ACCESS_KEY_ID,
                "with `secret_access_key`; without both, the server's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
            SecretSpec::optional(SECRET_ACCESS_KEY, "with `access_key_id`"),
        ],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
