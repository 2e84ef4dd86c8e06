//! The sentinel sink's `config` and `secrets`: parsing and save-time validation.
//!
//! Two modes share one kind: `logs_ingestion` (the live Azure path: DCE + DCR + stream, OAuth2
//! client credentials) and `data_collector` (the retired SharedKey API, for compatible
//! receivers). Each mode refuses the other's keys and secrets by name, so a half-migrated
//! definition fails at save time instead of silently using the wrong credentials.

use std::fmt;

use auditrelay_format::FormatOptions;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

pub const CLIENT_SECRET: &str = "client_secret";
pub const SHARED_KEY: &str = "shared_key";

pub const MODE_LOGS_INGESTION: &str = "logs_ingestion";
pub const MODE_DATA_COLLECTOR: &str = "data_collector";

/// Microsoft Entra ID (public cloud). Sovereign clouds have their own
/// (`https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`).
pub const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
/// The audience of the Logs Ingestion API in the public cloud.
pub const DEFAULT_SCOPE: &str = "https://monitor.azure.com/.default";
/// Data Collector records land in `<log_type>_CL`.
pub const DEFAULT_LOG_TYPE: &str = "AuditRelay";
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";
pub const DATA_COLLECTOR_API_VERSION: &str = "2016-04-01";

const LOGS_INGESTION_KEYS: &[&str] = &[
    "endpoint",
    "dcr_id",
    "stream",
    "authority_url",
    "azure_tenant_id",
    "client_id",
    "scope",
];
const DATA_COLLECTOR_KEYS: &[&str] = &["url", "workspace_id", "log_type"];

/// Where the Data Collector API lives for a workspace, before `url` overrides it.
pub(crate) fn default_data_collector_url(workspace_id: &str) -> String {
    format!("https://{workspace_id}.ods.opinsights.azure.com/api/logs?api-version={DATA_COLLECTOR_API_VERSION}")
}

/// `mode` of a logs-ingestion config: the default, so it may be left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogsIngestionMode {
    LogsIngestion,
}

/// `mode` of a data-collector config: required to choose that mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataCollectorMode {
    DataCollector,
}

crate::typed::with_format_options! {
    /// `config` of a `sentinel` sink in `logs_ingestion` mode (the default): the Logs Ingestion API
    /// through a data collection endpoint and rule, with an Entra ID app's client credentials
    /// (the `client_secret` secret).
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "sentinel config (logs_ingestion)")]
    pub struct LogsIngestionConfig {
        /// `logs_ingestion` (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mode: Option<LogsIngestionMode>,
        /// The data collection endpoint (DCE), a base URL without query or fragment, e.g.
        /// `https://my-dce-a1b2.westeurope-1.ingest.monitor.azure.com`.
        #[schemars(schema_with = "crate::typed::url_schema")]
        pub endpoint: String,
        /// The data collection rule's immutable id: `dcr-` and 32 hex digits.
        #[schemars(pattern(r"^dcr-[0-9A-Fa-f]{32}$"))]
        pub dcr_id: String,
        /// The stream declared in the DCR: `Custom-…` (or `Microsoft-…` for a built-in table).
        #[schemars(length(max = 256), pattern(r"^(Custom|Microsoft)-[A-Za-z0-9_-]+$"))]
        pub stream: String,
        /// The Entra ID authority (default `https://login.microsoftonline.com`; sovereign clouds have
        /// their own), a base URL without query or fragment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::typed::opt_url_schema", extend("default" = DEFAULT_AUTHORITY_URL))]
        pub authority_url: Option<String>,
        /// The Microsoft Entra tenant (directory) id, a GUID, or its domain name.
        #[schemars(pattern(r"^[A-Za-z0-9.-]{1,253}$"))]
        pub azure_tenant_id: String,
        /// The app registration's application (client) id.
        #[schemars(pattern(r"^[!-~]{1,256}$"))]
        pub client_id: String,
        /// The OAuth2 scope (default `https://monitor.azure.com/.default`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(pattern(r"^[ -~]{1,1024}$"), extend("default" = DEFAULT_SCOPE))]
        pub scope: Option<String>,
    }
}

