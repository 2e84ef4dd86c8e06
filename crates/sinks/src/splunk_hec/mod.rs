//! The `splunk_hec` sink: the batch as HEC event envelopes posted to
//! `/services/collector/event` with `Authorization: Splunk <token>`, HEC's answer codes read
//! (a bad token pauses the sink instead of dropping events), and optional indexer
//! acknowledgements (the batch counts as delivered only once Splunk says it is indexed).

mod config;
mod request;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub use config::{validate, SplunkHecConfig, DEFAULT_SOURCETYPE, MAX_FIELD_BYTES, TOKEN};
pub use request::CHANNEL_HEADER;
pub use sink::{SplunkHecSink, ACK_POLL_FIRST, ACK_POLL_MAX};

use crate::{ConfigError, Secrets, Sink, SinkEnv};

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(SplunkHecSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for SplunkHecConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "splunk_hec",
        formats: &["json", "cef", "leef", "ocsf", "raw"],
        secrets: &[SecretSpec::required(TOKEN)],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
