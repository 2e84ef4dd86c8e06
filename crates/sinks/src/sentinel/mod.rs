//! The `sentinel` sink: Microsoft Sentinel / Azure Monitor Logs.
//!
//! - `logs_ingestion` (default): the Logs Ingestion API. An OAuth2 client-credentials token from
//!   Microsoft Entra ID (cached until shortly before it expires), then
//!   `POST {endpoint}/dataCollectionRules/{dcr_id}/streams/{stream}?api-version=2023-01-01` with a
//!   JSON array of records, split into calls of at most [`MAX_CALL_BYTES`].
//! - `data_collector`: the HTTP Data Collector API's request shape, SharedKey-signed. Microsoft
//!   shut that API off on 2026-09-14; the mode remains for compatible receivers.
//!
//! Every record is the format's JSON object (`json` or `ocsf`) with a `TimeGenerated` member
//! (the event's `occurred_at`) spliced in first.

mod config;
mod request;
mod sink;
mod token;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

pub use config::{
    validate, DataCollectorConfig, DataCollectorMode, LogsIngestionConfig, LogsIngestionMode, SentinelConfig,
    CLIENT_SECRET, DATA_COLLECTOR_API_VERSION, DEFAULT_AUTHORITY_URL, DEFAULT_LOG_TYPE, DEFAULT_SCOPE,
    LOGS_INGESTION_API_VERSION, MODE_DATA_COLLECTOR, MODE_LOGS_INGESTION, SHARED_KEY,
};
pub use request::{shared_key_signature, DATA_COLLECTOR_MAX_POST_BYTES, MAX_CALL_BYTES, TIME_GENERATED};
pub use sink::{Clock, SentinelSink};
pub use token::{DEFAULT_LIFETIME, REFRESH_SKEW};

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(SentinelSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for SentinelConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "sentinel",
        formats: &["json", "ocsf"],
        secrets: &[
            SecretSpec::optional(CLIENT_SECRET, "required when `mode` is `logs_ingestion` (the default)"),
            SecretSpec::optional(SHARED_KEY, "required when `mode` is `data_collector`"),
        ],
        rotating_secrets: &[],
    };

    fn parse(config: &Value) -> Result<Self, ConfigError> {
        SentinelConfig::parse(config)
    }

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
