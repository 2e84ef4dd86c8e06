//! The `elastic` sink: one `_bulk` request per batch (NDJSON, `create` or `index`, the event id
//! as `_id` so a repeat is harmless), API-key or basic auth, and per-item results: a 200 with
//! `"errors": true` retries only the items that failed with 429/5xx and dead-letters the rest.

mod config;
mod index;
mod request;
mod response;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

pub use config::{validate, Action, AuthMode, ElasticConfig, API_KEY, DEFAULT_INDEX, PASSWORD};
pub use index::{IndexTemplate, MAX_INDEX_BYTES};
pub use request::{bulk_body, document_id, BulkBody};
pub use response::{classify_answer, item_verdict, ItemVerdict};
pub use sink::{BulkRequest, ElasticSink, CONTENT_TYPE_NDJSON};

pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(ElasticSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for ElasticConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "elastic",
        formats: &["json", "ocsf", "raw"],
        secrets: &[
            SecretSpec::optional(API_KEY, "required when `auth` is `api_key` (the default)"),
            SecretSpec::optional(PASSWORD, "required when `auth` is `basic`"),
        ],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
