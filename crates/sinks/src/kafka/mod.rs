//! The `kafka` sink: each event becomes one record on a topic, produced by librdkafka with an
//! idempotent producer (`acks=all`), so a broker-side retry never writes a record twice and
//! records of one key keep their order within a partition.
//!
//! The record key is the tenant id by default, so one tenant's events land in one partition in
//! offset order. Headers carry the event id, type, tenant and offset, so a consumer can route
//! and deduplicate without parsing the value. A batch counts as delivered only when the broker
//! acknowledged every one of its records.

mod config;
mod record;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub use config::{
    validate, Brokers, Compression, KafkaConfig, KafkaSettings, RecordKey, SaslMechanism, DEFAULT_MESSAGE_TIMEOUT_MS,
};
pub use record::{record_key, HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_OFFSET, HEADER_TENANT};
pub use sink::KafkaSink;

use crate::{ConfigError, Secrets, Sink, SinkEnv};

/// Builds a ready-to-send sink from a validated definition. The producer connects lazily.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(KafkaSink::new(config, secrets, format, env)?))
}

use crate::SecretSpec;

impl crate::KindConfig for KafkaConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "kafka",
        formats: &["json", "cef", "leef", "ocsf", "raw"],
        secrets: &[SecretSpec::optional("sasl_password", "required with `sasl_mechanism`")],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
