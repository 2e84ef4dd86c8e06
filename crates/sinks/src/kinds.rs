//! Every sink kind, as one typed enum: [`SinkConfig`] has a variant per kind, so a match over it
//! is checked by the compiler, and [`sink_kinds`] describes each kind (formats, secrets, the
//! JSON Schema of its `config`) from the same types that parse it.
//!
//! Adding a kind: a folder beside `webhook/` with a config struct implementing [`KindConfig`],
//! and one line in the `sink_kinds!` invocation below.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

#[cfg(feature = "kafka")]
use crate::kafka::KafkaConfig;
use crate::{
    cloudwatch_logs::CloudWatchLogsConfig, datadog::DatadogConfig, elastic::ElasticConfig,
    eventbridge::EventBridgeConfig, firehose::FirehoseConfig, generic_https::GenericHttpsConfig,
    kinesis::KinesisConfig, otlp::OtlpConfig, pubsub::PubSubConfig, s3::S3Config, security_lake::SecurityLakeConfig,
    sentinel::SentinelConfig, splunk_hec::SplunkHecConfig, syslog::SyslogConfig, webhook::WebhookConfig, ConfigError,
};

/// Secrets every kind takes, for the stage in front of it (the engine's filter and transform):
/// the key of `transform.hash`.
pub const STAGE_SECRETS: &[SecretSpec] = &[SecretSpec::optional(
    "hash_key",
    "the HMAC key of `transform.hash`; generated (and shown once) when a transform hashes and none is given",
)];

/// A secret a kind understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecretSpec {
    pub name: &'static str,
    /// Whether every definition of the kind needs it.
    pub required: bool,
    /// When it is needed although not always (`auth` is `basic`), or what happens without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

impl SecretSpec {
    pub const fn required(name: &'static str) -> SecretSpec {
        SecretSpec {
            name,
            required: true,
            note: None,
        }
    }

    pub const fn optional(name: &'static str, note: &'static str) -> SecretSpec {
        SecretSpec {
            name,
            required: false,
            note: Some(note),
        }
    }
}

/// What a kind accepts, for save-time validation and the API's answers.
#[derive(Debug)]
pub struct KindSpec {
    pub kind: &'static str,
    /// Formats the kind can send; the first is the default.
    pub formats: &'static [&'static str],
    /// Secrets it understands.
    pub secrets: &'static [SecretSpec],
    /// Secrets that keep signing alongside their replacement for a grace period after a change.
    pub rotating_secrets: &'static [&'static str],
}

impl KindSpec {
    pub fn secret_names(&self) -> impl Iterator<Item = &'static str> {
        self.secrets.iter().chain(STAGE_SECRETS).map(|s| s.name)
    }

    pub fn default_format(&self) -> &'static str {
        self.formats.first().copied().unwrap_or("json")
    }
}

/// A kind's own default batching, where the engine's default (100 events, 1 MiB, 100 ms) does
/// not suit it (a data lake wants few large objects). The same bounds as the batch policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindBatch {
    pub max_events: usize,
    pub max_bytes: usize,
    pub flush_interval_ms: u64,
}

/// A kind's typed `config`.
pub trait KindConfig: DeserializeOwned + Serialize + JsonSchema + Sized {
    const SPEC: KindSpec;

    /// The batching a definition of this kind gets when it sets none; `None`: the engine's.
    const DEFAULT_BATCH: Option<KindBatch> = None;

    /// Parses `config` (the shape the schema describes).
    fn parse(config: &Value) -> Result<Self, ConfigError> {
        crate::typed::parse_config(config)
    }

    /// The checks beyond the schema that need neither the network nor the secrets (a URL's
    /// syntax, a byte length).
    fn check(&self) -> Result<(), ConfigError>;
}

/// What `GET /v1/sink-kinds` says about a kind (the engine adds the definition defaults).
#[derive(Debug, Clone, Serialize)]
pub struct SinkKindInfo {
    pub kind: &'static str,
    pub formats: &'static [&'static str],
    pub default_format: &'static str,
    pub secrets: Vec<SecretSpec>,
    /// JSON Schema 2020-12 of `config`, self-contained (`$schema`, `$defs`).
    pub config_schema: Value,
}