crate::typed::with_format_options! {
    /// `config` of a `sentinel` sink in `data_collector` mode: the retired HTTP Data Collector API's
    /// request shape, SharedKey-signed with the `shared_key` secret, for compatible receivers.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "sentinel config (data_collector)")]
    pub struct DataCollectorConfig {
        /// `data_collector`.
        pub mode: DataCollectorMode,
        /// The Log Analytics workspace id (a GUID): it names the default URL's host and the SharedKey.
        #[schemars(pattern(r"^[A-Za-z0-9-]{1,63}$"))]
        pub workspace_id: String,
        /// A full URL instead of the workspace's default Data Collector URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::typed::opt_url_schema")]
        pub url: Option<String>,
        /// Records land in `<log_type>_CL`: 1 to 100 letters, digits or `_` (default `AuditRelay`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(pattern(r"^[A-Za-z0-9_]{1,100}$"), extend("default" = DEFAULT_LOG_TYPE))]
        pub log_type: Option<String>,
    }
}

/// `config` of a `sentinel` sink: one of two modes, chosen by `mode`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
// One per sink definition: the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum SentinelConfig {
    LogsIngestion(LogsIngestionConfig),
    DataCollector(DataCollectorConfig),
}

impl<'de> Deserialize<'de> for SentinelConfig {
    // Through a `Value`: the mode decides which struct the keys belong to. The API parses with
    // [`SentinelConfig::parse`], which names the field at fault.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        SentinelConfig::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for SentinelConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SentinelConfig".into()
    }

    // `if`/`then`/`else` on `mode` rather than `oneOf`: `mode` may be left out (logs_ingestion),
    // and an error then points at the key at fault instead of at the whole object.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let logs_ingestion = generator.subschema_for::<LogsIngestionConfig>();
        let data_collector = generator.subschema_for::<DataCollectorConfig>();
        schemars::json_schema!({
            "title": "sentinel config",
            "description": "`mode` `logs_ingestion` (the default) or `data_collector`; each mode has its own keys.",
            "type": "object",
            "properties": {"mode": {"enum": [MODE_LOGS_INGESTION, MODE_DATA_COLLECTOR, null], "default": MODE_LOGS_INGESTION}},
            "if": {"properties": {"mode": {"const": MODE_DATA_COLLECTOR}}, "required": ["mode"]},
            "then": data_collector,
            "else": logs_ingestion,
        })
    }
}

impl SentinelConfig {
    /// Parses `config`: `mode` first, so that a key of the other mode is named as such.
    pub(crate) fn parse(config: &Value) -> Result<SentinelConfig, ConfigError> {
        let obj = config
            .as_object()
            .ok_or_else(|| ConfigError::new("config", "must be a JSON object"))?;
        let mode = match obj.get("mode") {
            None | Some(Value::Null) => MODE_LOGS_INGESTION,
            Some(Value::String(m)) if m == MODE_LOGS_INGESTION => MODE_LOGS_INGESTION,
            Some(Value::String(m)) if m == MODE_DATA_COLLECTOR => MODE_DATA_COLLECTOR,
            Some(_) => {
                return Err(ConfigError::new(
                    "config.mode",
                    format!("must be `{MODE_LOGS_INGESTION}` (the default) or `{MODE_DATA_COLLECTOR}`"),
                ))
            }
        };
        let (other, other_mode) = if mode == MODE_LOGS_INGESTION {
            (DATA_COLLECTOR_KEYS, MODE_DATA_COLLECTOR)
        } else {
            (LOGS_INGESTION_KEYS, MODE_LOGS_INGESTION)
        };
        if let Some(key) = obj.keys().find(|k| other.contains(&k.as_str())) {
            return Err(ConfigError::new(
                format!("config.{key}"),
                format!("applies only when `mode` is `{other_mode}` (this sink's mode is `{mode}`)"),
            ));
        }
        if mode == MODE_LOGS_INGESTION {
            crate::typed::parse_config(config).map(SentinelConfig::LogsIngestion)
        } else {
            crate::typed::parse_config(config).map(SentinelConfig::DataCollector)
        }
    }

