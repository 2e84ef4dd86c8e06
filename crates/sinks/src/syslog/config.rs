//! The `syslog` sink's `config`: parsing and save-time validation. The kind takes no secrets.

use std::net::IpAddr;
use std::path::PathBuf;

use auditrelay_format::FormatOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

/// `app_name` when none is configured.
pub const DEFAULT_APP_NAME: &str = "auditrelay";
/// RFC 5424 limits APP-NAME to 48 printable ASCII characters.
pub const MAX_APP_NAME: usize = 48;
/// `local0`: the facility applications conventionally log to when none is configured.
pub const DEFAULT_FACILITY: u8 = 16;
/// The port when `tls` is true and none is given (RFC 5425).
pub const DEFAULT_TLS_PORT: u16 = 6514;
/// The port when `tls` is false and none is given (the de-facto TCP syslog port).
pub const DEFAULT_TCP_PORT: u16 = 514;

/// RFC 5424 facility names, in code order (0–23).
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

crate::typed::with_format_options! {
    /// `config` of a `syslog` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "syslog config", transform = ca_file_rule)]
    pub struct SyslogConfig {
        /// The receiver's host name or IP address (IPv6 with or without brackets), without scheme or port.
        #[schemars(pattern(r"^\[*([A-Za-z0-9._-]{1,253}|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)\]*$"))]
        pub host: String,
        /// The TCP port (default 6514 with `tls`, 514 without).
        #[serde(default, deserialize_with = "crate::typed::opt_uint", skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 65535))]
        pub port: Option<u64>,
        /// TLS (RFC 5425) instead of plain TCP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = false))]
        pub tls: Option<bool>,
        /// A PEM file of the CA(s) to trust instead of the built-in web roots (only with `tls: true`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1))]
        pub ca_file: Option<String>,
        /// RFC 5424 APP-NAME: 1 to 48 printable ASCII characters without spaces (default `auditrelay`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(pattern(r"^[!-~]{1,48}$"), extend("default" = DEFAULT_APP_NAME))]
        pub app_name: Option<String>,
        /// The facility: a number from 0 to 23 or its name (`local0`, `auth`, ...; default `local0`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "facility_schema")]
        pub facility: Option<Facility>,
    }
}

/// A facility as configured: its code or its name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Facility {
    Code(serde_json::Number),
    Name(String),
}

fn facility_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 23},
            {"type": "string", "pattern": crate::typed::any_case_pattern(FACILITIES, false)},
            {"type": "null"},
        ],
        "default": "local0",
    })
}

fn ca_file_rule(schema: &mut schemars::Schema) {
    crate::typed::add_rule(schema, crate::typed::only_when_true("tls", "ca_file"));
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct SyslogSettings {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// PEM file of the CA(s) to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    pub app_name: String,
    pub facility: u8,
    pub options: FormatOptions,
}

/// Parses `config` without touching the network or the file system.
pub(crate) fn parse_config(config: &Value) -> Result<SyslogSettings, ConfigError> {
    crate::typed::parse_config::<SyslogConfig>(config)?.resolve()
}

impl SyslogConfig {
    /// What the schema cannot say: whether an IP literal is one.
    pub(crate) fn resolve(&self) -> Result<SyslogSettings, ConfigError> {
        let host = check_host(&self.host)?;
        let tls = self.tls.unwrap_or(false);
        let port = match self.port {
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_TCP_PORT,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ConfigError::new("config.port", "must be an integer from 1 to 65535"))?,
        };
        let ca_file = match self.ca_file.as_deref() {
            None => None,
            Some(s) if !s.is_empty() => {
                if !tls {
                    return Err(ConfigError::new("config.ca_file", "only meaningful with `tls: true`"));
                }
                Some(PathBuf::from(s))
            }
            Some(_) => return Err(ConfigError::new("config.ca_file", "must be a non-empty path")),
        };
        let app_name = match self.app_name.as_deref() {
            None => DEFAULT_APP_NAME,
            Some(s) if !s.is_empty() && s.len() <= MAX_APP_NAME && s.bytes().all(|b| (33..=126).contains(&b)) => s,
            Some(_) => {
                return Err(ConfigError::new(
                    "config.app_name",
                    format!(
                        "must be 1 to {MAX_APP_NAME} printable ASCII characters without spaces (RFC 5424 APP-NAME)"
                    ),
                ))
            }
        };
        let facility = match &self.facility {
            None => DEFAULT_FACILITY,
            Some(f) => {
                let v = match f {
                    Facility::Code(n) => Value::Number(n.clone()),
                    Facility::Name(s) => Value::String(s.clone()),
                };
                parse_facility(&v).ok_or_else(|| {
                    ConfigError::new(
                        "config.facility",
                        format!("must be a number from 0 to 23 or a name ({})", FACILITIES.join(", ")),
                    )
                })?
            }
        };
        let options = self.format_options()?;
        Ok(SyslogSettings {
            host,
            port,
            tls,
            ca_file,
            app_name: app_name.to_owned(),
            facility,
            options,
        })
    }
}

/// A facility as a number (0–23) or its RFC 5424 / syslog.h name (`local0`, `auth`, …).
pub fn parse_facility(v: &Value) -> Option<u8> {
    match v {
        // A whole number written as `3.0` is an integer to JSON Schema, so here too.
        Value::Number(n) => crate::typed::opt_uint(v)
            .ok()
            .flatten()
            .or(n.as_u64())
            .filter(|f| *f <= 23)
            .and_then(|f| u8::try_from(f).ok()),
        Value::String(s) => FACILITIES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(s))
            .and_then(|i| u8::try_from(i).ok()),
        _ => None,
    }
}

fn check_host(raw: &str) -> Result<String, ConfigError> {
    let field = "config.host";
    let host = raw.trim_start_matches('[').trim_end_matches(']');
    let is_name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if host.parse::<IpAddr>().is_err() && (host.is_empty() || host.len() > 253 || !host.bytes().all(is_name_char)) {
        return Err(ConfigError::new(
            field,
            "must be a host name or an IP address (no scheme, no port: use `port`)",
        ));
    }
    Ok(host.to_owned())
}

/// Save-time check: the config parses, the CA file (if any) holds certificates, and (unless
/// private networks are allowed) the host is not, and does not resolve to, a forbidden address.
pub async fn validate(config: &Value, _secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let cfg = parse_config(config)?;
    if let Some(path) = &cfg.ca_file {
        super::sink::load_ca(path)?;
    }
    // The same guard as HTTP sinks (odd spellings are judged by the address they mean).
    http::check_host(&cfg.host, cfg.port, "config.host", env).await?;
    Ok(Secrets::new())
}
