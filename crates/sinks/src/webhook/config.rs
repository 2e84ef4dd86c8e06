//! The webhook sink's `config` and `secrets`: parsing, save-time validation, secret generation.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sign::{generate_secret, SigningKey};
use crate::http;
use crate::typed::Headers;
use crate::{ConfigError, Secrets, SinkEnv};

pub const SIGNING_SECRET: &str = "signing_secret";
/// Set by the caller on rotation: the secret being replaced, which keeps signing alongside the new
/// one until [`PREVIOUS_SIGNING_SECRET_EXPIRES_AT`] (an RFC 3339 time), so receivers can switch
/// over without dropping deliveries.
pub const PREVIOUS_SIGNING_SECRET: &str = "previous_signing_secret";
pub const PREVIOUS_SIGNING_SECRET_EXPIRES_AT: &str = "previous_signing_secret_expires_at";

/// How long a replaced signing secret keeps signing, unless `rotation_grace_secs` says otherwise.
pub const DEFAULT_ROTATION_GRACE_SECS: u64 = 86_400;
/// A year: longer is a forgotten secret rather than a grace period (and keeps the caller's
/// `now + grace` far from overflowing).
pub const MAX_ROTATION_GRACE_SECS: u64 = 365 * 86_400;

/// Header names a static header may not set: the signature's own headers (a static value would
/// break or forge the signature), the body's framing (the sink sets them from the body, and a
/// wrong one desynchronises the connection), hop-by-hop headers, and credentials (config is
/// stored unencrypted and shown in API answers; credentials belong in secrets).
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// `config` of a `webhook` sink.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "webhook config")]
pub struct WebhookConfig {
    /// Where each batch is POSTed, as one signed JSON object (`http` or `https`).
    #[schemars(schema_with = "crate::typed::url_schema")]
    pub url: String,
    /// Static, non-secret headers sent with every request. The signature's own headers, the body's
    /// framing, hop-by-hop headers and credentials (`Authorization`, `Cookie`) are reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "headers_schema")]
    pub headers: Option<Headers>,
    /// How long, in seconds, a replaced signing secret keeps signing beside the new one after a
    /// rotation (default one day, at most a year).
    #[serde(
        default,
        deserialize_with = "crate::typed::opt_uint",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(max = MAX_ROTATION_GRACE_SECS), extend("default" = DEFAULT_ROTATION_GRACE_SECS))]
    pub rotation_grace_secs: Option<u64>,
}

fn headers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::typed::headers_schema(RESERVED_HEADERS, &[])
}

/// A checked `config`, ready to send with.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSettings {
    pub url: Url,
    pub headers: HeaderMap,
}

impl WebhookConfig {
    /// What the schema cannot say: the URL's syntax, header names and values as HTTP reads them.
    pub(crate) fn resolve(&self) -> Result<WebhookSettings, ConfigError> {
        let url = http::parse_url(&self.url, "config.url")?;
        let headers = check_headers(self.headers.as_ref())?;
        // Checked here so a bad value is refused at save time; the caller reads it through
        // [`rotation_grace`] when it rotates the secret.
        if self.rotation_grace_secs.is_some_and(|s| s > MAX_ROTATION_GRACE_SECS) {
            return Err(grace_error());
        }
        Ok(WebhookSettings { url, headers })
    }
}

/// Parses `config` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse_config(config: &Value) -> Result<WebhookSettings, ConfigError> {
    crate::typed::parse_config::<WebhookConfig>(config)?.resolve()
}

