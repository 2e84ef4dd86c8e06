//! A secret sent as a header value (Datadog's `DD-API-KEY`, Splunk's `Authorization: Splunk …`):
//! checked at parse time, marked sensitive, never shown by Debug or echoed by an error.

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
