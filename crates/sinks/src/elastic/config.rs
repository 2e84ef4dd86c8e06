//! The elastic sink's `config` and `secrets`: parsing and save-time validation.

use std::fmt;

use auditrelay_format::FormatOptions;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::index::{IndexTemplate, MAX_INDEX_BYTES};
use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

pub const API_KEY: &str = "api_key";
pub const PASSWORD: &str = "password";
pub const DEFAULT_INDEX: &str = "auditrelay-{tenant}";

/// The `_bulk` action per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Fails with 409 when the `_id` exists; the only action data streams accept.
    #[default]
    Create,
    /// Creates or overwrites the document with that `_id`.
    Index,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
        }
    }
}

/// How the sink authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: ApiKey …` from the `api_key` secret.
    #[default]
    ApiKey,
    /// `Authorization: Basic …` from `username` and the `password` secret.
    Basic,
}

crate::typed::with_format_options! {
    /// `config` of an `elastic` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "elastic config", transform = username_with_basic)]
    pub struct ElasticConfig {
        /// The cluster's base URL (a path prefix and a query such as `?pipeline=…` are kept; the
        /// sink appends `/_bulk`).
        #[schemars(schema_with = "crate::typed::url_schema")]
        pub url: String,
        /// The index or data stream: lowercase text with `{tenant}`, `{type}`, `{yyyy}`, `{MM}`, `{dd}`
        /// placeholders (the event time's UTC date).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "index_schema")]
        pub index: Option<String>,
        /// `create` (default: data streams need it) or `index` (overwrite a document with the same id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = "create"))]
        pub action: Option<Action>,
        /// `api_key` (default; the `api_key` secret) or `basic` (`username` and the `password` secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = "api_key"))]
        pub auth: Option<AuthMode>,
        /// The user name for `auth: basic` (required then, refused otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub username: Option<String>,
    }
}

/// Index names: no `\ / * ? " < > | , # :`, space, control or uppercase characters outside
/// placeholders; not starting with `-`, `_` or `+`; not `.` or `..`.
fn index_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "maxLength": MAX_INDEX_BYTES,
        "pattern": r#"^([^\\/*?"<>|,#: {}\p{Uppercase}\p{Cc}]|\{(tenant|type|yyyy|MM|dd)\})+$"#,
        "not": {"type": "string", "anyOf": [{"pattern": "^[-_+]"}, {"enum": [".", ".."]}]},
        "default": DEFAULT_INDEX,
    })
}

/// `username` is required with `auth: basic` (non-empty, no colon or control characters) and
/// refused with any other `auth`.
fn username_with_basic(schema: &mut schemars::Schema) {
    schema.insert(
        "if".into(),
        serde_json::json!({"properties": {"auth": {"const": "basic"}}, "required": ["auth"]}),
    );
    schema.insert(
        "then".into(),
        serde_json::json!({
            "required": ["username"],
            "properties": {"username": {"type": "string", "pattern": "^[^:\\p{Cc}]+$"}},
        }),
    );
    schema.insert(
        "else".into(),
        serde_json::json!({"properties": {"username": {"type": "null"}}}),
    );
}

/// The `Authorization` header value. Debug never shows it.
#[derive(Clone)]
pub(crate) struct Auth(pub HeaderValue);

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auth(<redacted>)")
    }
}

/// A parsed definition: `config` and `secrets` together.
#[derive(Debug, Clone)]
pub(crate) struct ElasticSettings {
    /// `{url}/_bulk`, the base's query kept (`?pipeline=…`).
    pub bulk_url: Url,
    pub index: IndexTemplate,
    pub action: Action,
    pub auth: Auth,
    pub options: FormatOptions,
}

/// The config-only part of an elastic definition, checked.
#[derive(Debug, Clone)]
pub(crate) struct Checked<'a> {
    pub url: Url,
    pub index: IndexTemplate,
    pub action: Action,
    pub auth: AuthMode,
    pub username: Option<&'a str>,
}

