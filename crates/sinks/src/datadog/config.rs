//! The `datadog` sink's `config` and `secrets`: parsing and save-time validation.

use auditrelay_format::FormatOptions;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::secret_header::{secret_header, SecretHeader};
use crate::{ConfigError, Secrets, SinkEnv};

/// The Datadog API key (the `api_key` secret), sent as `DD-API-KEY`.
pub const API_KEY: &str = "api_key";
/// The Datadog site when neither `site` nor `url` is given (US1).
pub const DEFAULT_SITE: &str = "datadoghq.com";
/// `ddsource` when none is configured: what `source:auditrelay` finds in the Logs Explorer.
pub const DEFAULT_DDSOURCE: &str = "auditrelay";
/// Longest `service`, `ddsource`, `hostname` accepted.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Longest `ddtags` accepted (a comma-separated tag list).
pub const MAX_TAGS_BYTES: usize = 4096;

crate::typed::with_format_options! {
    /// `config` of a `datadog` sink. `site` and `url` exclude each other.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "datadog config", transform = site_or_url)]
    pub struct DatadogConfig {
        /// The Datadog site (default `datadoghq.com`; e.g. `datadoghq.eu`, `us5.datadoghq.com`, without
        /// `app.`): logs go to `https://http-intake.logs.{site}/api/v2/logs`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES), pattern(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$"))]
        #[schemars(extend("not" = {"type": "string", "pattern": "^app\\."}, "default" = DEFAULT_SITE))]
        pub site: Option<String>,
        /// A full logs intake URL instead of `site` (a proxy, a test receiver).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::typed::opt_url_schema")]
        pub url: Option<String>,
        /// The `service` attribute of every log entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES))]
        pub service: Option<String>,
        /// The `ddsource` attribute (default `auditrelay`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES), extend("default" = DEFAULT_DDSOURCE))]
        pub ddsource: Option<String>,
        /// Comma-separated `key:value` tags (`ddtags`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_TAGS_BYTES))]
        pub ddtags: Option<String>,
        /// The `hostname` attribute of every log entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_FIELD_BYTES))]
        pub hostname: Option<String>,
    }
}

/// `url` must be absent or null when `site` is a string: the error points at `url`, as the
/// server's does.
fn site_or_url(schema: &mut schemars::Schema) {
    schema.insert(
        "if".into(),
        serde_json::json!({"properties": {"site": {"type": "string"}}, "required": ["site"]}),
    );
    schema.insert(
        "then".into(),
        serde_json::json!({"properties": {"url": {"type": "null"}}}),
    );
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct DatadogSettings {
    /// The logs intake: `https://http-intake.logs.{site}/api/v2/logs`, or `url` as given.
    pub url: Url,
    pub service: Option<String>,
    pub ddsource: String,
    pub ddtags: Option<String>,
    pub hostname: Option<String>,
    pub options: FormatOptions,
}

/// The API key, ready for the `DD-API-KEY` header. Debug never shows it.
pub(crate) type ApiKey = SecretHeader;

pub(crate) fn parse_api_key(secrets: &Secrets) -> Result<ApiKey, ConfigError> {
    secret_header(secrets, API_KEY, "a Datadog API key", "", "ApiKey")
}

/// Parses `config` without touching the network (URL shape only; see [`validate`]).
pub(crate) fn parse_config(config: &Value) -> Result<DatadogSettings, ConfigError> {
    crate::typed::parse_config::<DatadogConfig>(config)?.resolve()
}

impl DatadogConfig {
    /// What the schema cannot say: the URL's syntax; and the byte lengths.
    pub(crate) fn resolve(&self) -> Result<DatadogSettings, ConfigError> {
        let site = checked(&self.site, "site", MAX_FIELD_BYTES)?;
        let url = match (&self.url, site) {
            (None, site) => site_url(site.unwrap_or(DEFAULT_SITE))?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "config.url",
                    "give either `site` or `url` (a full intake URL), not both",
                ))
            }
            (Some(raw), None) => http::parse_url(raw, "config.url")?,
        };
        let options = self.format_options()?;
        Ok(DatadogSettings {
            url,
            service: checked(&self.service, "service", MAX_FIELD_BYTES)?.map(str::to_owned),
            ddsource: checked(&self.ddsource, "ddsource", MAX_FIELD_BYTES)?
                .unwrap_or(DEFAULT_DDSOURCE)
                .to_owned(),
            ddtags: checked(&self.ddtags, "ddtags", MAX_TAGS_BYTES)?.map(str::to_owned),
            hostname: checked(&self.hostname, "hostname", MAX_FIELD_BYTES)?.map(str::to_owned),
            options,
        })
    }
}

