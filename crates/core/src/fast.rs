//! The fast path for valid events: one typed, borrowing parse instead of a `Value` tree, and the
//! canonical members rendered straight into a string. It only ever *accepts*: on any doubt it
//! returns `None` and the caller runs the full validator (`validate.rs`), which produces the
//! precise error naming the field. Both paths render the same canonical JSON.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{push_json_string, push_member, ParsedEvent};
use crate::ids::{is_valid_client_event_id, is_valid_event_type, is_valid_tenant_id};
use crate::time::{format_timestamp, parse_rfc3339};

const MAX_SHORT_STRING: usize = 1024;

type Text<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    tenant_id: Text<'a>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow, default)]
    occurred_at: Text<'a>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    action: Text<'a>,
    #[serde(borrow, default)]
    target: Option<Target<'a>>,
    #[serde(borrow, default)]
    outcome: Text<'a>,
    #[serde(default)]
    severity: Option<u64>,
    #[serde(borrow, default)]
    request_id: Text<'a>,
    #[serde(borrow, default)]
    changes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
}

// Field order is the canonical order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    email: Text<'a>,
    #[serde(borrow, default)]
    ip_address: Text<'a>,
    #[serde(borrow, default)]
    user_agent: Text<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source<'a> {
    #[serde(borrow, default)]
    service: Text<'a>,
    #[serde(borrow, default)]
    version: Text<'a>,
    #[serde(borrow, default)]
    instance: Text<'a>,
}

fn short_ok(t: &Text<'_>) -> bool {
    t.as_ref().is_none_or(|s| s.len() <= MAX_SHORT_STRING)
}

/// Writes `{"k":"v",…}` for the present members; `None` when any is too long.
fn record(out: &mut String, name: &str, members: &[(&str, &Text<'_>)]) -> Option<()> {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":{");
    let mut first = true;
    for (key, value) in members {
        if !short_ok(value) {
            return None;
        }
        if let Some(v) = value {
            if !first {
                out.push(',');
            }
            first = false;
            push_member(out, key, v);
        }
    }
    out.push('}');
    Some(())
}

/// Deepest nesting accepted inside `metadata` / `changes`, the same bound serde_json's
/// recursion limit puts on the full path (a raw value skips that check).
const MAX_DEPTH: usize = 127;

/// Compact JSON of an object given as raw text: insignificant whitespace dropped, everything
/// else (key order, number spelling) exactly as sent. `None` unless it is an object nested no
/// deeper than `MAX_DEPTH`, so deep documents fall back to the full path and its error.
fn compact_object(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('{') {
        return None;
    }
    // One pass to check the depth and whether any whitespace sits outside strings…
    let mut has_space = false;
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    for b in text.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b if b.is_ascii_whitespace() => has_space = true,
            _ => {}
        }
    }
    if !has_space {
        return Some(Cow::Borrowed(text));
    }
    // …and a second only when there is something to drop.
    let mut compact = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            compact.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            compact.push(c);
        } else if !c.is_ascii_whitespace() {
            compact.push(c);
        }
    }
    Some(Cow::Owned(compact))
}