impl ElasticConfig {
    /// What the schema cannot say: the URL's syntax; the index template's byte length.
    pub(crate) fn resolve(&self) -> Result<Checked<'_>, ConfigError> {
        let url = http::parse_url(&self.url, "config.url")?;
        let index = IndexTemplate::parse(self.index.as_deref().unwrap_or(DEFAULT_INDEX))
            .map_err(|m| ConfigError::new("config.index", m))?;
        let auth = self.auth.unwrap_or_default();
        let username = self.username.as_deref();
        match auth {
            AuthMode::ApiKey if username.is_some() => {
                return Err(ConfigError::new("config.username", "only used with `auth: basic`"))
            }
            AuthMode::ApiKey => {}
            AuthMode::Basic => match username {
                None | Some("") => return Err(ConfigError::new("config.username", "required with `auth: basic`")),
                // RFC 7617: the first colon separates the user name from the password.
                Some(u) if u.contains(':') || u.chars().any(char::is_control) => {
                    return Err(ConfigError::new(
                        "config.username",
                        "must not contain a colon or control characters",
                    ))
                }
                Some(_) => {}
            },
        }
        self.format_options()?;
        Ok(Checked {
            url,
            index,
            action: self.action.unwrap_or_default(),
            auth,
            username,
        })
    }
}

/// Parses `config` and `secrets` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse(config: &Value, secrets: &Secrets) -> Result<ElasticSettings, ConfigError> {
    let typed = crate::typed::parse_config::<ElasticConfig>(config)?;
    let checked = typed.resolve()?;
    // The registry lets `previous_*` names through for kinds that rotate; this one does not.
    if let Some(name) = secrets.keys().find(|k| *k != API_KEY && *k != PASSWORD) {
        return Err(ConfigError::new(
            format!("secrets.{name}"),
            format!("`elastic` sinks take no secret named `{name}` (known: {API_KEY}, {PASSWORD})"),
        ));
    }
    let auth = parse_auth(checked.auth, checked.username, secrets)?;
    let options = typed.format_options()?;
    Ok(ElasticSettings {
        bulk_url: bulk_url(&checked.url),
        index: checked.index,
        action: checked.action,
        auth,
        options,
    })
}

/// `{url}/_bulk`: the base's path with one `/_bulk` appended (a path prefix of a proxy in front of
/// the cluster survives), query kept, fragment dropped.
fn bulk_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/_bulk", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url
}

fn parse_auth(mode: AuthMode, username: Option<&str>, secrets: &Secrets) -> Result<Auth, ConfigError> {
    let secret = |name: &str| format!("secrets.{name}");
    let mut value = match mode {
        AuthMode::ApiKey => {
            if secrets.contains_key(PASSWORD) {
                return Err(ConfigError::new(secret(PASSWORD), "only used with `auth: basic`"));
            }
            let key = secrets
                .get(API_KEY)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ConfigError::new(secret(API_KEY), "required with `auth: api_key`"))?;
            api_key_header(key).map_err(|m| ConfigError::new(secret(API_KEY), m))?
        }
        AuthMode::Basic => {
            if secrets.contains_key(API_KEY) {
                return Err(ConfigError::new(secret(API_KEY), "only used with `auth: api_key`"));
            }
            // Checked by `resolve`: present with `basic`.
            let username = username.unwrap_or_default();
            let password = secrets
                .get(PASSWORD)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ConfigError::new(secret(PASSWORD), "required with `auth: basic`"))?;
            let encoded = STANDARD.encode(format!("{username}:{password}"));
            HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| ConfigError::new(secret(PASSWORD), "cannot be sent in a header"))?
        }
    };
    // Keeps the value out of HTTP-level debug logging.
    value.set_sensitive(true);
    Ok(Auth(value))
}

/// `ApiKey <encoded>`. Elastic shows a new key as `encoded` (base64 of `id:api_key`), which is
/// what the header takes; the `id:api_key` pair is accepted too and encoded here (base64 has no
/// colon, so the two forms cannot be confused). The error never quotes the key.
fn api_key_header(key: &str) -> Result<HeaderValue, &'static str> {
    let encoded = if key.contains(':') {
        STANDARD.encode(key)
    } else {
        key.to_owned()
    };
    if !encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        return Err("must be the key's `encoded` form (base64) or `id:api_key`");
    }
    HeaderValue::from_str(&format!("ApiKey {encoded}")).map_err(|_| "cannot be sent in a header")
}