/// `https://http-intake.logs.{site}/api/v2/logs` for a Datadog site such as `datadoghq.eu` or
/// `us5.datadoghq.com`.
fn site_url(site: &str) -> Result<Url, ConfigError> {
    let field = "config.site";
    let is_label_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let well_formed = site.contains('.')
        && site
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(is_label_char));
    if !well_formed {
        return Err(ConfigError::new(
            field,
            "must be a Datadog site such as datadoghq.com, datadoghq.eu or us5.datadoghq.com (lowercase; use `url` \
             for a full URL)",
        ));
    }
    // The UI's address is not the site: app.datadoghq.eu is site datadoghq.eu.
    if let Some(rest) = site.strip_prefix("app.") {
        return Err(ConfigError::new(
            field,
            format!("give the site without `app.`: `{rest}`"),
        ));
    }
    http::parse_url(&format!("https://http-intake.logs.{site}/api/v2/logs"), field)
}

fn checked<'a>(value: &'a Option<String>, key: &str, max: usize) -> Result<Option<&'a str>, ConfigError> {
    match value.as_deref() {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.len() <= max => Ok(Some(s)),
        Some(_) => Err(ConfigError::new(
            format!("config.{key}"),
            format!("must be a non-empty string of at most {max} bytes"),
        )),
    }
}

/// Save-time validation: `config` (the intake URL against the SSRF policy, resolving its host)
/// and the `api_key` secret. Generates nothing.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse_config(config)?;
    let field = if config.get("url").is_some_and(|u| !u.is_null()) {
        "config.url"
    } else {
        "config.site"
    };
    http::check_url(parsed.url.as_str(), field, env).await?;
    parse_api_key(secrets)?;
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
    fn sites_urls_and_defaults() {
        let c = parse_config(&json!({})).unwrap();
        assert_eq!(c.url.as_str(), "https://http-intake.logs.datadoghq.com/api/v2/logs");
        assert_eq!(c.ddsource, "auditrelay");
        assert!(c.service.is_none() && c.ddtags.is_none() && c.hostname.is_none());
        let c = parse_config(
            &json!({"site": "datadoghq.eu", "service": "billing", "ddsource": "audit",
                                     "ddtags": "env:prod,team:soc", "hostname": "relay-1", "product": "Relay"}),
        )
        .unwrap();
        assert_eq!(c.url.as_str(), "https://http-intake.logs.datadoghq.eu/api/v2/logs");
        assert_eq!(
            (
                c.service.as_deref(),
                c.ddsource.as_str(),
                c.ddtags.as_deref(),
                c.hostname.as_deref()
            ),
            (Some("billing"), "audit", Some("env:prod,team:soc"), Some("relay-1"))
        );
        assert_eq!(c.options.product, "Relay");
        let c = parse_config(&json!({"site": "us5.datadoghq.com"})).unwrap();
        assert_eq!(c.url.as_str(), "https://http-intake.logs.us5.datadoghq.com/api/v2/logs");
        let c = parse_config(&json!({"url": "http://127.0.0.1:9/api/v2/logs?x=1"})).unwrap();
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9/api/v2/logs?x=1");
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(err(json!("x")).field, "config");
        assert_eq!(err(json!({"api_key": "k"})).field, "config.api_key");
        for bad in ["DatadogHQ.com", "datadoghq", "https://datadoghq.com", "a..b", ""] {
            assert_eq!(err(json!({"site": bad})).field, "config.site", "{bad}");
        }
        let e = err(json!({"site": "app.datadoghq.eu"}));
        assert!(e.message.contains("`datadoghq.eu`"), "{e}");
        let e = err(json!({"site": "datadoghq.eu", "url": "https://x.example.com/"}));
        assert_eq!(e.field, "config.url");
        assert_eq!(err(json!({"url": "ftp://x/"})).field, "config.url");
        assert_eq!(err(json!({"url": 3})).field, "config.url");
        assert_eq!(err(json!({"service": ""})).field, "config.service");
        assert_eq!(err(json!({"ddsource": 1})).field, "config.ddsource");
        assert_eq!(err(json!({"ddtags": ["a:b"]})).field, "config.ddtags");
        assert_eq!(err(json!({"hostname": "h".repeat(1025)})).field, "config.hostname");
        assert_eq!(err(json!({"ocsf_version": ""})).field, "config.ocsf_version");
    }

    #[test]
    fn api_key_rules_never_echo_the_value() {
        let s = |v: &str| Secrets::from([(API_KEY.to_owned(), v.to_owned())]);
        assert_eq!(parse_api_key(&Secrets::new()).unwrap_err().field, "secrets.api_key");
        for bad in ["", "hunter2 ", "a\u{7f}hunter2"] {
            let e = parse_api_key(&s(bad)).unwrap_err();
            assert_eq!(e.field, "secrets.api_key");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let key = parse_api_key(&s("0123456789abcdef0123456789abcdef")).unwrap();
        assert!(key.header().is_sensitive());
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    }
}
