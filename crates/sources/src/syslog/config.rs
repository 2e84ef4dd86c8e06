//! The `syslog` source's `config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::{ConfigError, KindConfig, KindSpec};

/// Longest message (one frame) by default: well under the 64 KiB event limit, since the event
/// carries the message twice (parsed fields and `metadata.syslog.raw`).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 * 1024;
pub const MAX_MAX_MESSAGE_BYTES: u64 = 32 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: u64 = 256;
/// Ports below this need privileges: refused, so that a source never works only as root.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FramingMode {
    /// Per frame: a digit starts an octet-counted frame (`LEN SP MSG`), anything else a line.
    #[default]
    Auto,
    OctetCounting,
    Newline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolMode {
    /// `<PRI>1 ` is RFC 5424; anything else is read as RFC 3164.
    #[default]
    Auto,
    Rfc5424,
    Rfc3164,
}

/// Where an event's `type` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFrom {
    Msgid,
    AppName,
    Fixed(String),
}

/// `config` of a `syslog` source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "syslog source config")]
pub struct SyslogConfig {
    /// `host:port` to listen on (an IP address; `[::1]:6514` for IPv6). Ports below 1024 are refused.
    #[schemars(length(min = 3, max = 64), example = "127.0.0.1:6514")]
    pub listen: String,
    /// TLS (RFC 5425) with `cert_file` and `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub tls: Option<bool>,
    /// PEM certificate chain (required with `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cert_file: Option<String>,
    /// PEM private key (required with `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key_file: Option<String>,
    /// RFC 6587 framing (default `auto`); not used with `relp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<FramingMode>,
    /// Speak RELP, the Reliable Event Logging Protocol (rsyslog's `omrelp`), instead of plain
    /// TCP syslog (default false): each message is acknowledged to the sender only once its
    /// event is durable, so a crash loses nothing the sender was told was kept, and the sender
    /// sends again what was not acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub relp: Option<bool>,
    /// Message format (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolMode>,
    /// `msgid` (default), `app_name`, or a fixed event type such as `firewall.log`. A CEF or LEEF
    /// payload's event class wins over `msgid`/`app_name` when it is a valid type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(msgid|app_name|[a-z0-9_-]+(\.[a-z0-9_-]+)+)$"), length(max = 128))]
    pub type_from: Option<String>,
    /// Parse CEF and LEEF payloads into event fields (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub parse_payload: Option<bool>,
    /// Longest message in bytes (default 16384, at most 32768); a longer one is kept, cut, as `syslog.malformed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 32768))]
    pub max_message_bytes: Option<u64>,
    /// Most connections at once (default 256); more wait in the kernel's backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_connections: Option<u64>,
}

impl KindConfig for SyslogConfig {
    const SPEC: KindSpec = KindSpec {
        kind: "syslog",
        secrets: &[],
        needs_tenant: true,
    };

    fn check(&self) -> Result<(), ConfigError> {
        self.settings().map(|_| ())
    }
}

/// A checked `config`.
#[derive(Debug, Clone)]
pub struct SyslogSettings {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub framing: FramingMode,
    pub relp: bool,
    pub protocol: ProtocolMode,
    pub type_from: TypeFrom,
    pub parse_payload: bool,
    pub max_message_bytes: usize,
    pub max_connections: usize,
}

impl SyslogConfig {
    pub fn settings(&self) -> Result<SyslogSettings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new(
                "config.listen",
                "must be an IP address and port, such as `0.0.0.0:6514` or `[::1]:6514`",
            )
        })?;
        if listen.port() < FIRST_UNPRIVILEGED_PORT {
            return Err(ConfigError::new(
                "config.listen",
                format!(
                    "port {} needs root privileges; listen on {FIRST_UNPRIVILEGED_PORT} or above (6514 is syslog over TLS, 1514/5514 are common for TCP) and redirect the privileged port to it if senders need one",
                    listen.port()
                ),
            ));
        }
        let tls = match (self.tls.unwrap_or(false), &self.cert_file, &self.key_file) {
            (true, Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (true, None, _) => return Err(ConfigError::new("config.cert_file", "is required with `tls: true`")),
            (true, _, None) => return Err(ConfigError::new("config.key_file", "is required with `tls: true`")),
            (false, Some(_), _) => return Err(ConfigError::new("config.cert_file", "is only used with `tls: true`")),
            (false, _, Some(_)) => return Err(ConfigError::new("config.key_file", "is only used with `tls: true`")),
            (false, None, None) => None,
        };
        let type_from = match self.type_from.as_deref() {
            None | Some("msgid") => TypeFrom::Msgid,
            Some("app_name") => TypeFrom::AppName,
            Some(t) if auditrelay_core::ids::is_valid_event_type(t) => TypeFrom::Fixed(t.to_owned()),
            Some(_) => {
                return Err(ConfigError::new(
                    "config.type_from",
                    "must be `msgid`, `app_name`, or an event type (1–128 characters of [a-z0-9_.-], dotted like `category.verb`)",
                ))
            }
        };
        let max_message_bytes = self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        if !(256..=MAX_MAX_MESSAGE_BYTES).contains(&max_message_bytes) {
            return Err(ConfigError::new(
                "config.max_message_bytes",
                format!("must be from 256 to {MAX_MAX_MESSAGE_BYTES}"),
            ));
        }
        let relp = self.relp.unwrap_or(false);
        if relp && self.framing.is_some() {
            return Err(ConfigError::new(
                "config.framing",
                "is not used with `relp: true` (RELP frames every message itself)",
            ));
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=65536).contains(&max_connections) {
            return Err(ConfigError::new("config.max_connections", "must be from 1 to 65536"));
        }
        Ok(SyslogSettings {
            listen,
            tls,
            framing: self.framing.unwrap_or_default(),
            relp,
            protocol: self.protocol.unwrap_or_default(),
            type_from,
            parse_payload: self.parse_payload.unwrap_or(true),
            max_message_bytes: max_message_bytes as usize,
            max_connections: max_connections as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use crate::kinds::SourceConfig;

    fn field(config: serde_json::Value) -> String {
        SourceConfig::parse("syslog", &config).unwrap_err().field
    }

    #[test]
    fn bad_configs_name_the_field() {
        assert_eq!(field(json!({})), "config.listen");
        assert_eq!(field(json!({"listen": "nope"})), "config.listen");
        assert_eq!(field(json!({"listen": "127.0.0.1:514"})), "config.listen");
        assert_eq!(field(json!({"listen": "127.0.0.1:6514", "colour": 1})), "config.colour");
        assert_eq!(
            field(json!({"listen": "127.0.0.1:6514", "tls": true})),
            "config.cert_file"
        );
        assert_eq!(
            field(json!({"listen": "127.0.0.1:6514", "framing": "lines"})),
            "config.framing"
        );
        assert_eq!(
            field(json!({"listen": "127.0.0.1:6514", "relp": true, "framing": "newline"})),
            "config.framing"
        );
        assert_eq!(
            field(json!({"listen": "127.0.0.1:6514", "type_from": "Bad Type"})),
            "config.type_from"
        );
        assert_eq!(
            field(json!({"listen": "127.0.0.1:6514", "max_message_bytes": 1_000_000})),
            "config.max_message_bytes"
        );
    }

    #[test]
    fn a_good_config_parses() {
        let c = SourceConfig::parse(
            "syslog",
            &json!({"listen": "127.0.0.1:6514", "type_from": "fw.log", "protocol": "rfc3164"}),
        )
        .unwrap();
        assert_eq!(c.spec().kind, "syslog");
    }
}
