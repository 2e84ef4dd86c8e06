//! Stored events → one OTLP `ExportLogsServiceRequest`: the inverse of [`crate::to_event`], so
//! OTLP → auditrelay → OTLP keeps the event name, attributes, resource and scope. Records are
//! grouped by resource, then by scope, in event order.
//!
//! Each record also carries `auditrelay.tenant_id`, `auditrelay.offset` and (when the event is
//! in the log) `auditrelay.chain`, and `event.id`. An event that did not come from OTLP has no
//! `metadata.otel`: its body is then the whole event as a map, so nothing is lost either way.

use auditrelay_core::StoredEvent;
use serde_json::{Map, Value};

use crate::any_value::{attributes_from_json, from_json, key_value, string};
use crate::to_event::{ACTOR_ATTRIBUTES, SOURCE_ATTRIBUTES};
use crate::{
    AnyValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs,
};

/// The scope of events that did not come from OTLP.
pub const DEFAULT_SCOPE: &str = "auditrelay";

/// `severity` 0–10 back to an OTLP `severity_number` (1–24): the inverse of the ingest scale.
pub fn severity_number(severity: u64) -> i32 {
    ((severity.min(10) as f64) * 23.0 / 10.0).round() as i32 + 1
}

/// Unix nanoseconds of an RFC 3339 time (0 when absent or unreadable: OTLP's "unknown").
fn nanos(at: Option<&str>) -> u64 {
    at.and_then(auditrelay_core::time::parse_rfc3339)
        .and_then(|ts| u64::try_from(ts.as_nanosecond()).ok())
        .unwrap_or(0)
}

fn int(v: i64) -> AnyValue {
    AnyValue {
        value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(v)),
    }
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The resource and scope a record belongs to, kept as JSON so records can be grouped by them.
struct Placed {
    resource: Value,
    scope: Value,
    record: LogRecord,
}

/// One event as a record, with its resource and scope.
fn place(event: &StoredEvent) -> Placed {
    // A stored body is always a JSON object (it passed validation); an unreadable one still
    // becomes a record, with the raw text as its body, rather than disappearing.
    let parsed: Map<String, Value> = serde_json::from_str(&event.body).unwrap_or_else(|_| {
        let mut m = Map::new();
        m.insert("body".into(), Value::String(event.body.clone()));
        m
    });
    let otel = obj(parsed.get("metadata")).and_then(|m| obj(m.get("otel")));
    let get = |k: &str| parsed.get(k).and_then(Value::as_str);

    let mut record = LogRecord::default();
    let time_unset = otel.and_then(|o| u64_of(o.get("time_unix_nano"))) == Some(0);
    record.time_unix_nano = if time_unset { 0 } else { nanos(get("occurred_at")) };
    record.observed_time_unix_nano = otel
        .and_then(|o| u64_of(o.get("observed_time_unix_nano")))
        .unwrap_or_else(|| {
            if time_unset {
                nanos(get("occurred_at"))
            } else {
                record.time_unix_nano
            }
        });
    let severity = parsed.get("severity").and_then(Value::as_u64).unwrap_or(5);
    record.severity_number = otel
        .and_then(|o| o.get("severity_number"))
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or_else(|| severity_number(severity));
    record.event_name = otel
        .and_then(|o| o.get("event_name"))
        .and_then(Value::as_str)
        .unwrap_or(&event.event_type)
        .to_owned();

    // Attributes: the ones the event fields came from, the rest, then auditrelay's own.
    let mut attributes: Vec<KeyValue> = vec![key_value("event.id", string(&event.id))];
    for (field, key) in [("outcome", "event.outcome"), ("action", "event.action")] {
        if let Some(v) = get(field) {
            // Every event has an outcome (`unknown` by default); only a known one is said.
            if !(field == "outcome" && v == "unknown" && otel.is_some()) {
                attributes.push(key_value(key, string(v)));
            }
        }
    }
    if let Some(actor) = obj(parsed.get("actor")) {
        let mut id_done = false;
        for (key, field) in ACTOR_ATTRIBUTES {
            if *field == "id" {
                if id_done {
                    continue;
                }
                id_done = true;
            }
            if let Some(v) = actor.get(*field).and_then(Value::as_str) {
                attributes.push(key_value(key, string(v)));
            }
        }
    }
    if let Some(rest) = otel.and_then(|o| obj(o.get("attributes"))) {
        attributes.extend(attributes_from_json(rest));
    }
    attributes.push(key_value("auditrelay.tenant_id", string(&event.tenant_id)));
    attributes.push(key_value(
        "auditrelay.offset",
        int(i64::try_from(event.offset).unwrap_or(i64::MAX)),
    ));
    if let Some(chain) = event.chain_hex() {
        attributes.push(key_value("auditrelay.chain", string(&chain)));
    }
    record.attributes = attributes;

    match otel {
        Some(o) => {
            record.body = o.get("body").map(from_json);
            record.severity_text = o.get("severity_text").and_then(Value::as_str).unwrap_or("").to_owned();
            record.trace_id = o
                .get("trace_id")
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .unwrap_or_default();
            record.span_id = o
                .get("span_id")
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .unwrap_or_default();
            record.flags = o
                .get("flags")
                .and_then(Value::as_u64)
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(0);
            record.dropped_attributes_count = o
                .get("dropped_attributes_count")
                .and_then(Value::as_u64)
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(0);
        }
        None => {
            // A native event: the whole event is the body, so nothing is lost.
            let mut whole = parsed.clone();
            whole.insert("offset".into(), event.offset.into());
            record.body = Some(from_json(&Value::Object(whole)));
        }
    }

    // Resource: `source` back to service.*, then the rest of the original resource.
    let mut resource = Map::new();
    let mut resource_attrs = Map::new();
    if let Some(source) = obj(parsed.get("source")) {
        for (key, field) in SOURCE_ATTRIBUTES {
            if let Some(v) = source.get(*field) {
                resource_attrs.insert((*key).into(), v.clone());
            }
        }
    }
    let scope = match otel {
        Some(o) => {
            if let Some(r) = obj(o.get("resource")) {
                for (k, v) in r {
                    if k == "attributes" {
                        for (ak, av) in v.as_object().into_iter().flatten() {
                            resource_attrs.insert(ak.clone(), av.clone());
                        }
                    } else {
                        resource.insert(k.clone(), v.clone());
                    }
                }
            }
            o.get("scope").cloned().unwrap_or(Value::Null)
        }
        None => serde_json::json!({"name": DEFAULT_SCOPE}),
    };
    resource.insert("attributes".into(), Value::Object(resource_attrs));
    Placed {
        resource: Value::Object(resource),
        scope,
        record,
    }
}

