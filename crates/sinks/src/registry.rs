//! The one place that knows every sink kind: what it accepts and how to build it.

use std::sync::Arc;

use serde_json::Value;

use auditrelay_format::Format;

#[cfg(feature = "kafka")]
use crate::kafka;
use crate::{datadog, elastic, generic_https, s3, sentinel, splunk_hec, syslog, webhook, ConfigError, Secrets, Sink};

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

/// What a kind accepts, for save-time validation and the API's answers.
#[derive(Debug)]
pub struct KindSpec {
    pub kind: &'static str,
    /// Formats the kind can send; the first is the default.
    pub formats: &'static [&'static str],
    /// Secret names it understands.
    pub secrets: &'static [&'static str],
    /// Secrets that keep signing alongside their replacement for a grace period after a change.
    pub rotating_secrets: &'static [&'static str],
}

const KINDS: &[KindSpec] = &[
    KindSpec {
        kind: "webhook",
        formats: &["json"],
        secrets: &["signing_secret"],
        rotating_secrets: &["signing_secret"],
    },
    KindSpec {
        kind: "splunk_hec",
        formats: &["json", "cef", "leef", "ocsf", "raw"],
        secrets: &["token"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "sentinel",
        formats: &["json", "ocsf"],
        secrets: &["client_secret", "shared_key"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "elastic",
        formats: &["json", "ocsf", "raw"],
        secrets: &["api_key", "password"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "datadog",
        formats: &["json", "ocsf", "cef", "leef"],
        secrets: &["api_key"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "generic_https",
        formats: &["json", "cef", "leef", "ocsf"],
        secrets: &["auth_value"],
        rotating_secrets: &[],
    },
    #[cfg(feature = "kafka")]
    KindSpec {
        kind: "kafka",
        formats: &["json", "cef", "leef", "ocsf", "raw"],
        secrets: &["sasl_password"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "s3",
        formats: &["json", "ocsf", "raw"],
        secrets: &["access_key_id", "secret_access_key"],
        rotating_secrets: &[],
    },
    KindSpec {
        kind: "syslog",
        formats: &["cef", "leef", "json"],
        secrets: &[],
        rotating_secrets: &[],
    },
];

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
];

pub fn kind_spec(kind: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.kind == kind)
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
        if !spec.secrets.contains(&name.as_str()) && !name.starts_with("previous_") {
            return Err(ConfigError::new(
                format!("secrets.{name}"),
                format!(
                    "`{kind}` sinks take no secret named `{name}` (known: {})",
                    spec.secrets.join(", ")
                ),
            ));
        }
    }
    match kind {
        "webhook" => webhook::validate(config, secrets, env).await,
        "splunk_hec" => splunk_hec::validate(config, secrets, env).await,
        "sentinel" => sentinel::validate(config, secrets, env).await,
        "elastic" => elastic::validate(config, secrets, env).await,
        "datadog" => datadog::validate(config, secrets, env).await,
        "generic_https" => generic_https::validate(config, secrets, env).await,
        #[cfg(feature = "kafka")]
        "kafka" => kafka::validate(config, secrets, env).await,
        "s3" => s3::validate(config, secrets, env).await,
        "syslog" => syslog::validate(config, secrets, env).await,
        _ => Err(unknown_kind(kind)),
    }
}

/// Builds a ready-to-send sink from a validated definition.
pub fn build(
    kind: &str,
    config: &Value,
    secrets: &Secrets,
    format: &str,
    env: &SinkEnv,
) -> Result<Arc<dyn Sink>, ConfigError> {
    match kind {
        "webhook" => Ok(Arc::new(webhook::WebhookSink::new(config, secrets, format, env)?)),
        _ => {
            let format = Format::parse(format)
                .ok_or_else(|| ConfigError::new("format", format!("unknown format `{format}`")))?;
            match kind {
                "splunk_hec" => splunk_hec::build(config, secrets, format, env),
                "sentinel" => sentinel::build(config, secrets, format, env),
                "elastic" => elastic::build(config, secrets, format, env),
                "datadog" => datadog::build(config, secrets, format, env),
                "generic_https" => generic_https::build(config, secrets, format, env),
                #[cfg(feature = "kafka")]
                "kafka" => kafka::build(config, secrets, format, env),
                "s3" => s3::build(config, secrets, format, env),
                "syslog" => syslog::build(config, secrets, format, env),
                _ => Err(unknown_kind(kind)),
            }
        }
    }
}

fn unknown_kind(kind: &str) -> ConfigError {
    if ALL_KINDS.contains(&kind) {
        ConfigError::new("kind", format!("sink kind `{kind}` is not available in this build yet"))
    } else {
        ConfigError::new(
            "kind",
            format!("unknown sink kind `{kind}` (known: {})", ALL_KINDS.join(", ")),
        )
    }
}
