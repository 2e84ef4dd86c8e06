//! The one place that knows how to validate and build every sink kind (through [`SinkConfig`]).

use std::sync::Arc;

use serde_json::Value;

use auditrelay_format::Format;

use crate::kinds::{SinkConfig, SPECS};
use crate::{ConfigError, Secrets, Sink};

pub use crate::kinds::KindSpec;

/// Process-wide settings every sink obeys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SinkEnv {
    /// Lets sinks target loopback, private, link-local and metadata addresses. Off by default
    /// (SSRF guard); tests and on-premises receivers turn it on explicitly.
    pub allow_private_networks: bool,
    /// Ranges sinks may reach although the address policy forbids them (an internal collector
    /// at `10.20.0.0/16`), while the rest of the policy stays in force.
    pub allowed_private_cidrs: Vec<crate::http::Cidr>,
}

/// Every kind named in the public contract, implemented or not, so the API can tell "unknown
/// kind" from "not available in this build".
pub const ALL_KINDS: &[&str] = &[
    "webhook",
    "splunk_hec",
    "sentinel",
    "elastic",
    "datadog",
    "generic_https",
    "kafka",
    "s3",
    "syslog",
    "otlp",
    "cloudwatch_logs",
    "kinesis",
    "firehose",
    "eventbridge",
    "security_lake",
    "pubsub",
];

pub fn kind_spec(kind: &str) -> Option<&'static KindSpec> {
    SPECS.iter().copied().find(|k| k.kind == kind)
}

/// Checks a definition at save time (fields, URL, the SSRF policy on what the host resolves to)
/// and fills in secrets the kind generates when absent. Returns the generated secrets, which the
/// API shows once.
pub async fn validate_config(
    kind: &str,
    config: &Value,
    secrets: &mut Secrets,
    env: &SinkEnv,
) -> Result<Secrets, ConfigError> {
    let spec = kind_spec(kind).ok_or_else(|| unknown_kind(kind))?;
    for name in secrets.keys() {
        if !spec.secret_names().any(|s| s == name) && !name.starts_with("previous_") {
            let known: Vec<&str> = spec.secret_names().collect();
            return Err(ConfigError::new(
                format!("secrets.{name}"),
                format!(
                    "`{kind}` sinks take no secret named `{name}` (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    // The typed parse decides the kind; each kind's own `validate` then adds the secrets and
    // the network checks (the SSRF policy on what its hosts resolve to).
    SinkConfig::parse(kind, config)?
        .validate_kind(config, secrets, env)
        .await
}

/// Builds a ready-to-send sink from a validated definition.
pub fn build(
    kind: &str,
    config: &Value,
    secrets: &Secrets,
    format: &str,
    env: &SinkEnv,
) -> Result<Arc<dyn Sink>, ConfigError> {
    let parsed = SinkConfig::parse(kind, config)?;
    let format =
        Format::parse(format).ok_or_else(|| ConfigError::new("format", format!("unknown format `{format}`")))?;
    parsed.build_kind(config, secrets, format, env)
}

pub(crate) fn unknown_kind(kind: &str) -> ConfigError {
    if ALL_KINDS.contains(&kind) {
        ConfigError::new("kind", format!("sink kind `{kind}` is not available in this build yet"))
    } else {
        ConfigError::new(
            "kind",
            format!("unknown sink kind `{kind}` (known: {})", ALL_KINDS.join(", ")),
        )
    }
}