macro_rules! sink_kinds {
    ($($(#[$meta:meta])* $variant:ident($ty:ty) in $module:ident,)*) => {
        /// A parsed `config`, one variant per kind.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "kind", content = "config", rename_all = "snake_case")]
        // One per sink definition, short-lived: the size difference costs nothing worth a Box.
        #[allow(clippy::large_enum_variant)]
        pub enum SinkConfig {
            $($(#[$meta])* $variant($ty),)*
        }

        impl SinkConfig {
            /// Parses and checks `config` for `kind`, without the network or the secrets.
            pub fn parse(kind: &str, config: &Value) -> Result<SinkConfig, ConfigError> {
                $(
                    $(#[$meta])*
                    if kind == <$ty as KindConfig>::SPEC.kind {
                        let parsed = <$ty as KindConfig>::parse(config)?;
                        parsed.check()?;
                        return Ok(SinkConfig::$variant(parsed));
                    }
                )*
                Err(crate::registry::unknown_kind(kind))
            }

            pub fn spec(&self) -> &'static KindSpec {
                match self {
                    $($(#[$meta])* SinkConfig::$variant(_) => &<$ty as KindConfig>::SPEC,)*
                }
            }

            /// The kind's save-time checks beyond the parse (secrets, the SSRF policy on what
            /// its hosts resolve to): its module's `validate`.
            pub(crate) async fn validate_kind(
                &self,
                config: &Value,
                secrets: &mut crate::Secrets,
                env: &crate::SinkEnv,
            ) -> Result<crate::Secrets, ConfigError> {
                match self {
                    $($(#[$meta])* SinkConfig::$variant(_) => crate::$module::validate(config, secrets, env).await,)*
                }
            }

            /// A ready-to-send sink: its module's `build`.
            pub(crate) fn build_kind(
                &self,
                config: &Value,
                secrets: &crate::Secrets,
                format: auditrelay_format::Format,
                env: &crate::SinkEnv,
            ) -> Result<std::sync::Arc<dyn crate::Sink>, ConfigError> {
                match self {
                    $($(#[$meta])* SinkConfig::$variant(_) => crate::$module::build(config, secrets, format, env),)*
                }
            }
        }

        /// `kind`'s own default batching, if it has one (see [`KindBatch`]).
        pub fn default_batch(kind: &str) -> Option<KindBatch> {
            $(
                $(#[$meta])*
                if kind == <$ty as KindConfig>::SPEC.kind {
                    return <$ty as KindConfig>::DEFAULT_BATCH;
                }
            )*
            None
        }

        /// Every kind built in, in the order the API lists them.
        pub(crate) const SPECS: &[&KindSpec] = &[$($(#[$meta])* &<$ty as KindConfig>::SPEC,)*];

        /// The JSON Schema of `kind`'s `config` (2020-12, self-contained), or `None` for a kind
        /// not built in.
        pub fn config_schema(kind: &str) -> Option<Value> {
            $(
                $(#[$meta])*
                if kind == <$ty as KindConfig>::SPEC.kind {
                    return Some(crate::typed::schema_of::<$ty>());
                }
            )*
            None
        }
    };
}

// Adding a kind: a folder with its config type (`KindConfig`), `validate` and `build`, its
// `pub mod` in lib.rs, and one line here; the parse, the dispatch, the schema, the kind list,
// `GET /v1/sink-kinds` and the OpenAPI `oneOf` all follow from this list.
sink_kinds! {
    Webhook(WebhookConfig) in webhook,
    SplunkHec(SplunkHecConfig) in splunk_hec,
    Sentinel(SentinelConfig) in sentinel,
    Elastic(ElasticConfig) in elastic,
    Datadog(DatadogConfig) in datadog,
    GenericHttps(GenericHttpsConfig) in generic_https,
    #[cfg(feature = "kafka")]
    Kafka(KafkaConfig) in kafka,
    S3(S3Config) in s3,
    Syslog(SyslogConfig) in syslog,
    Otlp(OtlpConfig) in otlp,
    CloudwatchLogs(CloudWatchLogsConfig) in cloudwatch_logs,
    Kinesis(KinesisConfig) in kinesis,
    Firehose(FirehoseConfig) in firehose,
    Eventbridge(EventBridgeConfig) in eventbridge,
    SecurityLake(SecurityLakeConfig) in security_lake,
    Pubsub(PubSubConfig) in pubsub,
}

/// Each kind built in, described from its types.
pub fn sink_kinds() -> Vec<SinkKindInfo> {
    SPECS
        .iter()
        .map(|spec| SinkKindInfo {
            kind: spec.kind,
            formats: spec.formats,
            default_format: spec.default_format(),
            secrets: spec.secrets.iter().chain(STAGE_SECRETS).copied().collect(),
            config_schema: config_schema(spec.kind).unwrap_or(Value::Null),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_self_contained_schema() {
        let kinds = sink_kinds();
        assert_eq!(kinds.len(), SPECS.len());
        for info in kinds {
            let schema = &info.config_schema;
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                info.kind
            );
            assert_eq!(info.default_format, info.formats[0]);
            // No `$ref` points outside the document.
            let text = schema.to_string();
            for (i, _) in text.match_indices("\"$ref\":\"") {
                let target = &text[i + 8..];
                assert!(
                    target.starts_with("#/$defs/"),
                    "{}: {}",
                    info.kind,
                    &target[..40.min(target.len())]
                );
            }
        }
        assert!(config_schema("carrier-pigeon").is_none());
    }

    /// Schema patterns are ECMA-262 regular expressions, which consumers compile in `u` mode:
    /// there a backslash may only escape syntax characters or start a known escape.
    #[test]
    fn patterns_use_only_escapes_ecma_unicode_mode_allows() {
        fn patterns(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, x) in map {
                        match x {
                            Value::String(p) if k == "pattern" => out.push(p.clone()),
                            _ => patterns(x, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|x| patterns(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        for info in sink_kinds() {
            patterns(&info.config_schema, &mut all);
        }
        assert!(all.len() > 20, "{}", all.len());
        for p in &all {
            let mut chars = p.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    let next = chars.next().unwrap_or(' ');
                    assert!(
                        "^$\\.*+?()[]{}|/".contains(next) || "dDwWsStnrfvux0pP".contains(next),
                        "`\\{next}` in {p}"
                    );
                }
            }
        }
    }
}
