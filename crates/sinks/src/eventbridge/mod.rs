//! The `eventbridge` sink: each event becomes one EventBridge event (`PutEvents`, ≤ 10 entries
//! and 256 KiB per call) on a bus, its `detail` the encoded event (a JSON object), its
//! `detail-type` rendered from a template (default `{type}`) and its `source` configured
//! (default `auditrelay`). Only the entries that failed are retried (`aws::records`).

use auditrelay_core::StoredEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aws::records::{record_kind_entry_points, Limits, RecordApi, RecordKind, RecordSinkParts};
use crate::aws::{self, aws_config, AwsSettings};
use crate::template::Template;
use crate::ConfigError;

/// The source when none is configured.
pub const DEFAULT_SOURCE: &str = "auditrelay";
/// The detail-type template when none is configured.
pub const DEFAULT_DETAIL_TYPE: &str = "{type}";
/// EventBridge caps `DetailType` at 128 characters.
const MAX_DETAIL_TYPE: usize = 128;

aws_config! {
    /// `config` of an `eventbridge` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "eventbridge config")]
    pub struct EventBridgeConfig {
        /// The event bus: its name or ARN (default: the account's `default` bus).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 1600), pattern(r"^[A-Za-z0-9/._:-]+$"), extend("default" = "default"))]
        pub event_bus: Option<String>,
        /// The events' `source` (default `auditrelay`); rules match on it. Not `aws.*`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9._-]+$"), extend("not" = {"type": "string", "pattern": "^aws\\."}, "default" = DEFAULT_SOURCE))]
        pub source: Option<String>,
        /// The events' `detail-type`: text with `{type}` (the event's type) and `{tenant}`
        /// placeholders (default `{type}`); at most 128 characters once rendered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 128), pattern(r"^([^{}]|\{type\}|\{tenant\})+$"), extend("default" = DEFAULT_DETAIL_TYPE))]
        pub detail_type: Option<String>,
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct EventBridgeSettings {
    pub event_bus: String,
    pub source: String,
    pub detail_type: Template,
    pub aws: AwsSettings,
    pub options: auditrelay_format::FormatOptions,
}

impl EventBridgeConfig {
    pub(crate) fn resolve(&self) -> Result<EventBridgeSettings, ConfigError> {
        let bus = self.event_bus.as_deref().unwrap_or("default");
        if bus.is_empty()
            || bus.len() > 1600
            || !bus.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._:-".contains(&b))
        {
            return Err(ConfigError::new(
                "config.event_bus",
                "must be an event bus name or ARN (letters, digits, `/._:-`)",
            ));
        }
        let source = self.source.as_deref().unwrap_or(DEFAULT_SOURCE);
        if source.is_empty()
            || source.len() > 256
            || source.starts_with("aws.")
            || !source.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(ConfigError::new(
                "config.source",
                "must be 1-256 letters, digits, `.`, `_` and `-`, not starting with `aws.`",
            ));
        }
        let raw = self.detail_type.as_deref().unwrap_or(DEFAULT_DETAIL_TYPE);
        if raw.is_empty() || raw.chars().count() > MAX_DETAIL_TYPE {
            return Err(ConfigError::new("config.detail_type", "must be 1-128 characters"));
        }
        let detail_type = Template::parse_strict(raw, true).map_err(|m| ConfigError::new("config.detail_type", m))?;
        Ok(EventBridgeSettings {
            event_bus: bus.to_owned(),
            source: source.to_owned(),
            detail_type,
            aws: self.aws_fields().resolve("events")?,
            options: self.format_options()?,
        })
    }
}

/// `PutEvents`.
pub(crate) struct PutEvents {
    pub event_bus: String,
    pub source: String,
    pub detail_type: Template,
}

impl RecordApi for PutEvents {
    const TARGET: &'static str = "AWSEvents.PutEvents";
    const RESULTS: &'static str = "Entries";
    const LIMITS: Limits = Limits {
        max_records: 10,
        max_bytes: 256 * 1024,
        max_record_bytes: 256 * 1024,
    };

    fn entry(&self, tenant: &str, event: &StoredEvent, record: Vec<u8>) -> Result<(Value, usize), String> {
        let detail = String::from_utf8(record).map_err(|_| format!("event {} is not UTF-8", event.offset))?;
        if !detail.trim_start().starts_with('{') {
            return Err(format!(
                "event {}: an EventBridge detail must be a JSON object",
                event.offset
            ));
        }
        let mut detail_type = self.detail_type.render(&event.event_type, tenant);
        if detail_type.chars().count() > MAX_DETAIL_TYPE {
            detail_type = detail_type.chars().take(MAX_DETAIL_TYPE).collect();
        }
        // AWS's entry size: Source, DetailType and Detail in UTF-8 (no Time, no Resources).
        let size = self.source.len() + detail_type.len() + detail.len();
        Ok((
            json!({
                "Source": self.source,
                "DetailType": detail_type,
                "Detail": detail,
                "EventBusName": self.event_bus,
            }),
            size,
        ))
    }

    fn body(&self, entries: Vec<Value>) -> Value {
        json!({"Entries": entries})
    }
}

fn parse(config: &Value) -> Result<EventBridgeSettings, ConfigError> {
    crate::typed::parse_config::<EventBridgeConfig>(config)?.resolve()
}

impl RecordKind for EventBridgeConfig {
    type Api = PutEvents;

    fn sink_parts(config: &Value) -> Result<RecordSinkParts<PutEvents>, ConfigError> {
        let bus = parse(config)?;
        Ok(RecordSinkParts {
            what: format!("event bus {}", bus.event_bus),
            api: PutEvents {
                event_bus: bus.event_bus,
                source: bus.source,
                detail_type: bus.detail_type,
            },
            aws: bus.aws,
            options: bus.options,
        })
    }
}

record_kind_entry_points!(EventBridgeConfig);

impl crate::KindConfig for EventBridgeConfig {
    // `detail` must be a JSON object.
    const SPEC: crate::KindSpec = aws::kind_spec("eventbridge", &["json", "ocsf", "raw"]);

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_entries() {
        let c = parse(&json!({"region": "eu-west-1"})).unwrap();
        assert_eq!((c.event_bus.as_str(), c.source.as_str()), ("default", "auditrelay"));
        assert_eq!(c.aws.url.as_str(), "https://events.eu-west-1.amazonaws.com/");
        let e = |v: Value| parse(&v).unwrap_err().field;
        assert_eq!(e(json!({"region": "r", "source": "aws.x"})), "config.source");
        assert_eq!(e(json!({"region": "r", "detail_type": "{host}"})), "config.detail_type");
        assert_eq!(e(json!({"region": "r", "event_bus": "a b"})), "config.event_bus");
        let c = parse(&json!({"region": "r", "detail_type": "audit:{tenant}:{type}", "event_bus": "audit"})).unwrap();
        let api = PutEvents {
            event_bus: c.event_bus,
            source: c.source,
            detail_type: c.detail_type,
        };
        let ev = StoredEvent {
            tenant_id: "acme".into(),
            offset: 1,
            id: "e".into(),
            event_type: "user.login".into(),
            body: "{}".into(),
            chain: None,
        };
        let (entry, size) = api.entry("acme", &ev, b"{\"a\":1}".to_vec()).unwrap();
        assert_eq!(
            entry,
            json!({"Source": "auditrelay", "DetailType": "audit:acme:user.login", "Detail": "{\"a\":1}", "EventBusName": "audit"})
        );
        assert_eq!(size, "auditrelay".len() + "audit:acme:user.login".len() + 7);
        assert!(api.entry("acme", &ev, b"CEF:0|x".to_vec()).is_err());
    }
}
