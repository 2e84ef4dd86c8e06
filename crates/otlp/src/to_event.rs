//! One OTLP `LogRecord` → one auditrelay event (api.md "OTLP logs in", the mapping table).
//!
//! The result is the JSON object `POST /v1/events` takes, validated by the same code
//! ([`auditrelay_core::parse_request`]), so an OTLP record obeys every rule a native event does.
//! Nothing is dropped: what has no event field lands under `metadata.otel`. A mapped attribute
//! is taken out of `attributes` only when its value fits the field (an `event.outcome` of
//! `"maybe"` stays an attribute rather than failing the record).

use auditrelay_core::{parse_request, BodyFormat, IngestError, Limits, ParsedEvent};
use serde_json::{Map, Value};

use crate::any_value::{as_str, attributes_to_json, to_json};
use crate::{InstrumentationScope, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs};

/// The type of a record with neither `event_name` nor an `event.name` attribute.
pub const DEFAULT_TYPE: &str = "otel.log";

/// Attributes that become event fields, with the field (under `actor` for the `actor.*` ones).
/// `user.id` is `actor.id` only without `enduser.id`.
pub(crate) const ACTOR_ATTRIBUTES: &[(&str, &str)] = &[
    ("enduser.id", "id"),
    ("user.id", "id"),
    ("user.name", "name"),
    ("user.email", "email"),
    ("client.address", "ip_address"),
    ("user_agent.original", "user_agent"),
];
/// Resource attributes that become `source`.
pub(crate) const SOURCE_ATTRIBUTES: &[(&str, &str)] = &[
    ("service.name", "service"),
    ("service.version", "version"),
    ("service.instance.id", "instance"),
];
/// The longest string an event's short fields take (core's validation says the same).
const MAX_SHORT: usize = 1024;

/// What every record of one `ResourceLogs` shares: `source` and the rest of the resource.
#[derive(Debug, Clone, Default)]
pub struct ResourcePart {
    source: Map<String, Value>,
    otel: Map<String, Value>,
}

impl ResourcePart {
    pub fn new(resource: Option<&Resource>, schema_url: &str) -> ResourcePart {
        let mut part = ResourcePart::default();
        let Some(resource) = resource else {
            if !schema_url.is_empty() {
                part.otel.insert("schema_url".into(), schema_url.into());
            }
            return part;
        };
        let mut rest: Vec<&KeyValue> = Vec::with_capacity(resource.attributes.len());
        for kv in &resource.attributes {
            let field = SOURCE_ATTRIBUTES.iter().find(|(k, _)| *k == kv.key).map(|(_, f)| *f);
            match (field, kv.value.as_ref().and_then(as_str)) {
                (Some(field), Some(s)) if s.len() <= MAX_SHORT && !part.source.contains_key(field) => {
                    part.source.insert(field.into(), s.into());
                }
                _ => rest.push(kv),
            }
        }
        let rest: Vec<KeyValue> = rest.into_iter().cloned().collect();
        if !rest.is_empty() {
            part.otel
                .insert("attributes".into(), Value::Object(attributes_to_json(&rest)));
        }
        if resource.dropped_attributes_count > 0 {
            part.otel.insert(
                "dropped_attributes_count".into(),
                resource.dropped_attributes_count.into(),
            );
        }
        if !schema_url.is_empty() {
            part.otel.insert("schema_url".into(), schema_url.into());
        }
        part
    }
}

/// What every record of one `ScopeLogs` shares: `metadata.otel.scope`.
#[derive(Debug, Clone, Default)]
pub struct ScopePart {
    otel: Map<String, Value>,
}

impl ScopePart {
    pub fn new(scope: Option<&InstrumentationScope>, schema_url: &str) -> ScopePart {
        let mut otel = Map::new();
        if let Some(scope) = scope {
            if !scope.name.is_empty() {
                otel.insert("name".into(), scope.name.clone().into());
            }
            if !scope.version.is_empty() {
                otel.insert("version".into(), scope.version.clone().into());
            }
            if !scope.attributes.is_empty() {
                otel.insert(
                    "attributes".into(),
                    Value::Object(attributes_to_json(&scope.attributes)),
                );
            }
            if scope.dropped_attributes_count > 0 {
                otel.insert("dropped_attributes_count".into(), scope.dropped_attributes_count.into());
            }
        }
        if !schema_url.is_empty() {
            otel.insert("schema_url".into(), schema_url.into());
        }
        ScopePart { otel }
    }
}