fn resource_of(v: &Value) -> Resource {
    Resource {
        attributes: obj(v.get("attributes")).map(attributes_from_json).unwrap_or_default(),
        dropped_attributes_count: u64_of(v.get("dropped_attributes_count"))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        ..Default::default()
    }
}

fn scope_of(v: &Value) -> Option<InstrumentationScope> {
    let m = v.as_object()?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Some(InstrumentationScope {
        name: s("name"),
        version: s("version"),
        attributes: obj(m.get("attributes")).map(attributes_from_json).unwrap_or_default(),
        dropped_attributes_count: u64_of(m.get("dropped_attributes_count"))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

fn schema_url(v: &Value) -> String {
    v.get("schema_url").and_then(Value::as_str).unwrap_or("").to_owned()
}

/// One resource's scopes, each with its records, in first-seen order.
type ScopeGroups = Vec<(Value, Vec<LogRecord>)>;

/// The request for `events` (one tenant's, in offset order): one `ResourceLogs` per distinct
/// resource, one `ScopeLogs` per distinct scope within it, records in event order within each.
pub fn to_request(events: &[StoredEvent]) -> ExportLogsServiceRequest {
    let mut groups: Vec<(Value, ScopeGroups)> = Vec::new();
    for event in events {
        let Placed {
            resource,
            scope,
            record,
        } = place(event);
        let gi = match groups.iter().position(|(r, _)| *r == resource) {
            Some(i) => i,
            None => {
                groups.push((resource, Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[gi].1;
        match scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, records)) => records.push(record),
            None => scopes.push((scope, vec![record])),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(resource, scopes)| ResourceLogs {
                resource: Some(resource_of(&resource)),
                schema_url: schema_url(&resource),
                scope_logs: scopes
                    .into_iter()
                    .map(|(scope, log_records)| ScopeLogs {
                        scope: scope_of(&scope),
                        schema_url: schema_url(&scope),
                        log_records,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::any_value::to_json;
    use crate::to_event::{map_request, records};
    use auditrelay_core::Limits;
    use serde_json::json;

    fn attrs(v: Value) -> Vec<KeyValue> {
        attributes_from_json(v.as_object().unwrap())
    }

    fn stored(parsed: auditrelay_core::ParsedEvent, offset: u64) -> StoredEvent {
        let ne = parsed.into_new_event("acme".into(), "2026-06-01T10:00:00.000001Z");
        StoredEvent {
            tenant_id: ne.tenant_id,
            offset,
            id: ne.id,
            event_type: ne.event_type,
            body: ne.body,
            chain: Some([7; 32]),
        }
    }

    fn attr(r: &LogRecord, key: &str) -> Option<Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(to_json)
    }

    #[test]
    fn otlp_in_and_out_keeps_name_attributes_resource_and_scope() {
        let resource = |svc: &str| Resource {
            attributes: attrs(json!({"service.name": svc, "host.name": "h1", "k8s.pod.uid": "p"})),
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "audit".into(),
            version: "2".into(),
            attributes: attrs(json!({"lib": true})),
            ..Default::default()
        };
        let record = |name: &str, id: &str| LogRecord {
            time_unix_nano: 1_780_000_000_123_456_789,
            observed_time_unix_nano: 1_780_000_000_123_456_789,
            severity_number: 9,
            severity_text: "INFO".into(),
            event_name: name.into(),
            body: Some(crate::any_value::from_json(&json!({"msg": "hi", "n": 3}))),
            attributes: attrs(
                json!({"event.id": id, "enduser.id": "u1", "client.address": "203.0.113.4", "custom": [1, 2]}),
            ),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            flags: 1,
            ..Default::default()
        };
        let input = ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    resource: Some(resource("billing")),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope.clone()),
                        log_records: vec![record("Auth.Login", "e1"), record("auth.logout", "e2")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceLogs {
                    resource: Some(resource("shipping")),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope.clone()),
                        log_records: vec![record("order.ship", "e3")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let events: Vec<StoredEvent> = map_request(&input.resource_logs, &Limits::default())
            .into_iter()
            .enumerate()
            .map(|(i, r)| stored(r.unwrap(), i as u64 + 1))
            .collect();
        let output = to_request(&events);
        assert_eq!(output.resource_logs.len(), 2);
        let before: Vec<_> = records(&input.resource_logs).collect();
        let after: Vec<_> = records(&output.resource_logs).collect();
        assert_eq!(before.len(), after.len());
        for (i, ((rl0, sl0, r0), (rl1, sl1, r1))) in before.into_iter().zip(after).enumerate() {
            let sorted = |r: &Resource| {
                let mut a = r.attributes.clone();
                a.sort_by(|x, y| x.key.cmp(&y.key));
                a
            };
            assert_eq!(
                sorted(rl0.resource.as_ref().unwrap()),
                sorted(rl1.resource.as_ref().unwrap())
            );
            assert_eq!(sl0.scope, sl1.scope);
            assert_eq!(r0.event_name, r1.event_name);
            assert_eq!(r0.body, r1.body);
            assert_eq!(
                (
                    r0.time_unix_nano,
                    r0.observed_time_unix_nano,
                    r0.severity_number,
                    &r0.severity_text
                ),
                (
                    r1.time_unix_nano,
                    r1.observed_time_unix_nano,
                    r1.severity_number,
                    &r1.severity_text
                )
            );
            assert_eq!(
                (&r0.trace_id, &r0.span_id, r0.flags),
                (&r1.trace_id, &r1.span_id, r1.flags)
            );
            for kv in &r0.attributes {
                assert_eq!(attr(r1, &kv.key), kv.value.as_ref().map(to_json), "{}", kv.key);
            }
            assert_eq!(attr(r1, "auditrelay.tenant_id"), Some(json!("acme")));
            assert_eq!(attr(r1, "auditrelay.offset"), Some(json!(i + 1)));
            assert_eq!(attr(r1, "auditrelay.chain"), Some(json!("07".repeat(32))));
        }
    }

    #[test]
    fn a_native_event_travels_whole_in_the_body() {
        let parsed = auditrelay_core::parse_request(
            br#"{"id":"n1","type":"user.create","actor":{"id":"u9"},"outcome":"success","severity":9,"source":{"service":"api"}}"#,
            auditrelay_core::BodyFormat::Json,
            &Limits::default(),
        )
        .unwrap()
        .remove(0);
        let req = to_request(&[stored(parsed, 5)]);
        let rl = &req.resource_logs[0];
        assert_eq!(
            to_json(&rl.resource.as_ref().unwrap().attributes[0].value.clone().unwrap()),
            json!("api")
        );
        assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, DEFAULT_SCOPE);
        let r = &rl.scope_logs[0].log_records[0];
        assert_eq!(r.event_name, "user.create");
        assert_eq!(r.severity_number, 22);
        assert_eq!(attr(r, "enduser.id"), Some(json!("u9")));
        assert_eq!(attr(r, "event.outcome"), Some(json!("success")));
        let body = to_json(r.body.as_ref().unwrap());
        assert_eq!(
            (body["offset"].clone(), body["type"].clone()),
            (json!(5), json!("user.create"))
        );
    }

    #[test]
    fn severity_numbers_invert_the_scale() {
        for n in 1..=24 {
            let back = severity_number(crate::to_event::severity(n));
            assert_eq!(crate::to_event::severity(back), crate::to_event::severity(n));
        }
    }
}
