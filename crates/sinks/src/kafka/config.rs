//! The `kafka` sink's `config` and `secrets`: parsing and save-time validation.

use std::net::IpAddr;
use std::path::PathBuf;

use auditrelay_format::FormatOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

/// How long librdkafka may try to get one record acknowledged before it reports a failure.
/// Below the engine's default attempt timeout (10 s), so a broker outage ends an attempt with a
/// classified error instead of the engine dropping it half-way.
pub const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 8_000;
/// The port when a broker is given without one.
const DEFAULT_PORT: u16 = 9092;
/// More bootstrap brokers than this is a mistake, not a cluster.
const MAX_BROKERS: usize = 32;

/// What becomes the record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// The tenant id: one tenant's events share a partition, so their order holds.
    Tenant,
    /// A field of the canonical event (`actor.id`, `target.type`, …); events without it fall
    /// back to the tenant id.
    Field(Vec<String>),
}

/// `compression.type` of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// SASL mechanisms librdkafka handles without extra system libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    const NAMES: &'static [&'static str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

    fn parse(s: &str) -> Option<SaslMechanism> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Some(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(SaslMechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

crate::typed::with_format_options! {
    /// `config` of a `kafka` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "kafka config", transform = kafka_rules)]
    pub struct KafkaConfig {
        /// Bootstrap brokers, `host:port` (port 9092 when omitted; IPv6 in brackets), as a list or a
        /// comma-separated string; 1 to 32.
        #[schemars(schema_with = "brokers_schema")]
        pub brokers: Brokers,
        /// The topic: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
        #[schemars(pattern(r"^[a-zA-Z0-9._-]{1,249}$"), extend("not" = {"enum": [".", ".."]}))]
        pub topic: String,
        /// The record key: `tenant` (default: one tenant's events keep their order in one partition) or
        /// a field path of the event such as `actor.id` (events without it fall back to the tenant).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(max = 128), pattern(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"), extend("default" = "tenant"))]
        pub key: Option<String>,
        /// The producer's `compression.type` (default `none`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = "none"))]
        pub compression: Option<Compression>,
        /// TLS to the brokers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = false))]
        pub tls: Option<bool>,
        /// A PEM file of the CA(s) to trust (only with `tls: true`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1))]
        pub ca_file: Option<String>,
        /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (any case); needs `sasl_username` and the
        /// `sasl_password` secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "sasl_mechanism_schema")]
        pub sasl_mechanism: Option<String>,
        /// The SASL user name (with `sasl_mechanism`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1))]
        pub sasl_username: Option<String>,
        /// How long librdkafka may try to get one record acknowledged, in ms (100 to 300000).
        #[serde(default, deserialize_with = "crate::typed::opt_uint", skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 100, max = 300_000), extend("default" = DEFAULT_MESSAGE_TIMEOUT_MS))]
        pub message_timeout_ms: Option<u64>,
        /// librdkafka's idempotent producer (default true); off only for brokers that refuse it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = true))]
        pub idempotent: Option<bool>,
    }
}

/// `brokers` as given: a list, or one comma-separated string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Brokers {
    List(Vec<String>),
    Csv(String),
}

// By hand rather than `untagged`: a bad list item keeps its index in the error's path.
impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Brokers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of `host:port` strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Brokers, E> {
                Ok(Brokers::Csv(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Brokers, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    list.push(item);
                }
                Ok(Brokers::List(list))
            }
        }
        d.deserialize_any(Visitor)
    }
}

const BROKER_PATTERN: &str = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253}|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)(:\+?0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?";

/// What `str::trim` removes (Unicode `White_Space`), spelled out: `\\s` differs between regex
/// dialects (ECMA-262's includes U+FEFF).
const WS: &str = r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

fn brokers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // `if`/`then`/`else` rather than `anyOf`: an error then points at the list item at fault.
    schemars::json_schema!({
        "if": {"type": "array"},
        "then": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BROKERS,
            "items": {"type": "string", "pattern": format!("^{BROKER_PATTERN}$")},
        },
        "else": {
            "type": "string",
            "pattern": format!(r"^{WS}*{BROKER_PATTERN}{WS}*(,{WS}*{BROKER_PATTERN}{WS}*){{0,{}}}$", MAX_BROKERS - 1),
        },
    })
}

fn sasl_mechanism_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": crate::typed::any_case_pattern(SaslMechanism::NAMES, false),
    })
}

/// `ca_file` only with `tls: true`; `sasl_mechanism` and `sasl_username` together.
fn kafka_rules(schema: &mut schemars::Schema) {
    crate::typed::add_rule(schema, crate::typed::only_when_true("tls", "ca_file"));
    let given = |key: &str| serde_json::json!({"properties": {key: {"type": "string"}}, "required": [key]});
    let needs = |key: &str| serde_json::json!({"properties": {key: {"type": "string"}}, "required": [key]});
    crate::typed::add_rule(
        schema,
        serde_json::json!({"if": given("sasl_mechanism"), "then": needs("sasl_username")}),
    );
    crate::typed::add_rule(
        schema,
        serde_json::json!({"if": given("sasl_username"), "then": needs("sasl_mechanism")}),
    );
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `(host, port)`; IPv6 hosts without brackets.
    pub brokers: Vec<(String, u16)>,
    pub topic: String,
    pub key: RecordKey,
    pub compression: Compression,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// Mechanism and user name; the password is the `sasl_password` secret.
    pub sasl: Option<(SaslMechanism, String)>,
    pub message_timeout_ms: u64,
    /// librdkafka's idempotent producer (default). Off only for brokers that refuse it (some
    /// Event Hubs tiers; tansu on S3 storage fences it): then one request in flight per
    /// connection keeps the order, and a retried request may duplicate records.
    pub idempotent: bool,
    pub options: FormatOptions,
}

