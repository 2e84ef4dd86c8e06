//! Field rules for one event (api.md "The event"). Every error names the field by its path.

use serde_json::{Map, Value};

use crate::event::ParsedEvent;
use crate::ids::{is_valid_client_event_id, is_valid_event_type, is_valid_tenant_id};
use crate::ingest::IngestError;
use crate::time::{format_timestamp, parse_rfc3339};

/// Sub-objects with a fixed set of string fields, in canonical order.
const ACTOR_FIELDS: &[&str] = &["id", "type", "name", "email", "ip_address", "user_agent"];
const TARGET_FIELDS: &[&str] = &["type", "id", "name"];
const SOURCE_FIELDS: &[&str] = &["service", "version", "instance"];
/// Longest string allowed in a short field (actor name, action, request id, …).
const MAX_SHORT_STRING: usize = 1024;

struct Ctx {
    index: usize,
}

impl Ctx {
    fn err(&self, field: &str, message: impl Into<String>) -> IngestError {
        IngestError::InvalidEvent {
            index: self.index,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn string(&self, field: &str, v: Value) -> Result<String, IngestError> {
        match v {
            Value::String(s) if s.len() <= MAX_SHORT_STRING => Ok(s),
            Value::String(_) => Err(self.err(field, format!("must be at most {MAX_SHORT_STRING} bytes"))),
            other => Err(self.err(field, format!("must be a string, got {}", kind(&other)))),
        }
    }

    fn object(&self, field: &str, v: Value) -> Result<Map<String, Value>, IngestError> {
        match v {
            Value::Object(m) => Ok(m),
            other => Err(self.err(field, format!("must be a JSON object, got {}", kind(&other)))),
        }
    }

    /// An object of known string fields, re-emitted in canonical order without nulls.
    fn string_record(&self, field: &str, v: Value, known: &[&str]) -> Result<Map<String, Value>, IngestError> {
        let mut m = self.object(field, v)?;
        if let Some(unknown) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(self.err(
                &format!("{field}.{unknown}"),
                format!("unknown field; {field} accepts {}", known.join(", ")),
            ));
        }
        let mut out = Map::new();
        for key in known {
            match m.remove(*key) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let path = format!("{field}.{key}");
                    let s = self.string(&path, v)?;
                    if *key == "ip_address" && s.parse::<std::net::IpAddr>().is_err() {
                        return Err(self.err(&path, "must be an IPv4 or IPv6 address"));
                    }
                    out.insert((*key).to_owned(), Value::String(s));
                }
            }
        }
        Ok(out)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn validate_event(index: usize, value: Value, raw: &str) -> Result<ParsedEvent, IngestError> {
    let cx = Ctx { index };
    let Value::Object(mut m) = value else {
        return Err(cx.err("", format!("each event must be a JSON object, got {}", kind(&value))));
    };
    const KNOWN: &[&str] = &[
        "id",
        "tenant_id",
        "type",
        "occurred_at",
        "actor",
        "action",
        "target",
        "outcome",
        "severity",
        "request_id",
        "changes",
        "metadata",
        "source",
    ];
    if let Some(unknown) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(cx.err(
            unknown,
            "unknown field; put application-specific data under `metadata` so nothing is silently dropped",
        ));
    }
    // Nulls mean "not given" (what most JSON encoders emit for an empty optional) — but only for
    // known fields: an unknown field is refused even when null.
    m.retain(|_, v| !v.is_null());

    let event_type = match m.remove("type") {
        None => return Err(cx.err("type", "is required")),
        Some(v) => {
            let s = cx.string("type", v)?;
            if !is_valid_event_type(&s) {
                return Err(cx.err(
                    "type",
                    "must be 1–128 characters of [a-z0-9_.-], dotted like `category.verb`",
                ));
            }
            s
        }
    };
    let client_id = match m.remove("id") {
        None => None,
        Some(v) => {
            let s = cx.string("id", v)?;
            if !is_valid_client_event_id(&s) {
                return Err(cx.err(
                    "id",
                    "must be 1–128 characters without whitespace or control characters",
                ));
            }
            Some(s)
        }
    };
    let tenant_claim = match m.remove("tenant_id") {
        None => None,
        Some(v) => {
            let s = cx.string("tenant_id", v)?;
            if !is_valid_tenant_id(&s) {
                return Err(cx.err("tenant_id", "must be 1–64 characters of [a-z0-9_-]"));
            }
            Some(s)
        }
    };
    let occurred_at = match m.remove("occurred_at") {
        None => None,
        Some(v) => {
            let s = cx.string("occurred_at", v)?;
            let ts = parse_rfc3339(&s).ok_or_else(|| {
                cx.err(
                    "occurred_at",
                    "must be an RFC 3339 date-time such as 2026-06-01T10:13:20.000Z",
                )
            })?;
            Some(format_timestamp(ts))
        }
    };

