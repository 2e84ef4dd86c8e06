//! The `splunk_hec` sink's `config` and `secrets`: parsing and save-time validation.

use auditrelay_format::FormatOptions;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::secret_header::{secret_header, SecretHeader};
use crate::template::Template;
use crate::{ConfigError, Secrets, SinkEnv};

/// The HEC token (the `token` secret).
pub const TOKEN: &str = "token";
/// The `sourcetype` when none is configured: one sourcetype per event type.
pub const DEFAULT_SOURCETYPE: &str = "auditrelay:{type}";
/// Longest `host`, `source` or `sourcetype` accepted; Splunk's own fields are far shorter.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Paths the sink appends to the collector base.
pub(crate) const EVENT_PATH: &str = "/services/collector/event";
pub(crate) const ACK_PATH: &str = "/services/collector/ack";

crate::typed::with_format_options! {
    /// `config` of a `splunk_hec` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "splunk_hec config")]
    pub struct SplunkHecConfig {
        /// The HTTP Event Collector's base URL, e.g. `https://splunk.example.com:8088`, without
        /// `/services/collector` (the sink appends it), a query or a fragment.
        #[schemars(schema_with = "crate::typed::url_schema")]
        pub url: String,
        /// The Splunk index (the token's default index when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES), pattern(r"^[a-z0-9][a-z0-9_-]*$"))]
        pub index: Option<String>,
        /// The `source` of every event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES))]
        pub source: Option<String>,
        /// The `sourcetype`: text with `{type}` and `{tenant}` placeholders.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES), pattern(r"^([^{]|\{type\}|\{tenant\})*$"))]
        #[schemars(extend("default" = DEFAULT_SOURCETYPE))]
        pub sourcetype: Option<String>,
        /// The `host` of every event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES))]
        pub host: Option<String>,
        /// Indexer acknowledgements: a batch counts as delivered only once Splunk says it is indexed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = false))]
        pub acks: Option<bool>,
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct HecConfig {
    /// The collector base as configured (`https://splunk:8088`).
    pub base: Url,
    pub event_url: Url,
    pub ack_url: Url,
    pub index: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Template,
    pub host: Option<String>,
    pub acks: bool,
    pub options: FormatOptions,
}

/// The HEC token, ready for the `Authorization` header as `Splunk <token>`. Debug never shows it.
pub(crate) type Token = SecretHeader;

pub(crate) fn parse_token(secrets: &Secrets) -> Result<Token, ConfigError> {
    secret_header(secrets, TOKEN, "the HEC token", "Splunk ", "Token")
}

/// Parses `config` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse_config(config: &Value) -> Result<HecConfig, ConfigError> {
    crate::typed::parse_config::<SplunkHecConfig>(config)?.resolve()
}

impl SplunkHecConfig {
    /// What the schema cannot say: the URL's syntax and the collector base rules; byte lengths.
    pub(crate) fn resolve(&self) -> Result<HecConfig, ConfigError> {
        let base = http::parse_url(&self.url, "config.url")?;
        let (event_url, ack_url) = endpoint_urls(&base)?;
        let index = checked(&self.index, "index")?;
        if let Some(index) = index {
            check_index(index)?;
        }
        let sourcetype = Template::parse(checked(&self.sourcetype, "sourcetype")?.unwrap_or(DEFAULT_SOURCETYPE))
            .map_err(|m| ConfigError::new("config.sourcetype", m))?;
        let options = self.format_options()?;
        Ok(HecConfig {
            base,
            event_url,
            ack_url,
            index: index.map(str::to_owned),
            source: checked(&self.source, "source")?.map(str::to_owned),
            sourcetype,
            host: checked(&self.host, "host")?.map(str::to_owned),
            acks: self.acks.unwrap_or(false),
            options,
        })
    }
}

/// `{base}/services/collector/event` and `…/ack`, keeping a path prefix on the base (a proxy's).
fn endpoint_urls(base: &Url) -> Result<(Url, Url), ConfigError> {
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ConfigError::new(
            "config.url",
            "must have no query or fragment: give the collector base, e.g. https://splunk.example.com:8088",
        ));
    }
    let prefix = base.path().trim_end_matches('/');
    if prefix.contains("/services/collector") {
        return Err(ConfigError::new(
            "config.url",
            format!(
                "give the collector base (e.g. https://splunk.example.com:8088), without `/services/collector`: \
                 the sink appends {EVENT_PATH} itself"
            ),
        ));
    }
    let with_path = |path: &str| {
        let mut url = base.clone();
        url.set_path(&format!("{prefix}{path}"));
        url
    };
    Ok((with_path(EVENT_PATH), with_path(ACK_PATH)))
}