    /// What the schema cannot say: the URLs' syntax (and that they carry no query or fragment).
    pub(crate) fn resolve(&self) -> Result<SentinelSettings, ConfigError> {
        match self {
            SentinelConfig::LogsIngestion(c) => Ok(SentinelSettings {
                mode: ModeConfig::LogsIngestion(parse_logs_ingestion(c)?),
                options: c.format_options()?,
            }),
            SentinelConfig::DataCollector(c) => Ok(SentinelSettings {
                mode: ModeConfig::DataCollector(parse_data_collector(c)?),
                options: c.format_options()?,
            }),
        }
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct SentinelSettings {
    pub mode: ModeConfig,
    pub options: FormatOptions,
}

// One per sink definition, built once: the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum ModeConfig {
    LogsIngestion(LogsIngestionSettings),
    DataCollector(DataCollectorSettings),
}

#[derive(Debug, Clone)]
pub(crate) struct LogsIngestionSettings {
    /// `{endpoint}/dataCollectionRules/{dcr_id}/streams/{stream}?api-version=2023-01-01`.
    pub ingestion_url: Url,
    /// `{authority_url}/{azure_tenant_id}/oauth2/v2.0/token`.
    pub token_url: Url,
    pub client_id: String,
    pub scope: String,
    /// The URLs as configured, for the save-time SSRF check (`None`: the built-in default).
    pub endpoint: Url,
    pub authority_url: Option<Url>,
}

#[derive(Debug, Clone)]
pub(crate) struct DataCollectorSettings {
    /// `url`, or the workspace's default Data Collector URL.
    pub url: Url,
    /// Whether `url` was given (only then does the save-time SSRF check resolve it).
    pub url_given: bool,
    pub workspace_id: String,
    pub log_type: String,
}

/// Parses `config` without touching the network (see [`validate`] for the address checks).
pub(crate) fn parse_config(config: &Value) -> Result<SentinelSettings, ConfigError> {
    SentinelConfig::parse(config)?.resolve()
}

fn parse_logs_ingestion(c: &LogsIngestionConfig) -> Result<LogsIngestionSettings, ConfigError> {
    let endpoint = base_url(&c.endpoint, "endpoint")?;
    let dcr_id = required(&c.dcr_id, "dcr_id")?;
    let hex = dcr_id.strip_prefix("dcr-").unwrap_or("");
    // The immutable id, not the DCR's name or resource id: those are the usual mix-ups, and the
    // API answers them with a bare 404.
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::new(
            "config.dcr_id",
            "must be the data collection rule's immutable id: `dcr-` and 32 hex digits (`immutableId` in the DCR's JSON view), not its name or resource id",
        ));
    }
    let stream = required(&c.stream, "stream")?;
    let name = stream
        .strip_prefix("Custom-")
        .or_else(|| stream.strip_prefix("Microsoft-"))
        .unwrap_or("");
    if name.is_empty()
        || stream.len() > 256
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            "config.stream",
            "must name a stream declared in the DCR: `Custom-` (or `Microsoft-` for a built-in table) followed by letters, digits, `_` or `-`, e.g. `Custom-AuditRelay_CL`",
        ));
    }
    let authority_url = c
        .authority_url
        .as_deref()
        .map(|raw| base_url(raw, "authority_url"))
        .transpose()?;
    let tenant = required(&c.azure_tenant_id, "azure_tenant_id")?;
    // A GUID or a verified domain (`contoso.onmicrosoft.com`); it becomes a path segment.
    if tenant.len() > 253
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(ConfigError::new(
            "config.azure_tenant_id",
            "must be the Microsoft Entra tenant (directory) id, a GUID, or its domain name",
        ));
    }
    let client_id = required(&c.client_id, "client_id")?;
    if client_id.len() > 256 || !client_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            "config.client_id",
            "must be the app registration's application (client) id, a GUID",
        ));
    }
    let scope = match c.scope.as_deref() {
        None => DEFAULT_SCOPE.to_owned(),
        Some(s) if !s.is_empty() && s.len() <= 1024 && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => {
            s.to_owned()
        }
        Some(_) => {
            return Err(ConfigError::new(
                "config.scope",
                format!("must be a non-empty string of printable ASCII (default `{DEFAULT_SCOPE}`)"),
            ))
        }
    };
    let ingestion_url = join(
        &endpoint,
        &format!("dataCollectionRules/{dcr_id}/streams/{stream}?api-version={LOGS_INGESTION_API_VERSION}"),
        "config.endpoint",
    )?;
    let authority = match &authority_url {
        Some(url) => url.clone(),
        None => http::parse_url(DEFAULT_AUTHORITY_URL, "config.authority_url")?,
    };
    let token_url = join(
        &authority,
        &format!("{tenant}/oauth2/v2.0/token"),
        "config.authority_url",
    )?;
    Ok(LogsIngestionSettings {
        ingestion_url,
        token_url,
        client_id: client_id.to_owned(),
        scope,
        endpoint,
        authority_url,
    })
}

