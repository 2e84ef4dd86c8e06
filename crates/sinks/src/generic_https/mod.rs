//! The `generic_https` sink: any HTTPS receiver, in `json`, `cef`, `leef` or `ocsf`, with an
//! optional credential header. Batched (one request per batch) or `per_event` (one request per
//! event, with `X-Auditrelay-Digest`, `-Event-Id`, `-Tenant` and `-Event-Type`).

mod config;
mod request;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

pub use config::{validate, GenericHttpsConfig, AUTH_VALUE};
pub use request::{
    digest, id_header_value, HttpRequest, CONTENT_TYPE_JSON, CONTENT_TYPE_TEXT, HEADER_BATCH_ID, HEADER_DIGEST,
    HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_TENANT,
};
pub use sink::GenericHttpsSink;

pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(GenericHttpsSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for GenericHttpsConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "generic_https",
        formats: &["json", "cef", "leef", "ocsf"],
        secrets: &[SecretSpec::optional(
            AUTH_VALUE,
            "required with `auth_header`: the header's value",
        )],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