/// Splunk's rule for index names: lowercase letters, digits, `_` and `-`, starting with a letter
/// or digit. Checked here so a typo fails at save time rather than as HEC code 7 later.
fn check_index(index: &str) -> Result<(), ConfigError> {
    let mut bytes = index.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "config.index",
            "must be a Splunk index name: lowercase letters, digits, `_` and `-`, starting with a letter or digit",
        ))
    }
}

fn checked<'a>(value: &'a Option<String>, key: &str) -> Result<Option<&'a str>, ConfigError> {
    match value.as_deref() {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.len() <= MAX_FIELD_BYTES => Ok(Some(s)),
        Some(_) => Err(ConfigError::new(
            format!("config.{key}"),
            format!("must be a non-empty string of at most {MAX_FIELD_BYTES} bytes"),
        )),
    }
}

/// Save-time validation: `config` (the URL against the SSRF policy, resolving its host) and the
/// `token` secret. Generates nothing.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse_config(config)?;
    http::check_url(parsed.base.as_str(), "config.url", env).await?;
    parse_token(secrets)?;
    Ok(Secrets::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(config: Value) -> ConfigError {
        parse_config(&config).unwrap_err()
    }

    #[test]
    fn config_fields_and_defaults() {
        let c = parse_config(&json!({"url": "https://splunk.example.com:8088"})).unwrap();
        assert_eq!(
            c.event_url.as_str(),
            "https://splunk.example.com:8088/services/collector/event"
        );
        assert_eq!(
            c.ack_url.as_str(),
            "https://splunk.example.com:8088/services/collector/ack"
        );
        assert_eq!(c.sourcetype.render("user.login", "acme"), "auditrelay:user.login");
        assert!(!c.acks && c.index.is_none() && c.source.is_none() && c.host.is_none());

        let c = parse_config(&json!({
            "url": "https://proxy.example.com/splunk/", "index": "audit_2026", "source": "auditrelay",
            "sourcetype": "{tenant}:audit:{type}", "host": "relay-1", "acks": true, "vendor": "Acme"
        }))
        .unwrap();
        assert_eq!(
            c.event_url.as_str(),
            "https://proxy.example.com/splunk/services/collector/event"
        );
        assert_eq!(c.sourcetype.render("a.b", "t1"), "t1:audit:a.b");
        assert_eq!(c.index.as_deref(), Some("audit_2026"));
        assert!(c.acks);
        assert_eq!(c.options.vendor, "Acme");
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(err(json!([])).field, "config");
        assert_eq!(err(json!({})).field, "config.url");
        assert_eq!(err(json!({"url": 1})).field, "config.url");
        let e = err(json!({"url": "https://s:8088/services/collector/event"}));
        assert_eq!(e.field, "config.url");
        assert!(e.message.contains("collector base"), "{e}");
        assert_eq!(err(json!({"url": "https://s:8088/?x=1"})).field, "config.url");
        let url = "https://s:8088";
        let e = err(json!({"url": url, "indexes": "x"}));
        assert_eq!(e.field, "config.indexes");
        assert!(e.message.contains("unknown key"), "{e}");
        for bad in ["Main", "_internal", "a b", ""] {
            assert_eq!(err(json!({"url": url, "index": bad})).field, "config.index", "{bad}");
        }
        assert_eq!(err(json!({"url": url, "source": 5})).field, "config.source");
        assert_eq!(err(json!({"url": url, "host": ""})).field, "config.host");
        assert_eq!(err(json!({"url": url, "acks": "yes"})).field, "config.acks");
        let e = err(json!({"url": url, "sourcetype": "audit:{kind}"}));
        assert_eq!(e.field, "config.sourcetype");
        assert!(e.message.contains("{kind}"), "{e}");
        assert_eq!(
            err(json!({"url": url, "sourcetype": "audit:{type"})).field,
            "config.sourcetype"
        );
        assert_eq!(
            err(json!({"url": url, "leef_delimiter": "ab"})).field,
            "config.leef_delimiter"
        );
    }

    #[test]
    fn template_parts() {
        assert_eq!(Template::parse("plain").unwrap().render("t", "x"), "plain");
        assert_eq!(Template::parse("{type}{type}}").unwrap().render("t", "x"), "tt}");
        assert_eq!(Template::parse("").unwrap().render("t", "x"), "");
    }

    #[test]
    fn token_rules_never_echo_the_value() {
        let s = |v: &str| Secrets::from([(TOKEN.to_owned(), v.to_owned())]);
        assert_eq!(parse_token(&Secrets::new()).unwrap_err().field, "secrets.token");
        for bad in ["", " abc", "ab\ncd-hunter2"] {
            let e = parse_token(&s(bad)).unwrap_err();
            assert_eq!(e.field, "secrets.token");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let token = parse_token(&s("11111111-2222-3333-4444-555555555555")).unwrap();
        assert_eq!(token.header(), "Splunk 11111111-2222-3333-4444-555555555555");
        assert!(token.header().is_sensitive());
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }
}
