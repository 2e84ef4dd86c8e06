//! The `kafka` sink's `config` and `secrets`: parsing and save-time validation.

use std::net::IpAddr;
use std::path::PathBuf;

use auditrelay_format::FormatOptions;
use serde_json::{Map, Value};

use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

const KEYS: &[&str] = &[
    "brokers",
    "topic",
    "key",
    "compression",
    "tls",
    "ca_file",
    "sasl_mechanism",
    "sasl_username",
    "message_timeout_ms",
    "idempotent",
];

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    const NAMES: &'static [&'static str] = &["none", "gzip", "snappy", "lz4", "zstd"];

    fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

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

/// A parsed `config`.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
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

impl KafkaConfig {
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
pub fn parse_config(config: &Value) -> Result<KafkaConfig, ConfigError> {
    let obj = crate::config_keys::known_keys_only(config, "a `kafka` sink", KEYS)?;
    let brokers = parse_brokers(obj)?;
    let topic = match obj.get("topic") {
        Some(Value::String(t)) if is_topic_name(t) => t.clone(),
        None | Some(Value::Null) => return Err(ConfigError::new("config.topic", "required")),
        Some(_) => {
            return Err(ConfigError::new(
                "config.topic",
                "must be 1 to 249 characters of [a-zA-Z0-9._-], and not `.` or `..`",
            ))
        }
    };
    let key = match obj.get("key") {
        None | Some(Value::Null) => RecordKey::Tenant,
        Some(Value::String(s)) if s == "tenant" => RecordKey::Tenant,
        Some(Value::String(s)) if is_field_path(s) => RecordKey::Field(s.split('.').map(str::to_owned).collect()),
        Some(_) => {
            return Err(ConfigError::new(
                "config.key",
                "must be `tenant` or a field path of the event such as `actor.id`",
            ))
        }
    };
    let compression = match obj.get("compression") {
        None | Some(Value::Null) => Compression::None,
        Some(Value::String(s)) => Compression::parse(s).ok_or_else(|| {
            ConfigError::new(
                "config.compression",
                format!("must be one of {}", Compression::NAMES.join(", ")),
            )
        })?,
        Some(_) => return Err(ConfigError::new("config.compression", "must be a string")),
    };
    let tls = match obj.get("tls") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ConfigError::new("config.tls", "must be true or false")),
    };
    let ca_file = match obj.get("ca_file") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && !tls => {
            return Err(ConfigError::new("config.ca_file", "only meaningful with `tls: true`"))
        }
        Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
        Some(_) => return Err(ConfigError::new("config.ca_file", "must be a non-empty path")),
    };
    let mechanism = match obj.get("sasl_mechanism") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SaslMechanism::parse(s).ok_or_else(|| {
            ConfigError::new(
                "config.sasl_mechanism",
                format!("must be one of {}", SaslMechanism::NAMES.join(", ")),
            )
        })?),
        Some(_) => return Err(ConfigError::new("config.sasl_mechanism", "must be a string")),
    };
    let username = match obj.get("sasl_username") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
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
    let message_timeout_ms = match obj.get("message_timeout_ms") {
        None | Some(Value::Null) => DEFAULT_MESSAGE_TIMEOUT_MS,
        Some(v) => v
            .as_u64()
            .filter(|t| (100..=300_000).contains(t))
            .ok_or_else(|| ConfigError::new("config.message_timeout_ms", "must be an integer from 100 to 300000"))?,
    };
    let idempotent = match obj.get("idempotent") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ConfigError::new("config.idempotent", "must be true or false")),
    };
    let options = FormatOptions::from_config(obj).map_err(|e| ConfigError::new(e.field, e.message))?;
    Ok(KafkaConfig {
        brokers,
        topic,
        key,
        compression,
        tls,
        ca_file,
        sasl,
        message_timeout_ms,
        idempotent,
        options,
    })
}

fn parse_brokers(obj: &Map<String, Value>) -> Result<Vec<(String, u16)>, ConfigError> {
    let field = "config.brokers";
    let list: Vec<&str> = match obj.get("brokers") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| ConfigError::new(format!("{field}[{i}]"), "must be a `host:port` string"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s.split(',').map(str::trim).collect(),
        None | Some(Value::Null) => {
            return Err(ConfigError::new(
                field,
                "required: a list of `host:port` bootstrap brokers",
            ))
        }
        Some(_) => return Err(ConfigError::new(field, "must be a list of `host:port` strings")),
    };
    if list.is_empty() || list.len() > MAX_BROKERS {
        return Err(ConfigError::new(field, format!("must list 1 to {MAX_BROKERS} brokers")));
    }
    list.iter()
        .enumerate()
        .map(|(i, b)| {
            parse_broker(b).ok_or_else(|| {
                ConfigError::new(
                    format!("{field}[{i}]"),
                    "must be `host:port` (a host name or IP address; IPv6 in brackets), without a scheme",
                )
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
