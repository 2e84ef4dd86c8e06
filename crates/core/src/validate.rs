//! Field rules for one event (api.md "The event"). Every error names the field by its path.

use serde_json::{Map, Value};

use crate::event::{Members, ParsedEvent, Rest, ACTOR_KEYS, SOURCE_KEYS, TARGET_KEYS};
use crate::ids::{is_valid_client_event_id, is_valid_event_type, is_valid_tenant_id};
use crate::ingest_error::IngestError;
use crate::time::{format_timestamp, parse_rfc3339};

/// Sub-objects with a fixed set of string fields, in the order error messages list them.
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

    /// An object of known string fields, checked, without nulls.
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

pub(crate) fn validate_event(index: usize, value: Value) -> Result<ParsedEvent, IngestError> {
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

    let actor = m
        .remove("actor")
        .map(|v| cx.string_record("actor", v, ACTOR_FIELDS))
        .transpose()?;
    let action = m.remove("action").map(|v| cx.string("action", v)).transpose()?;
    let target = m
        .remove("target")
        .map(|v| cx.string_record("target", v, TARGET_FIELDS))
        .transpose()?;
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
    let request_id = m.remove("request_id").map(|v| cx.string("request_id", v)).transpose()?;
    let changes = m.remove("changes").map(|v| cx.object("changes", v)).transpose()?;
    let metadata = m.remove("metadata").map(|v| cx.object("metadata", v)).transpose()?;
    let source = m
        .remove("source")
        .map(|v| cx.string_record("source", v, SOURCE_FIELDS))
        .transpose()?;

    // The records' values in JCS key order (their members are all strings by now).
    fn in_order<'a, const N: usize>(record: &'a Map<String, Value>, keys: &[&str; N]) -> [Option<&'a str>; N] {
        keys.map(|k| record.get(k).and_then(Value::as_str))
    }
    // `metadata` and `changes` go through the fast path's writer (`jcs.rs`), so both paths give
    // the same bytes, integers beyond 2^53 included (kept digit for digit). Serialising a map
    // of `Value`s cannot fail (a `Value` holds no non-finite number).
    let texts = [changes.as_ref(), metadata.as_ref()].map(|o| o.map(|m| serde_json::to_string(m).unwrap_or_default()));
    let [changes, metadata] = [0, 1].map(|i| texts[i].as_deref().and_then(crate::jcs::Json::parse));
    let strict_jcs = [&changes, &metadata].into_iter().flatten().all(|json| json.is_strict());
    let members = Members {
        action: action.as_deref(),
        actor: actor.as_ref().map(|r| in_order(r, &ACTOR_KEYS)),
        changes: changes.as_ref(),
        metadata: metadata.as_ref(),
        outcome: &outcome,
        request_id: request_id.as_deref(),
        severity,
        source: source.as_ref().map(|r| in_order(r, &SOURCE_KEYS)),
        target: target.as_ref().map(|r| in_order(r, &TARGET_KEYS)),
    };
    let rest = Rest::render(&members, 256, |json: &crate::jcs::Json<'_>, out| json.write(out));
    Ok(ParsedEvent {
        index,
        client_id,
        tenant_claim,
        event_type,
        occurred_at,
        rest,
        strict_jcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<ParsedEvent, IngestError> {
        validate_event(3, v)
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
            r#"{"action":"reject","actor":{"id":"usr_123","ip_address":"203.0.113.42"},"changes":{"status":["pending","rejected"]},"id":"client-1","metadata":{"a":2,"z":1},"occurred_at":"2026-06-01T10:13:20.000Z","outcome":"success","received_at":"2026-06-01T10:13:21.000Z","request_id":"req-1","severity":9,"source":{"service":"billing-api"},"target":{"id":"dec_9","type":"decision"},"tenant_id":"acme","type":"decision.rejected"}"#
        );
        assert_eq!(
            &ev.body[..ev.offset_at],
            r#"{"action":"reject","actor":{"id":"usr_123","ip_address":"203.0.113.42"},"changes":{"status":["pending","rejected"]},"id":"client-1","metadata":{"a":2,"z":1},"occurred_at":"2026-06-01T10:13:20.000Z""#
        );
        assert_eq!(
            String::from_utf8(ev.canonical_with_offset(7)).unwrap(),
            ev.body
                .replace(r#"10:13:20.000Z","outcome""#, r#"10:13:20.000Z","offset":7,"outcome""#)
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
    fn integers_beyond_2_pow_53_keep_every_digit_on_both_paths() {
        let event = json!({"type": "a.b", "id": "e1", "metadata": {"ns": 1796315914686405516u64, "a": [1, {"b": -9007199254740993i64}]}});
        let raw = event.to_string();
        let fast = crate::fast::try_fast(0, &raw).expect("the fast path takes it");
        let full = check(event).unwrap();
        let (fast, full) = (
            fast.into_new_event("t".into(), "2026-01-01T00:00:00.000Z"),
            full.into_new_event("t".into(), "2026-01-01T00:00:00.000Z"),
        );
        assert!(!fast.strict_jcs && !full.strict_jcs);
        assert_eq!(
            fast.body.split("\"received_at\"").next(),
            full.body.split("\"received_at\"").next()
        );
        assert!(
            fast.body
                .contains(r#""metadata":{"a":[1,{"b":-9007199254740993}],"ns":1796315914686405516}"#),
            "{}",
            fast.body
        );
        // Everything at or below 2^53 is strict RFC 8785.
        let small = check(json!({"type": "a.b", "metadata": {"id": 9007199254740992u64}})).unwrap();
        assert!(small.strict_jcs);
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