fn check_headers(headers: Option<&Headers>) -> Result<HeaderMap, ConfigError> {
    let Some(headers) = headers else {
        return Ok(HeaderMap::new());
    };
    let mut map = HeaderMap::with_capacity(headers.0.len());
    for (name, value) in &headers.0 {
        let field = format!("config.headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&field, "not a valid HTTP header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(ConfigError::new(
                &field,
                format!(
                    "the sink sets or forbids this header (reserved: {})",
                    RESERVED_HEADERS.join(", ")
                ),
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(&field, "not a valid header value (control characters?)"))?;
        // Names differing only in case are one header: the last one given wins, as in HTTP.
        map.insert(header, value);
    }
    Ok(map)
}

fn grace_error() -> ConfigError {
    ConfigError::new(
        "config.rotation_grace_secs",
        format!("must be an integer from 0 to {MAX_ROTATION_GRACE_SECS} (seconds)"),
    )
}

fn parse_rotation_grace(obj: &Map<String, Value>) -> Result<Duration, ConfigError> {
    let secs = match obj.get("rotation_grace_secs") {
        None | Some(Value::Null) => DEFAULT_ROTATION_GRACE_SECS,
        Some(v) => crate::typed::opt_uint(v)
            .ok()
            .flatten()
            .filter(|s| *s <= MAX_ROTATION_GRACE_SECS)
            .ok_or_else(grace_error)?,
    };
    Ok(Duration::from_secs(secs))
}

/// How long a replaced signing secret keeps signing after a rotation (`rotation_grace_secs`,
/// default one day): the caller stores `previous_signing_secret_expires_at = now + this`.
pub fn rotation_grace(config: &Value) -> Result<Duration, ConfigError> {
    parse_rotation_grace(config.as_object().unwrap_or(&Map::new()))
}

/// The signing keys: the current one, and the previous one with the end of its grace period.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub current: SigningKey,
    pub previous: Option<(SigningKey, Timestamp)>,
}

pub(crate) fn parse_keys(secrets: &Secrets) -> Result<Keys, ConfigError> {
    let field = |name: &str| format!("secrets.{name}");
    for name in secrets.keys() {
        if name.starts_with("previous_")
            && name != PREVIOUS_SIGNING_SECRET
            && name != PREVIOUS_SIGNING_SECRET_EXPIRES_AT
        {
            return Err(ConfigError::new(
                field(name),
                format!("unknown secret (known: {SIGNING_SECRET}, {PREVIOUS_SIGNING_SECRET}, {PREVIOUS_SIGNING_SECRET_EXPIRES_AT})"),
            ));
        }
    }
    let current = secrets
        .get(SIGNING_SECRET)
        .ok_or_else(|| ConfigError::new(field(SIGNING_SECRET), "required"))?;
    let current = SigningKey::parse(current).map_err(|m| ConfigError::new(field(SIGNING_SECRET), m))?;
    let previous = match (
        secrets.get(PREVIOUS_SIGNING_SECRET),
        secrets.get(PREVIOUS_SIGNING_SECRET_EXPIRES_AT),
    ) {
        (None, None) => None,
        (Some(secret), Some(expires_at)) => {
            let key = SigningKey::parse(secret).map_err(|m| ConfigError::new(field(PREVIOUS_SIGNING_SECRET), m))?;
            let expires_at = auditrelay_core::time::parse_rfc3339(expires_at).ok_or_else(|| {
                ConfigError::new(
                    field(PREVIOUS_SIGNING_SECRET_EXPIRES_AT),
                    "must be an RFC 3339 time (e.g. 2026-06-01T10:13:20Z)",
                )
            })?;
            Some((key, expires_at))
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                field(PREVIOUS_SIGNING_SECRET_EXPIRES_AT),
                format!("required with {PREVIOUS_SIGNING_SECRET}: when the previous secret stops signing"),
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                field(PREVIOUS_SIGNING_SECRET),
                format!("required with {PREVIOUS_SIGNING_SECRET_EXPIRES_AT}"),
            ))
        }
    };
    Ok(Keys { current, previous })
}