fn parse_data_collector(c: &DataCollectorConfig) -> Result<DataCollectorSettings, ConfigError> {
    // Required even with `url`: the `Authorization: SharedKey {workspace_id}:…` header names it.
    let workspace_id = required(&c.workspace_id, "workspace_id")?;
    if workspace_id.len() > 63 || !workspace_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::new(
            "config.workspace_id",
            "must be the Log Analytics workspace id (a GUID); it is a host name label and part of the SharedKey header",
        ));
    }
    let (url, url_given) = match c.url.as_deref() {
        None => (
            http::parse_url(&default_data_collector_url(workspace_id), "config.workspace_id")?,
            false,
        ),
        Some(raw) => (http::parse_url(raw, "config.url")?, true),
    };
    let log_type = match c.log_type.as_deref() {
        None => DEFAULT_LOG_TYPE,
        Some(s) if !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => s,
        Some(_) => {
            return Err(ConfigError::new(
                "config.log_type",
                "must be 1 to 100 letters, digits or `_` (the table becomes `<log_type>_CL`)",
            ))
        }
    };
    Ok(DataCollectorSettings {
        url,
        url_given,
        workspace_id: workspace_id.to_owned(),
        log_type: log_type.to_owned(),
    })
}

fn required<'a>(value: &'a str, key: &str) -> Result<&'a str, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(format!("config.{key}"), "must not be empty"));
    }
    Ok(value)
}

/// A base URL the sink appends a path to: http(s), no query or fragment.
fn base_url(raw: &str, key: &str) -> Result<Url, ConfigError> {
    let field = format!("config.{key}");
    let url = http::parse_url(raw, &field)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            field,
            "must be a base URL without a query or fragment (the sink appends the path)",
        ));
    }
    Ok(url)
}

/// `base` + `/` + `rest`, keeping any path prefix of `base` (a proxy's) and one slash between.
fn join(base: &Url, rest: &str, field: &str) -> Result<Url, ConfigError> {
    let raw = format!("{}/{rest}", base.as_str().trim_end_matches('/'));
    Url::parse(&raw).map_err(|e| ConfigError::new(field, format!("does not make a valid request URL: {e}")))
}

/// A secret value whose Debug output never shows it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The credential of the configured mode.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    ClientSecret(Secret),
    /// The decoded workspace key.
    SharedKey(SecretBytes),
}

/// Decoded key bytes whose Debug output never shows them.
#[derive(Clone)]
pub(crate) struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Workspace keys are standard base64 (88 characters for 64 bytes); padding is tolerated either
/// way since keys are pasted by hand.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a workspace shared key. The error describes the expected form, never the value.
pub(crate) fn decode_shared_key(key: &str) -> Result<Vec<u8>, String> {
    let bytes = KEY_BASE64
        .decode(key.trim())
        .map_err(|_| "must be the workspace's primary or secondary key (standard base64)".to_owned())?;
    if bytes.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(bytes)
}

pub(crate) fn parse_credential(mode: &ModeConfig, secrets: &Secrets) -> Result<Credential, ConfigError> {
    let field = |name: &str| format!("secrets.{name}");
    if let Some(name) = secrets.keys().find(|k| k.starts_with("previous_")) {
        return Err(ConfigError::new(
            field(name),
            format!("`sentinel` sinks do not rotate secrets (known: {CLIENT_SECRET}, {SHARED_KEY})"),
        ));
    }
    let (own, other, other_mode) = match mode {
        ModeConfig::LogsIngestion(_) => (CLIENT_SECRET, SHARED_KEY, MODE_DATA_COLLECTOR),
        ModeConfig::DataCollector(_) => (SHARED_KEY, CLIENT_SECRET, MODE_LOGS_INGESTION),
    };
    if secrets.contains_key(other) {
        return Err(ConfigError::new(
            field(other),
            format!("used only when `mode` is `{other_mode}`; remove it"),
        ));
    }
    let value = match secrets.get(own) {
        Some(v) if !v.is_empty() => v,
        Some(_) => return Err(ConfigError::new(field(own), "must not be empty")),
        None => return Err(ConfigError::new(field(own), "required")),
    };
    match mode {
        ModeConfig::LogsIngestion(_) => Ok(Credential::ClientSecret(Secret(value.clone()))),
        ModeConfig::DataCollector(_) => {
            let key = decode_shared_key(value).map_err(|m| ConfigError::new(field(own), m))?;
            Ok(Credential::SharedKey(SecretBytes(key)))
        }
    }
}