/// `severity_number` 1–24 scaled to 0–10: `round((n − 1) × 10 / 23)`; unset or out of range → 5.
pub fn severity(number: i32) -> u64 {
    match number {
        1..=24 => (((number - 1) as f64) * 10.0 / 23.0).round() as u64,
        _ => 5,
    }
}

/// The event's RFC 3339 time for Unix nanoseconds (0 = unknown → `None`).
pub fn rfc3339(nanos: u64) -> Option<String> {
    if nanos == 0 {
        return None;
    }
    let ts = jiff::Timestamp::from_nanosecond(i128::from(nanos)).ok()?;
    Some(auditrelay_core::time::format_timestamp(ts))
}

/// Takes the first attribute named `key` whose value is a string that `fits`, out of `attrs`.
fn take_string(attrs: &mut Vec<KeyValue>, key: &str, fits: impl Fn(&str) -> bool) -> Option<String> {
    let i = attrs
        .iter()
        .position(|kv| kv.key == key && kv.value.as_ref().and_then(as_str).is_some_and(&fits))?;
    let kv = attrs.remove(i);
    kv.value.as_ref().and_then(as_str).map(str::to_owned)
}

/// The event (as `POST /v1/events` JSON) for one record. Validation is [`to_parsed`]'s.
pub fn to_event_json(resource: &ResourcePart, scope: &ScopePart, record: &LogRecord) -> Value {
    let mut attrs = record.attributes.clone();
    let mut event = Map::new();
    let mut otel = Map::new();

    // type: event_name, else attribute event.name, else otel.log; lowercased.
    let event_type = if !record.event_name.is_empty() {
        let lower = record.event_name.to_lowercase();
        if lower != record.event_name {
            otel.insert("event_name".into(), record.event_name.clone().into());
        }
        lower
    } else if let Some(name) = take_string(&mut attrs, "event.name", |s| s == s.to_lowercase()) {
        name
    } else {
        // A mixed-case `event.name` attribute names the type but stays an attribute, so the
        // original spelling survives.
        attrs
            .iter()
            .find(|kv| kv.key == "event.name")
            .and_then(|kv| kv.value.as_ref().and_then(as_str))
            .map(str::to_lowercase)
            .unwrap_or_else(|| DEFAULT_TYPE.to_owned())
    };
    event.insert("type".into(), event_type.into());

    if let Some(id) = take_string(&mut attrs, "event.id", auditrelay_core::ids::is_valid_client_event_id) {
        event.insert("id".into(), id.into());
    }
    if let Some(at) = rfc3339(record.time_unix_nano).or_else(|| rfc3339(record.observed_time_unix_nano)) {
        event.insert("occurred_at".into(), at.into());
    }
    event.insert("severity".into(), severity(record.severity_number).into());
    if let Some(outcome) = take_string(&mut attrs, "event.outcome", |s| {
        matches!(s, "success" | "failure" | "unknown")
    }) {
        event.insert("outcome".into(), outcome.into());
    }
    if let Some(action) = take_string(&mut attrs, "event.action", |s| s.len() <= MAX_SHORT) {
        event.insert("action".into(), action.into());
    }

    let mut actor = Map::new();
    for (key, field) in ACTOR_ATTRIBUTES {
        if actor.contains_key(*field) {
            continue;
        }
        let fits = |s: &str| s.len() <= MAX_SHORT && (*field != "ip_address" || s.parse::<std::net::IpAddr>().is_ok());
        if let Some(v) = take_string(&mut attrs, key, fits) {
            actor.insert((*field).into(), v.into());
        }
    }
    if !actor.is_empty() {
        event.insert("actor".into(), Value::Object(actor));
    }
    if !resource.source.is_empty() {
        event.insert("source".into(), Value::Object(resource.source.clone()));
    }

    // metadata.otel: everything else.
    if let Some(body) = &record.body {
        otel.insert("body".into(), to_json(body));
    }
    if !attrs.is_empty() {
        otel.insert("attributes".into(), Value::Object(attributes_to_json(&attrs)));
    }
    if !resource.otel.is_empty() {
        otel.insert("resource".into(), Value::Object(resource.otel.clone()));
    }
    if !scope.otel.is_empty() {
        otel.insert("scope".into(), Value::Object(scope.otel.clone()));
    }
    if !record.trace_id.is_empty() {
        otel.insert("trace_id".into(), hex::encode(&record.trace_id).into());
    }
    if !record.span_id.is_empty() {
        otel.insert("span_id".into(), hex::encode(&record.span_id).into());
    }
    if record.flags != 0 {
        otel.insert("flags".into(), record.flags.into());
    }
    if !record.severity_text.is_empty() {
        otel.insert("severity_text".into(), record.severity_text.clone().into());
    }
    if record.severity_number != 0 {
        // The scaled severity loses the exact level; keep it for the way back out.
        otel.insert("severity_number".into(), record.severity_number.into());
    }
    if record.time_unix_nano == 0 && record.observed_time_unix_nano != 0 {
        otel.insert("time_unix_nano".into(), "0".into());
    }
    if record.observed_time_unix_nano != 0 && record.observed_time_unix_nano != record.time_unix_nano {
        otel.insert(
            "observed_time_unix_nano".into(),
            record.observed_time_unix_nano.to_string().into(),
        );
    }
    if record.dropped_attributes_count > 0 {
        otel.insert(
            "dropped_attributes_count".into(),
            record.dropped_attributes_count.into(),
        );
    }
    if !otel.is_empty() {
        let mut metadata = Map::new();
        metadata.insert("otel".into(), Value::Object(otel));
        event.insert("metadata".into(), Value::Object(metadata));
    }
    Value::Object(event)
}