pub(crate) fn try_fast(index: usize, raw: &str) -> Option<ParsedEvent> {
    let ev: Event<'_> = serde_json::from_str(raw).ok()?;
    if !is_valid_event_type(&ev.event_type) {
        return None;
    }
    if let Some(id) = &ev.id {
        if !is_valid_client_event_id(id) {
            return None;
        }
    }
    if let Some(t) = &ev.tenant_id {
        if !is_valid_tenant_id(t) {
            return None;
        }
    }
    let occurred_at = match &ev.occurred_at {
        None => None,
        Some(s) => Some(format_timestamp(parse_rfc3339(s)?)),
    };
    let outcome = match ev.outcome.as_deref() {
        None => "unknown",
        Some(o @ ("success" | "failure" | "unknown")) => o,
        Some(_) => return None,
    };
    let severity = match ev.severity {
        None => 5,
        Some(s) if s <= 10 => s,
        Some(_) => return None,
    };
    if !short_ok(&ev.action) || !short_ok(&ev.request_id) {
        return None;
    }

    let mut rest = String::with_capacity(raw.len() + 32);
    if let Some(a) = &ev.actor {
        if let Some(ip) = &a.ip_address {
            ip.parse::<std::net::IpAddr>().ok()?;
        }
        record(
            &mut rest,
            "actor",
            &[
                ("id", &a.id),
                ("type", &a.kind),
                ("name", &a.name),
                ("email", &a.email),
                ("ip_address", &a.ip_address),
                ("user_agent", &a.user_agent),
            ],
        )?;
    }
    if let Some(action) = &ev.action {
        rest.push(',');
        push_member(&mut rest, "action", action);
    }
    if let Some(t) = &ev.target {
        record(
            &mut rest,
            "target",
            &[("type", &t.kind), ("id", &t.id), ("name", &t.name)],
        )?;
    }
    rest.push_str(",\"outcome\":");
    push_json_string(&mut rest, outcome);
    rest.push_str(",\"severity\":");
    rest.push_str(&severity.to_string());
    if let Some(r) = &ev.request_id {
        rest.push(',');
        push_member(&mut rest, "request_id", r);
    }
    for (name, value) in [("changes", ev.changes), ("metadata", ev.metadata)] {
        // A JSON `null` arrives as Some(raw "null"): treat it as absent, like the full path.
        let Some(raw_value) = value.filter(|v| v.get() != "null") else {
            continue;
        };
        let compact = compact_object(raw_value)?;
        rest.push_str(",\"");
        rest.push_str(name);
        rest.push_str("\":");
        rest.push_str(&compact);
    }
    if let Some(s) = &ev.source {
        record(
            &mut rest,
            "source",
            &[
                ("service", &s.service),
                ("version", &s.version),
                ("instance", &s.instance),
            ],
        )?;
    }
    // Drop the leading comma: `rest` holds members without braces.
    let rest = rest.strip_prefix(',').unwrap_or(&rest).to_owned();

    Some(ParsedEvent {
        index,
        client_id: ev.id.map(Cow::into_owned),
        tenant_claim: ev.tenant_id.map(Cow::into_owned),
        event_type: ev.event_type.into_owned(),
        occurred_at,
        rest,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths must render byte-identical canonical JSON for valid events.
    #[test]
    fn fast_and_full_paths_agree() {
        let samples = [
            r#"{"type":"a.b"}"#,
            r#"{"type":"a.b","severity":null,"actor":null}"#,
            r#"{"source":{"service":"billing-api"},"severity":9,"outcome":"success","type":"decision.rejected","occurred_at":"2026-06-01T12:13:20+02:00","actor":{"ip_address":"203.0.113.42","id":"usr_123"},"metadata":{"z":1,"a":2},"id":"client-1","request_id":"req-1","changes":{"status":["pending","rejected"]},"action":"reject","target":{"id":"dec_9","type":"decision"}}"#,
            "{\"type\":\"a.b\",\"metadata\": {\n  \"k\" : \"v w\\\"x\" ,\"n\":[1, 2]\n}}",
            r#"{"type":"a.b","actor":{},"target":{"name":"q\"uote"},"tenant_id":"t-1"}"#,
        ];
        for raw in samples {
            let fast = try_fast(0, raw).expect(raw);
            let value: serde_json::Value = serde_json::from_str(raw).unwrap();
            let full = crate::validate::validate_event(0, value, raw).unwrap();
            assert_eq!(fast.rest, full.rest, "{raw}");
            assert_eq!(fast.client_id, full.client_id);
            assert_eq!(fast.tenant_claim, full.tenant_claim);
            assert_eq!(fast.occurred_at, full.occurred_at);
        }
    }

    #[test]
    fn anything_doubtful_falls_back() {
        for raw in [
            r#"{"type":"Bad"}"#,
            r#"{"type":"a.b","severity":11}"#,
            r#"{"type":"a.b","severity":2.5}"#,
            r#"{"type":"a.b","extra":1}"#,
            r#"{"type":"a.b","actor":{"ip_address":"nope"}}"#,
            r#"{"type":"a.b","metadata":[1]}"#,
            r#"{"type":"a.b","type":"c.d"}"#,
            r#"{"type":"a.b","outcome":"ok"}"#,
        ] {
            assert!(try_fast(0, raw).is_none(), "{raw}");
        }
        let deep = format!(
            r#"{{"type":"a.b","metadata":{}1{}}}"#,
            r#"{"a":"#.repeat(200),
            "}".repeat(200)
        );
        assert!(try_fast(0, &deep).is_none());
        let ok = format!(
            r#"{{"type":"a.b","metadata":{}1{}}}"#,
            r#"{"a":"#.repeat(100),
            "}".repeat(100)
        );
        assert!(try_fast(0, &ok).is_some());
    }
}
