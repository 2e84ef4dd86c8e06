//! The `syslog` sink: each event as one RFC 5424 message, framed by RFC 6587 octet counting
//! (`<len> <msg>`), over plain TCP or TLS (RFC 5425), with the record (CEF, LEEF or JSON) as MSG.
//!
//! Syslog has no application-level acknowledgement: a batch counts as delivered once every
//! message has been written and flushed to the socket. A receiver that crashes after our flush
//! but before it has stored the messages loses them; at-least-once beyond that point relies on
//! TCP alone (see `docs/sinks/syslog.md`).

mod config;
mod message;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub use config::{
    parse_facility, validate, Facility, SyslogConfig, DEFAULT_APP_NAME, DEFAULT_FACILITY, DEFAULT_TCP_PORT,
    DEFAULT_TLS_PORT, MAX_APP_NAME,
};
pub use message::{frame, message, severity, MessageHeader, MAX_HOSTNAME, MAX_MSGID, SD_ID};
pub use sink::{SyslogSink, CONNECT_TIMEOUT};

use crate::{ConfigError, Secrets, Sink, SinkEnv};

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    Ok(Arc::new(SyslogSink::new(config, secrets, format, env)?))
}

impl crate::KindConfig for SyslogConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "syslog",
        formats: &["cef", "leef", "json"],
        secrets: &[],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), crate::ConfigError> {
        self.resolve().map(drop)
    }
}
