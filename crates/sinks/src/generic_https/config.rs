//! The generic_https sink's `config` and `secrets`: parsing and save-time validation.

use std::fmt;

use auditrelay_format::FormatOptions;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
pub use crate::secret_header::AUTH_VALUE;
use crate::secret_header::{auth_value_header, only_auth_value, RESERVED_HEADERS};
use crate::{ConfigError, Secrets, SinkEnv};

/// Besides [`RESERVED_HEADERS`], `auth_header` may not take the sink's own `x-auditrelay-*`
/// headers (a static value would forge or break them).
const OWN_PREFIX: &str = "x-auditrelay-";

/// The receiver's credential header. Debug shows the name only.
#[derive(Clone)]
pub(crate) struct AuthHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthHeader({}: <redacted>)", self.name)
    }
}

crate::typed::with_format_options! {
    /// `config` of a `generic_https` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "generic_https config")]
    pub struct GenericHttpsConfig {
        /// Where batches (or single events, with `per_event`) are POSTed (`http` or `https`).
        #[schemars(schema_with = "crate::typed::url_schema")]
        pub url: String,
        /// The header the `auth_value` secret is sent in (e.g. `Authorization`, `X-Api-Key`);
        /// required with that secret. Framing, hop-by-hop and `X-Auditrelay-*` headers are reserved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "auth_header_schema")]
        pub auth_header: Option<String>,
        /// One request per event, with `X-Auditrelay-Digest`, `-Event-Id`, `-Tenant` and
        /// `-Event-Type` headers, instead of one per batch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = false))]
        pub per_event: Option<bool>,
    }
}

fn auth_header_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reserved = crate::typed::any_case_pattern(RESERVED_HEADERS, false);
    let own = crate::typed::any_case_pattern(&[OWN_PREFIX], true);
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": crate::typed::HEADER_NAME_PATTERN,
        "not": {"type": "string", "anyOf": [{"pattern": reserved}, {"pattern": own}]},
    })
}

#[derive(Debug, Clone)]
pub(crate) struct GenericConfig {
    pub url: Url,
    pub auth: Option<AuthHeader>,
    pub per_event: bool,
    pub options: FormatOptions,
}

impl GenericHttpsConfig {
    /// What the schema cannot say: the URL's syntax (the header rules are the schema's too).
    pub(crate) fn resolve(&self) -> Result<Url, ConfigError> {
        let url = http::parse_url(&self.url, "config.url")?;
        if let Some(name) = &self.auth_header {
            check_header_name(name)?;
        }
        self.format_options()?;
        Ok(url)
    }
}

/// Parses `config` and `secrets` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse(config: &Value, secrets: &Secrets) -> Result<GenericConfig, ConfigError> {
    let typed = crate::typed::parse_config::<GenericHttpsConfig>(config)?;
    only_auth_value(secrets, "generic_https")?;
    let url = typed.resolve()?;
    let auth = parse_auth(typed.auth_header.as_deref(), secrets)?;
    let options = typed.format_options()?;
    Ok(GenericConfig {
        url,
        auth,
        per_event: typed.per_event.unwrap_or(false),
        options,
    })
}

fn parse_auth(name: Option<&str>, secrets: &Secrets) -> Result<Option<AuthHeader>, ConfigError> {
    let value = secrets.get(AUTH_VALUE);
    let (name, value) = match (name, value) {
        (None, None) => return Ok(None),
        (Some(name), Some(value)) => (name, value),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "secrets.auth_value",
                "required with config.auth_header (the header's value)",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "config.auth_header",
                "required with secrets.auth_value (the header to send it in)",
            ))
        }
    };
    let header = check_header_name(name)?;
    let value = auth_value_header(value)?;
    Ok(Some(AuthHeader { name: header, value }))
}

fn check_header_name(name: &str) -> Result<HeaderName, ConfigError> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new("config.auth_header", "not a valid HTTP header name"))?;
    if RESERVED_HEADERS.contains(&header.as_str()) || header.as_str().starts_with(OWN_PREFIX) {
        return Err(ConfigError::new(
            "config.auth_header",
            format!(
                "`{name}` is set by HTTP or by the sink (reserved: {}, {OWN_PREFIX}*)",
                RESERVED_HEADERS.join(", ")
            ),
        ));
    }
    Ok(header)
}

/// Save-time validation: the definition, then the URL against the SSRF policy (resolving its
/// host). Generates no secrets.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    http::validate_config_url(&parse(config, secrets)?.url, env).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::secrets;
    use serde_json::json;

    #[test]
    fn defaults_and_auth() {
        let c = parse(&json!({"url": "https://siem.example.com/in"}), &Secrets::new()).unwrap();
        assert!(!c.per_event && c.auth.is_none());
        let c = parse(
            &json!({"url": "https://siem.example.com/in", "auth_header": "X-Api-Key", "per_event": true}),
            &secrets(&[(AUTH_VALUE, "s3cret")]),
        )
        .unwrap();
        assert!(c.per_event);
        let auth = c.auth.unwrap();
        assert_eq!(
            (auth.name.as_str(), auth.value.to_str().unwrap()),
            ("x-api-key", "s3cret")
        );
        assert!(auth.value.is_sensitive());
        assert_eq!(format!("{auth:?}"), "AuthHeader(x-api-key: <redacted>)");
        assert!(parse(
            &json!({"url": "https://x.example", "auth_header": "Authorization"}),
            &secrets(&[(AUTH_VALUE, "Bearer abc")])
        )
        .is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let url = "https://siem.example.com/in";
        let v = secrets(&[(AUTH_VALUE, "s3cret")]);
        let f = |config: Value, secrets: &Secrets| parse(&config, secrets).unwrap_err();
        assert_eq!(f(json!(1), &v).field, "config");
        assert_eq!(f(json!({}), &v).field, "config.url");
        assert_eq!(f(json!({"url": "ftp://x"}), &v).field, "config.url");
        assert_eq!(f(json!({"url": url, "headers": {}}), &v).field, "config.headers");
        assert_eq!(f(json!({"url": url, "per_event": "yes"}), &v).field, "config.per_event");
        assert_eq!(f(json!({"url": url}), &v).field, "config.auth_header");
        assert_eq!(
            f(json!({"url": url, "auth_header": "X-Key"}), &Secrets::new()).field,
            "secrets.auth_value"
        );
        assert_eq!(f(json!({"url": url, "auth_header": 5}), &v).field, "config.auth_header");
        assert_eq!(
            f(json!({"url": url, "auth_header": "Bad Name"}), &v).field,
            "config.auth_header"
        );
        for reserved in [
            "Content-Type",
            "Host",
            "Connection",
            "Transfer-Encoding",
            "TE",
            "X-Auditrelay-Digest",
        ] {
            let e = f(json!({"url": url, "auth_header": reserved}), &v);
            assert_eq!(e.field, "config.auth_header", "{reserved}");
            assert!(e.message.contains("reserved"), "{e}");
        }
        let e = f(
            json!({"url": url, "auth_header": "X-Key"}),
            &secrets(&[(AUTH_VALUE, "line\nbreak s3cret")]),
        );
        assert_eq!(e.field, "secrets.auth_value");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!(
            f(json!({"url": url}), &secrets(&[("previous_auth_value", "x")])).field,
            "secrets.previous_auth_value"
        );
        assert_eq!(
            f(json!({"url": url, "leef_delimiter": "ab"}), &Secrets::new()).field,
            "config.leef_delimiter"
        );
    }
}
