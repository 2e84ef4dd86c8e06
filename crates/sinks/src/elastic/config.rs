//! The elastic sink's `config` and `secrets`: parsing and save-time validation.

use std::fmt;

use auditrelay_format::FormatOptions;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::Url;
use serde_json::{Map, Value};

use super::index::IndexTemplate;
use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

pub const API_KEY: &str = "api_key";
pub const PASSWORD: &str = "password";
pub const DEFAULT_INDEX: &str = "auditrelay-{tenant}";

const KEYS: &[&str] = &["url", "index", "action", "auth", "username"];

/// The `_bulk` action per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fails with 409 when the `_id` exists; the only action data streams accept.
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
pub(crate) struct ElasticConfig {
    /// `{url}/_bulk`, the base's query kept (`?pipeline=…`).
    pub bulk_url: Url,
    pub index: IndexTemplate,
    pub action: Action,
    pub auth: Auth,
    pub options: FormatOptions,
}

fn field(name: &str) -> String {
    format!("config.{name}")
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ConfigError::new(field(key), "must be a string")),
    }
}

/// Parses `config` and `secrets` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse(config: &Value, secrets: &Secrets) -> Result<ElasticConfig, ConfigError> {
    let obj = crate::config_keys::known_keys_only(config, "an `elastic` sink", KEYS)?;
    // The registry lets `previous_*` names through for kinds that rotate; this one does not.
    if let Some(name) = secrets.keys().find(|k| *k != API_KEY && *k != PASSWORD) {
        return Err(ConfigError::new(
            format!("secrets.{name}"),
            format!("`elastic` sinks take no secret named `{name}` (known: {API_KEY}, {PASSWORD})"),
        ));
    }
    let url = match opt_str(obj, "url")? {
        Some(raw) => http::parse_url(raw, "config.url")?,
        None => return Err(ConfigError::new("config.url", "required (the cluster's base URL)")),
    };
    let index = IndexTemplate::parse(opt_str(obj, "index")?.unwrap_or(DEFAULT_INDEX))
        .map_err(|m| ConfigError::new("config.index", m))?;
    let action = match opt_str(obj, "action")? {
        None | Some("create") => Action::Create,
        Some("index") => Action::Index,
        Some(other) => {
            return Err(ConfigError::new(
                "config.action",
                format!("must be `create` (the default; data streams need it) or `index`, not `{other}`"),
            ))
        }
    };
    let auth = parse_auth(obj, secrets)?;
    let options = FormatOptions::from_config(obj).map_err(|e| ConfigError::new(e.field, e.message))?;
    Ok(ElasticConfig {
        bulk_url: bulk_url(&url),
        index,
        action,
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

fn parse_auth(obj: &Map<String, Value>, secrets: &Secrets) -> Result<Auth, ConfigError> {
    let username = opt_str(obj, "username")?;
    let secret = |name: &str| format!("secrets.{name}");
    let mut value = match opt_str(obj, "auth")? {
        None | Some("api_key") => {
            if username.is_some() {
                return Err(ConfigError::new("config.username", "only used with `auth: basic`"));
            }
            if secrets.contains_key(PASSWORD) {
                return Err(ConfigError::new(secret(PASSWORD), "only used with `auth: basic`"));
            }
            let key = secrets
                .get(API_KEY)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ConfigError::new(secret(API_KEY), "required with `auth: api_key`"))?;
            api_key_header(key).map_err(|m| ConfigError::new(secret(API_KEY), m))?
        }
        Some("basic") => {
            if secrets.contains_key(API_KEY) {
                return Err(ConfigError::new(secret(API_KEY), "only used with `auth: api_key`"));
            }
            let username = username
                .filter(|u| !u.is_empty())
                .ok_or_else(|| ConfigError::new("config.username", "required with `auth: basic`"))?;
            // RFC 7617: the first colon separates the user name from the password.
            if username.contains(':') || username.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "config.username",
                    "must not contain a colon or control characters",
                ));
            }
            let password = secrets
                .get(PASSWORD)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ConfigError::new(secret(PASSWORD), "required with `auth: basic`"))?;
            let encoded = STANDARD.encode(format!("{username}:{password}"));
            HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| ConfigError::new(secret(PASSWORD), "cannot be sent in a header"))?
        }
        Some(other) => {
            return Err(ConfigError::new(
                "config.auth",
                format!("must be `api_key` (the default) or `basic`, not `{other}`"),
            ))
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
    use serde_json::json;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

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