impl KafkaSettings {
    /// `bootstrap.servers` as librdkafka wants it.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers
            .iter()
            .map(|(host, port)| http::host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses `config` without touching the network or the file system.
pub fn parse_config(config: &Value) -> Result<KafkaSettings, ConfigError> {
    crate::typed::parse_config::<KafkaConfig>(config)?.resolve()
}

impl KafkaConfig {
    /// What the schema cannot say: whether an IPv6 broker address is one.
    pub fn resolve(&self) -> Result<KafkaSettings, ConfigError> {
        let brokers = parse_brokers(&self.brokers)?;
        if !is_topic_name(&self.topic) {
            return Err(ConfigError::new(
                "config.topic",
                "must be 1 to 249 characters of [a-zA-Z0-9._-], and not `.` or `..`",
            ));
        }
        let key = match self.key.as_deref() {
            None | Some("tenant") => RecordKey::Tenant,
            Some(s) if is_field_path(s) => RecordKey::Field(s.split('.').map(str::to_owned).collect()),
            Some(_) => {
                return Err(ConfigError::new(
                    "config.key",
                    "must be `tenant` or a field path of the event such as `actor.id`",
                ))
            }
        };
        let tls = self.tls.unwrap_or(false);
        let ca_file = match self.ca_file.as_deref() {
            None => None,
            Some(s) if !s.is_empty() && !tls => {
                return Err(ConfigError::new("config.ca_file", "only meaningful with `tls: true`"))
            }
            Some(s) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(_) => return Err(ConfigError::new("config.ca_file", "must be a non-empty path")),
        };
        let mechanism = match self.sasl_mechanism.as_deref() {
            None => None,
            Some(s) => Some(SaslMechanism::parse(s).ok_or_else(|| {
                ConfigError::new(
                    "config.sasl_mechanism",
                    format!("must be one of {}", SaslMechanism::NAMES.join(", ")),
                )
            })?),
        };
        let username = match self.sasl_username.as_deref() {
            None => None,
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            Some(_) => return Err(ConfigError::new("config.sasl_username", "must be a non-empty string")),
        };
        let sasl = match (mechanism, username) {
            (Some(m), Some(u)) => Some((m, u)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "config.sasl_username",
                    "required with `sasl_mechanism`",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "config.sasl_mechanism",
                    "required with `sasl_username`",
                ))
            }
        };
        let message_timeout_ms = match self.message_timeout_ms {
            None => DEFAULT_MESSAGE_TIMEOUT_MS,
            Some(t) if (100..=300_000).contains(&t) => t,
            Some(_) => {
                return Err(ConfigError::new(
                    "config.message_timeout_ms",
                    "must be an integer from 100 to 300000",
                ))
            }
        };
        let options = self.format_options()?;
        Ok(KafkaSettings {
            brokers,
            topic: self.topic.clone(),
            key,
            compression: self.compression.unwrap_or_default(),
            tls,
            ca_file,
            sasl,
            message_timeout_ms,
            idempotent: self.idempotent.unwrap_or(true),
            options,
        })
    }
}

/// The brokers; a bad list item is named by its index (`config.brokers[1]`), a bad part of a
/// comma-separated string by its position in the message (the string is one field).
fn parse_brokers(brokers: &Brokers) -> Result<Vec<(String, u16)>, ConfigError> {
    let field = "config.brokers";
    let (list, is_list): (Vec<&str>, bool) = match brokers {
        Brokers::List(items) => (items.iter().map(String::as_str).collect(), true),
        Brokers::Csv(s) => (s.split(',').map(str::trim).collect(), false),
    };
    if list.is_empty() || list.len() > MAX_BROKERS {
        return Err(ConfigError::new(field, format!("must list 1 to {MAX_BROKERS} brokers")));
    }
    const SHAPE: &str = "must be `host:port` (a host name or IP address; IPv6 in brackets), without a scheme";
    list.iter()
        .enumerate()
        .map(|(i, b)| {
            parse_broker(b).ok_or_else(|| {
                if is_list {
                    ConfigError::new(format!("{field}[{i}]"), SHAPE)
                } else {
                    ConfigError::new(field, format!("broker {} of the list: {SHAPE}", i + 1))
                }
            })
        })
        .collect()
}

/// `host:port`, `host` (port 9092), `[v6]:port`.
fn parse_broker(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (s, DEFAULT_PORT),
        }
    };
    let is_name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    let valid =
        host.parse::<IpAddr>().is_ok() || (!host.is_empty() && host.len() <= 253 && host.bytes().all(is_name_char));
    (valid && port > 0).then(|| (host.to_owned(), port))
}

