//! The otlp sink's `config` and `secrets`: parsing and save-time validation.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
pub use crate::secret_header::AUTH_VALUE;
use crate::secret_header::{auth_value_header, only_auth_value, RESERVED_HEADERS};
use crate::typed::Headers;
use crate::{ConfigError, Secrets, SinkEnv};

const DEFAULT_AUTH_HEADER: &str = "authorization";

/// How the request body is encoded (OTLP/HTTP's two encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum Protocol {
    /// Binary protobuf, `Content-Type: application/x-protobuf` (the OTLP default).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/JSON, `Content-Type: application/json`.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl Protocol {
    pub fn encoding(self) -> auditrelay_otlp::Encoding {
        match self {
            Protocol::HttpProtobuf => auditrelay_otlp::Encoding::Protobuf,
            Protocol::HttpJson => auditrelay_otlp::Encoding::Json,
        }
    }
}

/// Whether the body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// `Content-Encoding: gzip` (the default: audit records compress about tenfold).
    #[default]
    Gzip,
    None,
}

/// `config` of an `otlp` sink.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "otlp config")]
pub struct OtlpConfig {
    /// The OTLP/HTTP logs endpoint, path included (e.g. `https://otlp.example.com/v1/logs`).
    #[schemars(schema_with = "crate::typed::url_schema")]
    pub url: String,
    /// `http/protobuf` (default) or `http/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `gzip` (default) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Static, non-secret headers sent with every request (framing and hop-by-hop headers are
    /// reserved; a credential belongs in the `auth_value` secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "headers_schema")]
    pub headers: Option<Headers>,
    /// The header the `auth_value` secret is sent in (default `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "auth_header_schema")]
    pub auth_header: Option<String>,
}

fn headers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::typed::headers_schema(RESERVED_HEADERS, &[])
}

fn auth_header_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reserved = crate::typed::any_case_pattern(RESERVED_HEADERS, false);
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": crate::typed::HEADER_NAME_PATTERN,
        "not": {"type": "string", "pattern": reserved},
        "default": "Authorization",
    })
}

/// A checked definition, ready to send with. Debug never shows header values.
#[derive(Clone)]
pub(crate) struct OtlpSettings {
    pub url: Url,
    pub protocol: Protocol,
    pub gzip: bool,
    /// Static headers plus the credential header (marked sensitive).
    pub headers: HeaderMap,
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("host", &self.url.host_str())
            .field("protocol", &self.protocol)
            .field("gzip", &self.gzip)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OtlpConfig {
    /// What the schema cannot say: the URL's syntax, header names and values as HTTP reads
    /// them; with `secrets`, the credential header too.
    pub(crate) fn resolve(&self, secrets: Option<&Secrets>) -> Result<OtlpSettings, ConfigError> {
        let url = http::parse_url(&self.url, "config.url")?;
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers.iter().flat_map(|h| h.0.iter()) {
            let field = format!("config.headers.{name}");
            let header = check_header_name(name, &field)?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| ConfigError::new(&field, "not a valid header value (control characters?)"))?;
            headers.insert(header, value);
        }
        let auth_name = match &self.auth_header {
            Some(name) => check_header_name(name, "config.auth_header")?,
            None => HeaderName::from_static(DEFAULT_AUTH_HEADER),
        };
        if let Some(secrets) = secrets {
            only_auth_value(secrets, "otlp")?;
            if let Some(value) = secrets.get(AUTH_VALUE) {
                headers.insert(auth_name, auth_value_header(value)?);
            }
        }
        Ok(OtlpSettings {
            url,
            protocol: self.protocol.unwrap_or_default(),
            gzip: self.compression.unwrap_or_default() == Compression::Gzip,
            headers,
        })
    }
}

fn check_header_name(name: &str, field: &str) -> Result<HeaderName, ConfigError> {
    let header =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError::new(field, "not a valid HTTP header name"))?;
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(ConfigError::new(
            field,
            format!(
                "the sink sets or forbids this header (reserved: {})",
                RESERVED_HEADERS.join(", ")
            ),
        ));
    }
    Ok(header)
}

/// Parses `config` and `secrets` without touching the network.
pub(crate) fn parse(config: &Value, secrets: &Secrets) -> Result<OtlpSettings, ConfigError> {
    crate::typed::parse_config::<OtlpConfig>(config)?.resolve(Some(secrets))
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
    fn defaults_then_every_option() {
        let c = parse(&json!({"url": "https://otlp.example.com/v1/logs"}), &Secrets::new()).unwrap();
        assert_eq!((c.protocol, c.gzip), (Protocol::HttpProtobuf, true));
        assert!(c.headers.is_empty());
        let c = parse(
            &json!({"url": "https://otlp.example.com/v1/logs", "protocol": "http/json", "compression": "none",
                    "headers": {"X-Scope-OrgID": "soc"}, "auth_header": "Api-Key"}),
            &secrets(&[(AUTH_VALUE, "s3cret")]),
        )
        .unwrap();
        assert_eq!((c.protocol, c.gzip), (Protocol::HttpJson, false));
        assert_eq!(c.headers["x-scope-orgid"], "soc");
        assert!(c.headers["api-key"].is_sensitive());
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = parse(
            &json!({"url": "https://otlp.example.com/v1/logs"}),
            &secrets(&[(AUTH_VALUE, "Bearer t")]),
        )
        .unwrap();
        assert_eq!(c.headers["authorization"], "Bearer t");
    }

    #[test]
    fn errors_name_the_field() {
        let url = "https://otlp.example.com/v1/logs";
        let f = |config: Value, s: &Secrets| parse(&config, s).unwrap_err().field;
        let none = Secrets::new();
        assert_eq!(f(json!({}), &none), "config.url");
        assert_eq!(f(json!({"url": "ftp://x"}), &none), "config.url");
        assert_eq!(f(json!({"url": url, "protocol": "grpc"}), &none), "config.protocol");
        assert_eq!(
            f(json!({"url": url, "compression": "zstd"}), &none),
            "config.compression"
        );
        assert_eq!(
            f(json!({"url": url, "headers": {"Content-Type": "x"}}), &none),
            "config.headers.Content-Type"
        );
        assert_eq!(
            f(json!({"url": url, "auth_header": "Host"}), &none),
            "config.auth_header"
        );
        assert_eq!(f(json!({"url": url, "extra": 1}), &none), "config.extra");
        assert_eq!(f(json!({"url": url}), &secrets(&[("token", "x")])), "secrets.token");
        assert_eq!(
            f(json!({"url": url}), &secrets(&[(AUTH_VALUE, "a\nb")])),
            "secrets.auth_value"
        );
    }
}
