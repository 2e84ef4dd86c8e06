//! The `syslog` sink's `config`: parsing and save-time validation. The kind takes no secrets.

use std::net::IpAddr;
use std::path::PathBuf;

use auditrelay_format::FormatOptions;
use serde_json::{Map, Value};

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

const KEYS: &[&str] = &["host", "port", "tls", "ca_file", "app_name", "facility"];

/// RFC 5424 facility names, in code order (0–23).
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct SyslogConfig {
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
pub(crate) fn parse_config(config: &Value) -> Result<SyslogConfig, ConfigError> {
    let obj = crate::config_keys::known_keys_only(config, "a `syslog` sink", KEYS)?;
    let host = parse_host(obj)?;
    let tls = match obj.get("tls") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ConfigError::new("config.tls", "must be true or false")),
    };
    let port = match obj.get("port") {
        None | Some(Value::Null) => {
            if tls {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_TCP_PORT
            }
        }
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| ConfigError::new("config.port", "must be an integer from 1 to 65535"))?,
    };
    let ca_file = match obj.get("ca_file") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => {
            if !tls {
                return Err(ConfigError::new("config.ca_file", "only meaningful with `tls: true`"));
            }
            Some(PathBuf::from(s))
        }
        Some(_) => return Err(ConfigError::new("config.ca_file", "must be a non-empty path")),
    };
    let app_name = match obj.get("app_name") {
        None | Some(Value::Null) => DEFAULT_APP_NAME.to_owned(),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_APP_NAME && s.bytes().all(|b| (33..=126).contains(&b)) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(ConfigError::new(
                "config.app_name",
                format!("must be 1 to {MAX_APP_NAME} printable ASCII characters without spaces (RFC 5424 APP-NAME)"),
            ))
        }
    };
    let facility = match obj.get("facility") {
        None | Some(Value::Null) => DEFAULT_FACILITY,
        Some(v) => parse_facility(v).ok_or_else(|| {
            ConfigError::new(
                "config.facility",
                format!("must be a number from 0 to 23 or a name ({})", FACILITIES.join(", ")),
            )
        })?,
    };
    let options = FormatOptions::from_config(obj).map_err(|e| ConfigError::new(e.field, e.message))?;
    Ok(SyslogConfig {
        host,
        port,
        tls,
        ca_file,
        app_name,
        facility,
        options,
    })
}

/// A facility as a number (0–23) or its RFC 5424 / syslog.h name (`local0`, `auth`, …).
pub fn parse_facility(v: &Value) -> Option<u8> {
    match v {
        Value::Number(n) => n.as_u64().filter(|f| *f <= 23).and_then(|f| u8::try_from(f).ok()),
        Value::String(s) => FACILITIES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(s))
            .and_then(|i| u8::try_from(i).ok()),
        _ => None,
    }
}

fn parse_host(obj: &Map<String, Value>) -> Result<String, ConfigError> {
    let field = "config.host";
    let host = match obj.get("host") {
        Some(Value::String(s)) => s.trim_start_matches('[').trim_end_matches(']'),
        None | Some(Value::Null) => return Err(ConfigError::new(field, "required (the receiver's host name or IP)")),
        Some(_) => return Err(ConfigError::new(field, "must be a string")),
    };
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