/// One record, mapped and validated like a `POST /v1/events` event. `Err` is why this record
/// cannot become an event (it is counted in `partial_success`, the others go on).
pub fn to_parsed(
    resource: &ResourcePart,
    scope: &ScopePart,
    record: &LogRecord,
    limits: &Limits,
) -> Result<ParsedEvent, String> {
    let json = to_event_json(resource, scope, record).to_string();
    // One event per parse: the request limits are the caller's, the event's apply here.
    let one = Limits {
        max_request_bytes: limits.max_event_bytes.max(json.len()),
        max_request_events: 1,
        ..*limits
    };
    match parse_request(json.as_bytes(), BodyFormat::Json, &one) {
        Ok(mut events) if events.len() == 1 => Ok(events.remove(0)),
        Ok(_) => Err("did not map to exactly one event".into()),
        Err(IngestError::InvalidEvent { field, message, .. }) => Err(format!("{field} {message}")),
        Err(IngestError::EventTooLarge { size, limit, .. }) => {
            Err(format!("the mapped event is {size} bytes, over the {limit}-byte limit"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Every record of a request in order, with the resource and scope it belongs to.
pub fn records(resource_logs: &[ResourceLogs]) -> impl Iterator<Item = (&ResourceLogs, &ScopeLogs, &LogRecord)> {
    resource_logs.iter().flat_map(|rl| {
        rl.scope_logs
            .iter()
            .flat_map(move |sl| sl.log_records.iter().map(move |r| (rl, sl, r)))
    })
}

/// The number of records in a request (for the limit, before any mapping).
pub fn count(resource_logs: &[ResourceLogs]) -> usize {
    resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

/// A request's records mapped: each `Ok` event, or the reason a record was refused, in order.
pub fn map_request(resource_logs: &[ResourceLogs], limits: &Limits) -> Vec<Result<ParsedEvent, String>> {
    let mut out = Vec::with_capacity(count(resource_logs));
    for rl in resource_logs {
        let resource = ResourcePart::new(rl.resource.as_ref(), &rl.schema_url);
        for sl in &rl.scope_logs {
            let scope = ScopePart::new(sl.scope.as_ref(), &sl.schema_url);
            for record in &sl.log_records {
                out.push(to_parsed(&resource, &scope, record, limits));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::any_value::{from_json, key_value, string};
    use serde_json::json;

    fn attrs(v: Value) -> Vec<KeyValue> {
        crate::any_value::attributes_from_json(v.as_object().unwrap())
    }

    #[test]
    fn severity_scale() {
        assert_eq!(
            [0, 1, 5, 9, 13, 17, 21, 24, 25, -1].map(severity),
            [5, 0, 2, 3, 5, 7, 9, 10, 5, 5]
        );
    }

    #[test]
    fn the_mapping_table() {
        let resource = Resource {
            attributes: attrs(
                json!({"service.name": "billing", "service.version": "1.2", "service.instance.id": "i-1", "host.name": "h1"}),
            ),
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "audit".into(),
            version: "0.1".into(),
            ..Default::default()
        };
        let record = LogRecord {
            time_unix_nano: 1_780_000_000_123_456_789,
            observed_time_unix_nano: 1_780_000_001_000_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            event_name: "Auth.Login".into(),
            body: Some(string("user logged in")),
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            attributes: attrs(json!({
                "event.id": "evt-1", "event.outcome": "failure", "event.action": "login",
                "enduser.id": "u1", "user.id": "u2", "user.name": "Ann", "user.email": "a@x.example",
                "client.address": "203.0.113.4", "user_agent.original": "curl/8", "http.status": 401,
            })),
            ..Default::default()
        };
        let event = to_event_json(
            &ResourcePart::new(Some(&resource), ""),
            &ScopePart::new(Some(&scope), ""),
            &record,
        );
        assert_eq!(
            event,
            json!({
                "type": "auth.login", "id": "evt-1", "occurred_at": "2026-05-28T20:26:40.123456789Z",
                "severity": 7, "outcome": "failure", "action": "login",
                "actor": {"id": "u1", "name": "Ann", "email": "a@x.example", "ip_address": "203.0.113.4", "user_agent": "curl/8"},
                "source": {"service": "billing", "version": "1.2", "instance": "i-1"},
                "metadata": {"otel": {
                    "event_name": "Auth.Login",
                    "body": "user logged in",
                    "attributes": {"user.id": "u2", "http.status": 401},
                    "resource": {"attributes": {"host.name": "h1"}},
                    "scope": {"name": "audit", "version": "0.1"},
                    "trace_id": "ab".repeat(16), "span_id": "cd".repeat(8),
                    "severity_text": "ERROR", "severity_number": 17,
                    "observed_time_unix_nano": "1780000001000000000",
                }}
            })
        );
        let parsed = to_parsed(
            &ResourcePart::new(Some(&resource), ""),
            &ScopePart::new(Some(&scope), ""),
            &record,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(parsed.event_type, "auth.login");
        assert_eq!(parsed.client_id.as_deref(), Some("evt-1"));
    }

    #[test]
    fn defaults_and_what_does_not_fit_stays_an_attribute() {
        let record = LogRecord {
            attributes: attrs(json!({"event.outcome": "maybe", "client.address": "not-an-ip", "event.name": "A.B"})),
            body: Some(from_json(&json!({"k": [1, 2]}))),
            ..Default::default()
        };
        let event = to_event_json(&ResourcePart::default(), &ScopePart::default(), &record);
        assert_eq!(event["type"], "a.b");
        assert_eq!(event["severity"], 5);
        assert!(event.get("outcome").is_none() && event.get("actor").is_none() && event.get("occurred_at").is_none());
        assert_eq!(
            event["metadata"]["otel"]["attributes"],
            json!({"event.outcome": "maybe", "client.address": "not-an-ip", "event.name": "A.B"})
        );
        assert_eq!(event["metadata"]["otel"]["body"], json!({"k": [1, 2]}));
        let plain = to_event_json(&ResourcePart::default(), &ScopePart::default(), &LogRecord::default());
        assert_eq!(plain, json!({"type": "otel.log", "severity": 5}));
        let observed = LogRecord {
            observed_time_unix_nano: 1_780_000_000_000_000_000,
            ..Default::default()
        };
        let e = to_event_json(&ResourcePart::default(), &ScopePart::default(), &observed);
        assert_eq!(e["occurred_at"], "2026-05-28T20:26:40.000Z");
    }

    #[test]
    fn invalid_records_are_refused_with_a_reason() {
        let bad_name = LogRecord {
            event_name: "has spaces!".into(),
            ..Default::default()
        };
        let err = to_parsed(
            &ResourcePart::default(),
            &ScopePart::default(),
            &bad_name,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.starts_with("type "), "{err}");
        let huge = LogRecord {
            attributes: vec![key_value("blob", string(&"x".repeat(70_000)))],
            ..Default::default()
        };
        let err = to_parsed(
            &ResourcePart::default(),
            &ScopePart::default(),
            &huge,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.contains("limit"), "{err}");
    }
}