/// Save-time validation: the whole definition, then the URL against the SSRF policy (resolving
/// its host). Generates no secrets.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    parse(config, secrets)?;
    if let Some(Value::String(raw)) = config.get("url") {
        http::check_url(raw, "config.url", env).await?;
    }
    Ok(Secrets::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::secrets;
    use serde_json::json;

    fn key() -> Secrets {
        secrets(&[(API_KEY, "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")])
    }

    #[test]
    fn defaults_and_bulk_url() {
        let c = parse(&json!({"url": "https://es.example.com:9243"}), &key()).unwrap();
        assert_eq!(c.bulk_url.as_str(), "https://es.example.com:9243/_bulk");
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.index.source(), DEFAULT_INDEX);
        assert!(c.auth.0.to_str().unwrap().starts_with("ApiKey VnVh"));
        assert!(c.auth.0.is_sensitive());
        assert_eq!(format!("{:?}", c.auth), "Auth(<redacted>)");
        let c = parse(
            &json!({"url": "https://proxy.example.com/es/?pipeline=audit#x"}),
            &key(),
        )
        .unwrap();
        assert_eq!(c.bulk_url.as_str(), "https://proxy.example.com/es/_bulk?pipeline=audit");
    }

    #[test]
    fn api_key_forms() {
        let id_key = parse(
            &json!({"url": "https://es.example.com"}),
            &secrets(&[(API_KEY, "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")]),
        )
        .unwrap();
        assert_eq!(
            id_key.auth.0.to_str().unwrap(),
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        let e = parse(
            &json!({"url": "https://es.example.com"}),
            &secrets(&[(API_KEY, "not a key\n")]),
        )
        .unwrap_err();
        assert_eq!(e.field, "secrets.api_key");
        assert!(!e.message.contains("not a key"), "{e}");
    }

    #[test]
    fn basic_auth() {
        let c = parse(
            &json!({"url": "https://es.example.com", "auth": "basic", "username": "elastic"}),
            &secrets(&[(PASSWORD, "changeme")]),
        )
        .unwrap();
        assert_eq!(c.auth.0.to_str().unwrap(), "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
    }

    #[test]
    fn errors_name_the_field() {
        let url = "https://es.example.com";
        let f = |config: Value, secrets: Secrets| parse(&config, &secrets).unwrap_err().field;
        assert_eq!(f(json!([]), key()), "config");
        assert_eq!(f(json!({}), key()), "config.url");
        assert_eq!(f(json!({"url": 1}), key()), "config.url");
        assert_eq!(f(json!({"url": url, "pipeline": "x"}), key()), "config.pipeline");
        assert_eq!(f(json!({"url": url, "index": "Bad"}), key()), "config.index");
        assert_eq!(f(json!({"url": url, "action": "update"}), key()), "config.action");
        assert_eq!(f(json!({"url": url, "auth": "oauth"}), key()), "config.auth");
        assert_eq!(f(json!({"url": url}), Secrets::new()), "secrets.api_key");
        assert_eq!(f(json!({"url": url, "username": "u"}), key()), "config.username");
        assert_eq!(
            f(json!({"url": url, "auth": "basic"}), secrets(&[(PASSWORD, "p")])),
            "config.username"
        );
        assert_eq!(
            f(
                json!({"url": url, "auth": "basic", "username": "a:b"}),
                secrets(&[(PASSWORD, "p")])
            ),
            "config.username"
        );
        assert_eq!(
            f(json!({"url": url, "auth": "basic", "username": "u"}), Secrets::new()),
            "secrets.password"
        );
        assert_eq!(
            f(json!({"url": url, "auth": "basic", "username": "u"}), key()),
            "secrets.api_key"
        );
        let mut both = key();
        both.insert(PASSWORD.into(), "p".into());
        assert_eq!(f(json!({"url": url}), both), "secrets.password");
        assert_eq!(f(json!({"url": url, "vendor": 5}), key()), "config.vendor");
        let mut extra = key();
        extra.insert("previous_api_key".into(), "x".into());
        assert_eq!(f(json!({"url": url}), extra), "secrets.previous_api_key");
        // Format option keys are accepted.
        assert!(parse(&json!({"url": url, "ocsf_version": "1.8.0"}), &key()).is_ok());
    }
}
