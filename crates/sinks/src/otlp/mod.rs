//! The `otlp` sink: OpenTelemetry logs over OTLP/HTTP to any logs endpoint (an OpenTelemetry
//! Collector, New Relic, Grafana Loki 3, Falcon LogScale, CloudWatch Logs' OTLP endpoint).
//! Each event becomes one `LogRecord` by the inverse of the OTLP ingest mapping
//! (`auditrelay_otlp::from_event`), grouped by resource and scope into one
//! `ExportLogsServiceRequest` per batch; `http/protobuf` (default) or `http/json`, gzip by default.

mod config;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

use crate::{ConfigError, SecretSpec, Secrets, Sink, SinkEnv};

pub use config::{validate, OtlpConfig, Protocol, AUTH_VALUE};
pub use sink::{classify_otlp, OtlpSink};

pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(OtlpSink::new(config, secrets, format, env)?))
}

impl crate::KindConfig for OtlpConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "otlp",
        formats: &["otlp"],
        secrets: &[SecretSpec::optional(
            AUTH_VALUE,
            "the value of `auth_header` (default `Authorization`), e.g. `Bearer …` or an API key",
        )],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve(None).map(drop)
    }
}