/// Save-time validation: `config` (the URL against the SSRF policy, resolving its host) and
/// `secrets`. Without a `signing_secret` one is generated, inserted into `secrets`, and returned
/// (the API shows it once).
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse_config(config)?;
    http::check_url(parsed.url.as_str(), "config.url", env).await?;
    let mut generated = Secrets::new();
    if !secrets.contains_key(SIGNING_SECRET) {
        let secret = generate_secret();
        secrets.insert(SIGNING_SECRET.to_owned(), secret.clone());
        generated.insert(SIGNING_SECRET.to_owned(), secret);
    }
    parse_keys(secrets)?;
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::secrets;
    use serde_json::json;

    fn err(config: Value) -> ConfigError {
        parse_config(&config).unwrap_err()
    }

    #[test]
    fn config_fields() {
        let ok = parse_config(&json!({
            "url": "https://example.com/hook",
            "headers": {"X-Team": "soc", "User-Agent": "custom"},
            "rotation_grace_secs": 60
        }))
        .unwrap();
        assert_eq!(ok.url.as_str(), "https://example.com/hook");
        assert_eq!(ok.headers["x-team"], "soc");
        assert_eq!(
            rotation_grace(&json!({"rotation_grace_secs": 60})).unwrap(),
            Duration::from_secs(60)
        );
        let defaults = parse_config(&json!({"url": "http://example.com"})).unwrap();
        assert!(defaults.headers.is_empty());
        assert_eq!(
            rotation_grace(&json!({"url": "http://example.com"})).unwrap(),
            Duration::from_secs(86_400)
        );

        assert_eq!(err(json!("x")).field, "config");
        assert_eq!(err(json!({})).field, "config.url");
        assert_eq!(err(json!({"url": 5})).field, "config.url");
        assert_eq!(err(json!({"url": "gopher://x"})).field, "config.url");
        let e = err(json!({"url": "https://example.com", "secret": "x"}));
        assert_eq!(e.field, "config.secret");
        assert!(e.message.contains("unknown key"), "{e}");
        for bad in [json!(-1), json!(1.5), json!("60"), json!(MAX_ROTATION_GRACE_SECS + 1)] {
            let e = err(json!({"url": "https://example.com", "rotation_grace_secs": bad}));
            assert_eq!(e.field, "config.rotation_grace_secs", "{bad}");
        }
        assert_eq!(
            rotation_grace(&json!({"rotation_grace_secs": 0})).unwrap(),
            Duration::ZERO
        );
    }

    #[test]
    fn header_rules() {
        let h = |headers: Value| parse_config(&json!({"url": "https://example.com", "headers": headers}));
        assert_eq!(h(json!(["x"])).unwrap_err().field, "config.headers");
        let e = h(json!({"Bad Name": "x"})).unwrap_err();
        assert_eq!(e.field, "config.headers.Bad Name");
        assert!(e.message.contains("header name"));
        assert_eq!(h(json!({"X-Foo": 1})).unwrap_err().field, "config.headers.X-Foo");
        assert_eq!(h(json!({"X-Foo": "a\nb"})).unwrap_err().field, "config.headers.X-Foo");
        for reserved in [
            "webhook-id",
            "Webhook-Timestamp",
            "WEBHOOK-SIGNATURE",
            "Content-Type",
            "content-length",
            "Host",
            "Transfer-Encoding",
            "Connection",
            "Authorization",
        ] {
            let e = h(json!({ reserved: "x" })).unwrap_err();
            assert_eq!(e.field, format!("config.headers.{reserved}"));
            assert!(e.message.contains("reserved"), "{e}");
        }
    }

    #[test]
    fn key_rules() {
        let s = generate_secret();
        assert!(parse_keys(&secrets(&[(SIGNING_SECRET, &s)]))
            .unwrap()
            .previous
            .is_none());
        assert_eq!(parse_keys(&Secrets::new()).unwrap_err().field, "secrets.signing_secret");
        let with_prev = parse_keys(&secrets(&[
            (SIGNING_SECRET, &s),
            (PREVIOUS_SIGNING_SECRET, &generate_secret()),
            (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, "2030-01-01T00:00:00Z"),
        ]))
        .unwrap();
        assert!(with_prev.previous.is_some());
        let e = parse_keys(&secrets(&[(SIGNING_SECRET, &s), (PREVIOUS_SIGNING_SECRET, &s)])).unwrap_err();
        assert_eq!(e.field, "secrets.previous_signing_secret_expires_at");
        let e = parse_keys(&secrets(&[
            (SIGNING_SECRET, &s),
            (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, "2030-01-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(e.field, "secrets.previous_signing_secret");
        let e = parse_keys(&secrets(&[
            (SIGNING_SECRET, &s),
            (PREVIOUS_SIGNING_SECRET, &s),
            (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, "tomorrow"),
        ]))
        .unwrap_err();
        assert_eq!(e.field, "secrets.previous_signing_secret_expires_at");
        let e = parse_keys(&secrets(&[
            (SIGNING_SECRET, &s),
            (PREVIOUS_SIGNING_SECRET, "whsec_short"),
            (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, "2030-01-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(e.field, "secrets.previous_signing_secret");
        let e = parse_keys(&secrets(&[(SIGNING_SECRET, &s), ("previous_token", "x")])).unwrap_err();
        assert_eq!(e.field, "secrets.previous_token");
    }
}