/// Save-time validation: `config` (user-given URLs against the SSRF policy, resolving their
/// hosts) and `secrets`. Nothing is generated: Azure issues these credentials.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse_config(config)?;
    parse_credential(&parsed.mode, secrets)?;
    // Only addresses the user typed are resolved here: the built-in Azure hosts are public by
    // construction, and an offline save should not fail on them. The send-time resolver guards
    // every address anyway.
    match &parsed.mode {
        ModeConfig::LogsIngestion(li) => {
            http::check_url(li.endpoint.as_str(), "config.endpoint", env).await?;
            if let Some(authority) = &li.authority_url {
                http::check_url(authority.as_str(), "config.authority_url", env).await?;
            }
        }
        ModeConfig::DataCollector(dc) => {
            if dc.url_given {
                http::check_url(dc.url.as_str(), "config.url", env).await?;
            }
        }
    }
    Ok(Secrets::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::secrets;
    use serde_json::json;

    const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";

    fn li(extra: Value) -> Value {
        let mut config = json!({
            "endpoint": "https://my-dce-a1b2.westeurope-1.ingest.monitor.azure.com",
            "dcr_id": DCR,
            "stream": "Custom-AuditRelay_CL",
            "azure_tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "00000000-1111-2222-3333-444444444444",
        });
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                config[k] = v;
            }
        }
        config
    }

    fn err(config: Value) -> ConfigError {
        parse_config(&config).unwrap_err()
    }

    #[test]
    fn logs_ingestion_urls_and_defaults() {
        let parsed = parse_config(&li(json!({}))).unwrap();
        let ModeConfig::LogsIngestion(c) = parsed.mode else {
            panic!("mode")
        };
        assert_eq!(
            c.ingestion_url.as_str(),
            format!("https://my-dce-a1b2.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/{DCR}/streams/Custom-AuditRelay_CL?api-version=2023-01-01")
        );
        assert_eq!(
            c.token_url.as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert_eq!(c.scope, DEFAULT_SCOPE);
        assert!(c.authority_url.is_none());

        // A path prefix (a proxy) is kept; one slash between.
        let parsed = parse_config(&li(json!({
            "endpoint": "https://proxy.example.com/azure/",
            "authority_url": "https://login.microsoftonline.us/",
            "scope": "https://monitor.azure.us/.default",
        })))
        .unwrap();
        let ModeConfig::LogsIngestion(c) = parsed.mode else {
            panic!("mode")
        };
        assert!(c
            .ingestion_url
            .as_str()
            .starts_with("https://proxy.example.com/azure/dataCollectionRules/dcr-"));
        assert!(c
            .token_url
            .as_str()
            .starts_with("https://login.microsoftonline.us/72f988bf"));
        assert_eq!(c.scope, "https://monitor.azure.us/.default");
    }

    #[test]
    fn logs_ingestion_field_errors() {
        for (config, field) in [
            (json!("x"), "config"),
            (li(json!({"mode": "legacy"})), "config.mode"),
            (json!({"dcr_id": DCR}), "config.endpoint"),
            (li(json!({"endpoint": "ftp://x"})), "config.endpoint"),
            (li(json!({"endpoint": "https://x.example.com/?a=1"})), "config.endpoint"),
            (li(json!({"dcr_id": null})), "config.dcr_id"),
            (li(json!({"dcr_id": "my-dcr"})), "config.dcr_id"),
            (li(json!({"dcr_id": "dcr-0123"})), "config.dcr_id"),
            (li(json!({"dcr_id": 5})), "config.dcr_id"),
            (li(json!({"stream": "AuditRelay_CL"})), "config.stream"),
            (li(json!({"stream": "Custom-"})), "config.stream"),
            (li(json!({"stream": "Custom-a/b"})), "config.stream"),
            (li(json!({"azure_tenant_id": ""})), "config.azure_tenant_id"),
            (li(json!({"azure_tenant_id": "a/b"})), "config.azure_tenant_id"),
            (li(json!({"client_id": "a b"})), "config.client_id"),
            (li(json!({"client_id": null})), "config.client_id"),
            (
                li(json!({"authority_url": "https://login.example.com/?x"})),
                "config.authority_url",
            ),
            (li(json!({"scope": ""})), "config.scope"),
            (li(json!({"scope": "a\nb"})), "config.scope"),
            (li(json!({"workspace_id": "x"})), "config.workspace_id"),
            (li(json!({"bogus": 1})), "config.bogus"),
            (li(json!({"vendor": ""})), "config.vendor"),
        ] {
            assert_eq!(err(config.clone()).field, field, "{config}");
        }
        let e = err(li(json!({"log_type": "X"})));
        assert!(e.message.contains("only when `mode` is `data_collector`"), "{e}");
        // Format options are accepted.
        assert!(parse_config(&li(json!({"vendor": "Acme", "ocsf_version": "1.8.0"}))).is_ok());
    }

    #[test]
    fn data_collector_fields() {
        let base = json!({"mode": "data_collector", "workspace_id": "b1d3c6a0-1234-4cde-8f00-0123456789ab"});
        let parsed = parse_config(&base).unwrap();
        let ModeConfig::DataCollector(c) = parsed.mode else {
            panic!("mode")
        };
        assert_eq!(
            c.url.as_str(),
            "https://b1d3c6a0-1234-4cde-8f00-0123456789ab.ods.opinsights.azure.com/api/logs?api-version=2016-04-01"
        );
        assert!(!c.url_given);
        assert_eq!(c.log_type, "AuditRelay");

        let with = |extra: Value| {
            let mut c = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let parsed = parse_config(&with(
            json!({"url": "http://127.0.0.1:9/api/logs?x=1", "log_type": "Audit_2"}),
        ))
        .unwrap();
        let ModeConfig::DataCollector(c) = parsed.mode else {
            panic!("mode")
        };
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9/api/logs?x=1");
        assert!(c.url_given);
        assert_eq!(c.log_type, "Audit_2");

        for (config, field) in [
            (json!({"mode": "data_collector"}), "config.workspace_id"),
            (with(json!({"workspace_id": "a.b"})), "config.workspace_id"),
            (with(json!({"url": 1})), "config.url"),
            (with(json!({"url": "https://u:p@x.example.com/"})), "config.url"),
            (with(json!({"log_type": "a-b"})), "config.log_type"),
            (with(json!({"log_type": "x".repeat(101)})), "config.log_type"),
            (with(json!({"endpoint": "https://x"})), "config.endpoint"),
            (with(json!({"other": 1})), "config.other"),
        ] {
            assert_eq!(err(config.clone()).field, field, "{config}");
        }
        assert!(parse_config(&with(json!({"log_type": "x".repeat(100)}))).is_ok());
    }

    #[test]
    fn credentials_per_mode() {
        let li_mode = parse_config(&li(json!({}))).unwrap().mode;
        let dc_mode = parse_config(&json!({"mode": "data_collector", "workspace_id": "w"}))
            .unwrap()
            .mode;
        let field = |mode: &ModeConfig, s: Secrets| parse_credential(mode, &s).unwrap_err().field;
        assert_eq!(field(&li_mode, secrets(&[])), "secrets.client_secret");
        assert_eq!(
            field(&li_mode, secrets(&[("client_secret", "")])),
            "secrets.client_secret"
        );
        assert_eq!(
            field(&li_mode, secrets(&[("client_secret", "s"), ("shared_key", "k")])),
            "secrets.shared_key"
        );
        assert_eq!(
            field(
                &li_mode,
                secrets(&[("client_secret", "s"), ("previous_client_secret", "k")])
            ),
            "secrets.previous_client_secret"
        );
        assert!(matches!(
            parse_credential(&li_mode, &secrets(&[("client_secret", "s3cr3t")])).unwrap(),
            Credential::ClientSecret(_)
        ));
        assert_eq!(field(&dc_mode, secrets(&[])), "secrets.shared_key");
        assert_eq!(
            field(&dc_mode, secrets(&[("shared_key", "MDEy"), ("client_secret", "s")])),
            "secrets.client_secret"
        );
        let e = parse_credential(&dc_mode, &secrets(&[("shared_key", "not base64!hunter2")])).unwrap_err();
        assert_eq!(e.field, "secrets.shared_key");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let Credential::SharedKey(key) = parse_credential(
            &dc_mode,
            &secrets(&[("shared_key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")]),
        )
        .unwrap() else {
            panic!("shared key")
        };
        assert_eq!(key.expose(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{key:?}"), "<redacted>");
        let debug = format!(
            "{:?}",
            parse_credential(&li_mode, &secrets(&[("client_secret", "s3cr3t")])).unwrap()
        );
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }
}