fn is_topic_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn is_field_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// Save-time check: the config parses, SASL has its password, the CA file is readable, and
/// (unless private networks are allowed) no broker is, or resolves to, a forbidden address.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let cfg = parse_config(config)?;
    match (&cfg.sasl, secrets.get("sasl_password")) {
        (Some(_), None) => {
            return Err(ConfigError::new(
                "secrets.sasl_password",
                "required with `sasl_mechanism`",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "config.sasl_mechanism",
                "required when `sasl_password` is given",
            ))
        }
        (Some(_), Some(p)) if p.is_empty() => {
            return Err(ConfigError::new("secrets.sasl_password", "must not be empty"))
        }
        _ => {}
    }
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("config.ca_file", format!("cannot read {}: {e}", path.display())))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::new("config.ca_file", "holds no PEM certificate"));
        }
    }
    for (i, (host, port)) in cfg.brokers.iter().enumerate() {
        http::check_host(host, *port, &format!("config.brokers[{i}]"), env).await?;
    }
    Ok(Secrets::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn brokers_in_every_spelling() {
        assert_eq!(
            parse_broker("k1.example.com:9093"),
            Some(("k1.example.com".into(), 9093))
        );
        assert_eq!(parse_broker("k1"), Some(("k1".into(), 9092)));
        assert_eq!(parse_broker("[2001:db8::1]:9094"), Some(("2001:db8::1".into(), 9094)));
        assert_eq!(parse_broker("[2001:db8::1]"), Some(("2001:db8::1".into(), 9092)));
        assert_eq!(parse_broker("kafka://k1:9092"), None);
        assert_eq!(parse_broker("k1:0"), None);
        assert_eq!(parse_broker("k1:99999"), None);
        assert_eq!(parse_broker(":9092"), None);
        assert_eq!(parse_broker("[nothex]:1"), None);
    }

    #[test]
    fn config_errors_name_their_field() {
        let err = |c: Value| parse_config(&c).err().map(|e| e.field);
        assert_eq!(err(json!({"topic": "t"})).as_deref(), Some("config.brokers"));
        assert_eq!(
            err(json!({"brokers": ["a:1", 5], "topic": "t"})).as_deref(),
            Some("config.brokers[1]")
        );
        assert_eq!(err(json!({"brokers": ["a:1"]})).as_deref(), Some("config.topic"));
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "bad topic"})).as_deref(),
            Some("config.topic")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "key": "a..b"})).as_deref(),
            Some("config.key")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "compression": "brotli"})).as_deref(),
            Some("config.compression")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "sasl_mechanism": "GSSAPI", "sasl_username": "u"})).as_deref(),
            Some("config.sasl_mechanism")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "sasl_mechanism": "PLAIN"})).as_deref(),
            Some("config.sasl_username")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "ca_file": "/x"})).as_deref(),
            Some("config.ca_file")
        );
        assert_eq!(
            err(json!({"brokers": ["a:1"], "topic": "t", "acks": 1})).as_deref(),
            Some("config.acks")
        );
    }

    #[test]
    fn a_full_config_parses() {
        let cfg = parse_config(&json!({
            "brokers": "k1:9092, [::1]:9093", "topic": "audit.events", "key": "actor.id",
            "compression": "zstd", "tls": true, "sasl_mechanism": "scram-sha-512", "sasl_username": "svc"
        }))
        .expect("valid");
        assert_eq!(cfg.bootstrap_servers(), "k1:9092,[::1]:9093");
        assert_eq!(cfg.key, RecordKey::Field(vec!["actor".into(), "id".into()]));
        assert_eq!(cfg.compression, Compression::Zstd);
        assert_eq!(cfg.sasl, Some((SaslMechanism::ScramSha512, "svc".into())));
        assert_eq!(cfg.message_timeout_ms, DEFAULT_MESSAGE_TIMEOUT_MS);
    }

    #[tokio::test]
    async fn sasl_needs_its_password_and_private_brokers_are_refused() {
        let env = SinkEnv::default();
        let cfg =
            json!({"brokers": ["203.0.113.7:9092"], "topic": "t", "sasl_mechanism": "PLAIN", "sasl_username": "u"});
        let e = validate(&cfg, &mut Secrets::new(), &env)
            .await
            .expect_err("no password");
        assert_eq!(e.field, "secrets.sasl_password");
        let cfg = json!({"brokers": ["8.8.8.8:9092", "127.0.0.1:9092"], "topic": "t"});
        let e = validate(&cfg, &mut Secrets::new(), &env).await.expect_err("loopback");
        assert_eq!(e.field, "config.brokers[1]");
        // Struct update: SinkEnv may grow (an allow-list of networks).
        #[allow(clippy::needless_update)]
        let open = SinkEnv {
            allow_private_networks: true,
            ..SinkEnv::default()
        };
        let cfg = json!({"brokers": ["127.0.0.1:9092"], "topic": "t"});
        validate(&cfg, &mut Secrets::new(), &open).await.expect("allowed");
    }
}
