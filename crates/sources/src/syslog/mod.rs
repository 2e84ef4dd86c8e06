//! The `syslog` source: a TCP (optionally TLS) listener taking RFC 5424 and RFC 3164 messages,
//! framed by RFC 6587 octet counting or newlines (auto-detected per frame), or carried by RELP
//! (each message acknowledged once durable), each becoming one event. Pure parts (framing, header parsing, CEF/LEEF payloads, the event mapping) are
//! separate from the I/O in `listener.rs`.

pub mod cef;
mod config;
pub mod event;
pub mod framing;
pub mod leef;
mod listener;
pub mod message;
pub mod relp;

pub use config::{FramingMode, ProtocolMode, SyslogConfig, SyslogSettings, TypeFrom};

use crate::kinds::ConfigError;
use crate::supervisor::RunContext;

/// Save-time checks: the certificate and key load, and the address can be bound (unless the
/// source's own running listener already holds it).
pub(crate) async fn preflight(
    config: &SyslogConfig,
    previous: Option<&SyslogConfig>,
    _secrets: &std::collections::BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let settings = config.settings()?;
    if let Some((cert, key)) = &settings.tls {
        listener::tls_acceptor(cert, key).map_err(|(field, message)| ConfigError::new(field, message))?;
    }
    let same_address = previous
        .and_then(|p| p.settings().ok())
        .is_some_and(|p| p.listen == settings.listen);
    if !same_address {
        // Bound and released at once: the supervisor binds it for real a moment later.
        listener::bind(settings.listen)
            .await
            .map_err(|e| ConfigError::new("config.listen", e))?;
    }
    Ok(())
}

/// Two syslog sources clash when they would listen on the same port of the same address (a
/// wildcard address overlaps every address).
pub(crate) fn conflicts(a: &SyslogConfig, b: &SyslogConfig) -> Option<String> {
    let (a, b) = (a.settings().ok()?, b.settings().ok()?);
    let overlap = a.listen.port() == b.listen.port()
        && (a.listen.ip() == b.listen.ip() || a.listen.ip().is_unspecified() || b.listen.ip().is_unspecified());
    overlap.then(|| "config.listen".to_owned())
}

pub(crate) async fn run(config: &SyslogConfig, ctx: RunContext) -> Result<(), String> {
    let settings = config.settings().map_err(|e| e.to_string())?;
    listener::run(settings, ctx).await
}