    let mut rest = Map::new();
    if let Some(v) = m.remove("actor") {
        rest.insert(
            "actor".into(),
            Value::Object(cx.string_record("actor", v, ACTOR_FIELDS)?),
        );
    }
    if let Some(v) = m.remove("action") {
        rest.insert("action".into(), Value::String(cx.string("action", v)?));
    }
    if let Some(v) = m.remove("target") {
        rest.insert(
            "target".into(),
            Value::Object(cx.string_record("target", v, TARGET_FIELDS)?),
        );
    }
    let outcome = match m.remove("outcome") {
        None => "unknown".to_owned(),
        Some(v) => {
            let s = cx.string("outcome", v)?;
            if !matches!(s.as_str(), "success" | "failure" | "unknown") {
                return Err(cx.err("outcome", "must be one of success, failure, unknown"));
            }
            s
        }
    };
    rest.insert("outcome".into(), Value::String(outcome));
    let severity = match m.remove("severity") {
        None => 5,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if s <= 10 => s,
            _ => return Err(cx.err("severity", format!("must be an integer from 0 to 10, got {n}"))),
        },
        Some(other) => {
            return Err(cx.err(
                "severity",
                format!("must be an integer from 0 to 10, got {}", kind(&other)),
            ))
        }
    };
    rest.insert("severity".into(), Value::from(severity));
    if let Some(v) = m.remove("request_id") {
        rest.insert("request_id".into(), Value::String(cx.string("request_id", v)?));
    }
    if let Some(v) = m.remove("changes") {
        rest.insert("changes".into(), Value::Object(cx.object("changes", v)?));
    }
    if let Some(v) = m.remove("metadata") {
        rest.insert("metadata".into(), Value::Object(cx.object("metadata", v)?));
    }
    if let Some(v) = m.remove("source") {
        rest.insert(
            "source".into(),
            Value::Object(cx.string_record("source", v, SOURCE_FIELDS)?),
        );
    }

    let rest = Value::Object(rest).to_string();
    let rest = rest[1..rest.len() - 1].to_owned();
    Ok(ParsedEvent {
        index,
        client_id,
        tenant_claim,
        event_type,
        occurred_at,
        rest,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<ParsedEvent, IngestError> {
        let raw = v.to_string();
        validate_event(3, v, &raw)
    }

    fn field_of(e: IngestError) -> String {
        match e {
            IngestError::InvalidEvent { field, index: 3, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn full_event_renders_canonically() {
        let p = check(json!({
            "source": {"service": "billing-api"},
            "severity": 9, "outcome": "success", "type": "decision.rejected",
            "occurred_at": "2026-06-01T12:13:20+02:00",
            "actor": {"ip_address": "203.0.113.42", "id": "usr_123"},
            "metadata": {"z": 1, "a": 2}, "id": "client-1", "request_id": "req-1",
            "changes": {"status": ["pending", "rejected"]}, "action": "reject",
            "target": {"id": "dec_9", "type": "decision"}
        }))
        .unwrap();
        assert_eq!(p.client_id.as_deref(), Some("client-1"));
        let ev = p.into_new_event("acme".into(), "2026-06-01T10:13:21.000Z");
        assert_eq!(
            ev.body,
            r#"{"id":"client-1","tenant_id":"acme","type":"decision.rejected","occurred_at":"2026-06-01T10:13:20.000Z","received_at":"2026-06-01T10:13:21.000Z","actor":{"id":"usr_123","ip_address":"203.0.113.42"},"action":"reject","target":{"type":"decision","id":"dec_9"},"outcome":"success","severity":9,"request_id":"req-1","changes":{"status":["pending","rejected"]},"metadata":{"z":1,"a":2},"source":{"service":"billing-api"}}"#
        );
        assert!(ev.client_supplied_id);
    }

    #[test]
    fn defaults() {
        let ev = check(json!({"type": "a.b"}))
            .unwrap()
            .into_new_event("t".into(), "2026-01-01T00:00:00.000Z");
        let v: Value = serde_json::from_str(&ev.body).unwrap();
        assert_eq!(v["severity"], 5);
        assert_eq!(v["outcome"], "unknown");
        assert_eq!(v["occurred_at"], "2026-01-01T00:00:00.000Z");
        assert!(!ev.client_supplied_id);
        assert_eq!(ev.id.len(), 36);
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(field_of(check(json!({})).unwrap_err()), "type");
        assert_eq!(field_of(check(json!({"type": "Bad Type"})).unwrap_err()), "type");
        assert_eq!(field_of(check(json!({"type": 5})).unwrap_err()), "type");
        assert_eq!(
            field_of(check(json!({"type": "a.b", "severity": 11})).unwrap_err()),
            "severity"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "severity": -1})).unwrap_err()),
            "severity"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "severity": 2.5})).unwrap_err()),
            "severity"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "severity": "9"})).unwrap_err()),
            "severity"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "outcome": "ok"})).unwrap_err()),
            "outcome"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "occurred_at": "yesterday"})).unwrap_err()),
            "occurred_at"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "actor": {"ip_address": "x"}})).unwrap_err()),
            "actor.ip_address"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "actor": {"role": "x"}})).unwrap_err()),
            "actor.role"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "metadata": [1]})).unwrap_err()),
            "metadata"
        );
        assert_eq!(
            field_of(check(json!({"type": "a.b", "extra": 1})).unwrap_err()),
            "extra"
        );
        assert_eq!(field_of(check(json!({"type": "a.b", "id": ""})).unwrap_err()), "id");
        assert_eq!(
            field_of(check(json!({"type": "a.b", "tenant_id": "No!"})).unwrap_err()),
            "tenant_id"
        );
        assert_eq!(field_of(check(json!([1])).unwrap_err()), "");
    }

    #[test]
    fn nulls_mean_absent() {
        assert!(check(json!({"type": "a.b", "actor": null, "severity": null})).is_ok());
        assert_eq!(
            field_of(check(json!({"type": "a.b", "extra": null})).unwrap_err()),
            "extra"
        );
    }
}
