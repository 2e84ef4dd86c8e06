//! A secret sent as a header value (Datadog's `DD-API-KEY`, Splunk's `Authorization: Splunk …`,
//! the `auth_value` of `otlp` and `generic_https` in a header the definition names): checked at
//! parse time, marked sensitive, never shown by Debug or echoed by an error.

use std::fmt;

use reqwest::header::HeaderValue;

use crate::{ConfigError, Secrets};

/// A secret header value, marked sensitive. Debug never shows it.
#[derive(Clone)]
pub(crate) struct SecretHeader {
    /// What Debug prints in place of the value (`ApiKey`, `Token`).
    label: &'static str,
    value: HeaderValue,
}

impl fmt::Debug for SecretHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(<redacted>)", self.label)
    }
}

impl SecretHeader {
    /// The header value, marked sensitive (redacted in Debug output).
    pub(crate) fn header(&self) -> HeaderValue {
        self.value.clone()
    }
}

/// The secret `name`, required (`what` describes it in the error), without surrounding
/// whitespace or control characters, sent as `{prefix}{secret}`; Debug shows `label(<redacted>)`.
pub(crate) fn secret_header(
    secrets: &Secrets,
    name: &str,
    what: &str,
    prefix: &str,
    label: &'static str,
) -> Result<SecretHeader, ConfigError> {
    let field = format!("secrets.{name}");
    let secret = secrets
        .get(name)
        .ok_or_else(|| ConfigError::new(&field, format!("required ({what})")))?;
    if secret.is_empty() || secret.trim() != secret {
        return Err(ConfigError::new(
            &field,
            "must be non-empty, without leading or trailing whitespace",
        ));
    }
    // The error never echoes the value.
    let mut value = HeaderValue::from_str(&format!("{prefix}{secret}"))
        .map_err(|_| ConfigError::new(&field, "must not contain control characters"))?;
    value.set_sensitive(true);
    Ok(SecretHeader { label, value })
}

/// The secret of the kinds whose receiver chooses its credential header (`otlp`,
/// `generic_https`): the header's whole value, scheme included (`Bearer …`).
pub const AUTH_VALUE: &str = "auth_value";

/// Names a configured header (`auth_header`, `otlp`'s static `headers`) may not take: the
/// body's framing and encoding (the sink sets them) and HTTP's hop-by-hop headers (a proxy or
/// the client library owns them).
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Refuses any secret but [`AUTH_VALUE`]: the registry lets `previous_*` names through for the
/// kinds that rotate, and `kind` does not.
pub(crate) fn only_auth_value(secrets: &Secrets, kind: &str) -> Result<(), ConfigError> {
    match secrets.keys().find(|k| *k != AUTH_VALUE) {
        Some(name) => Err(ConfigError::new(
            format!("secrets.{name}"),
            format!("`{kind}` sinks take no secret named `{name}` (known: {AUTH_VALUE})"),
        )),
        None => Ok(()),
    }
}

/// The [`AUTH_VALUE`] secret `value` as a header value, marked sensitive.
pub(crate) fn auth_value_header(value: &str) -> Result<HeaderValue, ConfigError> {
    // The message describes the rule, never the value.
    let mut header = HeaderValue::from_str(value)
        .ok()
        .filter(|_| !value.is_empty())
        .ok_or_else(|| {
            ConfigError::new(
                format!("secrets.{AUTH_VALUE}"),
                "must be non-empty visible ASCII (no line breaks or control characters)",
            )
        })?;
    header.set_sensitive(true);
    Ok(header)
}
