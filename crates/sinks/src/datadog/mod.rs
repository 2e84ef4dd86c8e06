//! The `datadog` sink: the batch as log entries posted, gzipped, to Datadog's logs intake v2
//! (`https://http-intake.logs.{site}/api/v2/logs`) with `DD-API-KEY`, split into as many
//! requests as Datadog's limits need (1,000 entries, 5 MB each), entries over 1 MB truncated
//! with a marker.

mod config;
mod request;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub use config::{validate, DatadogConfig, API_KEY, DEFAULT_DDSOURCE, DEFAULT_SITE, MAX_FIELD_BYTES, MAX_TAGS_BYTES};
pub use request::{
    MAX_BODY_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, TIMESTAMP_MAX_AGE, TIMESTAMP_MAX_AHEAD, TRUNCATION_SUFFIX,
};
pub use sink::DatadogSink;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(DatadogSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for DatadogConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "datadog",
        formats: &["json", "ocsf", "cef", "leef"],
        secrets: &[SecretSpec::required(API_KEY)],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
