//! The fast path for valid events: one typed, borrowing parse instead of a `Value` tree, and the
//! event rendered straight into its RFC 8785 (JCS) form. It only ever *accepts*: on any doubt it
//! returns `None` and the caller runs the full validator (`validate.rs`), which produces the
//! precise error naming the field. Both paths render the same bytes.

use serde::Deserialize;

use crate::event::{Members, ParsedEvent, Rest};
use crate::ids::{is_valid_client_event_id, is_valid_event_type, is_valid_tenant_id};
use crate::jcs::Json;
use crate::time::{format_timestamp, parse_rfc3339};

const MAX_SHORT_STRING: usize = 1024;

/// A string borrowed from the request. A string with an escape sequence cannot be borrowed: the
/// parse fails and the event goes to the full validator, which is what "only ever accepts" means
/// here (serde gives `Option<Cow<str>>` no borrowing: every field was a fresh `String`).
type Text<'a> = Option<&'a str>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    tenant_id: Text<'a>,
    #[serde(borrow, rename = "type")]
    event_type: &'a str,
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
    // Parsed in place (a `null` is `None`, like absent): serde_json's recursion limit then
    // bounds their nesting exactly as it does on the full path.
    #[serde(borrow, default)]
    changes: Option<Json<'a>>,
    #[serde(borrow, default)]
    metadata: Option<Json<'a>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
}

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

/// The values of a string record in JCS key order; `None` when any is too long.
fn record<'a, const N: usize>(values: [&Text<'a>; N]) -> Option<[Option<&'a str>; N]> {
    let mut out = [None; N];
    for (slot, value) in out.iter_mut().zip(values) {
        if let Some(v) = value {
            if v.len() > MAX_SHORT_STRING {
                return None;
            }
            *slot = Some(*v);
        }
    }
    Some(out)
}

fn short<'a>(t: &Text<'a>) -> Option<Option<&'a str>> {
    match t {
        None => Some(None),
        Some(s) if s.len() <= MAX_SHORT_STRING => Some(Some(*s)),
        Some(_) => None,
    }
}

/// `metadata` / `changes` must be objects.
fn object<'j, 'a>(j: &'j Option<Json<'a>>) -> Option<Option<&'j Json<'a>>> {
    match j {
        None => Some(None),
        Some(obj @ Json::Obj(_)) => Some(Some(obj)),
        Some(_) => None,
    }
}

pub(crate) fn try_fast(index: usize, raw: &str) -> Option<ParsedEvent> {
    let ev: Event<'_> = serde_json::from_str(raw).ok()?;
    if !is_valid_event_type(ev.event_type) {
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
    let outcome = match ev.outcome {
        None => "unknown",
        Some(o @ ("success" | "failure" | "unknown")) => o,
        Some(_) => return None,
    };
    let severity = match ev.severity {
        None => 5,
        Some(s) if s <= 10 => s,
        Some(_) => return None,
    };
    let actor = match &ev.actor {
        None => None,
        Some(a) => {
            if let Some(ip) = &a.ip_address {
                ip.parse::<std::net::IpAddr>().ok()?;
            }
            Some(record([
                &a.email,
                &a.id,
                &a.ip_address,
                &a.name,
                &a.kind,
                &a.user_agent,
            ])?)
        }
    };
    let target = match &ev.target {
        None => None,
        Some(t) => Some(record([&t.id, &t.name, &t.kind])?),
    };
    let source = match &ev.source {
        None => None,
        Some(s) => Some(record([&s.instance, &s.service, &s.version])?),
    };
    let members = Members {
        action: short(&ev.action)?,
        actor,
        changes: object(&ev.changes)?,
        metadata: object(&ev.metadata)?,
        outcome,
        request_id: short(&ev.request_id)?,
        severity,
        source,
        target,
    };
    let rest = Rest::render(&members, raw.len(), |json: &Json<'_>, out| json.write(out));
    let strict_jcs = [members.changes, members.metadata]
        .iter()
        .flatten()
        .all(|j| j.is_strict());

    Some(ParsedEvent {
        index,
        client_id: ev.id.map(str::to_owned),
        tenant_claim: ev.tenant_id.map(str::to_owned),
        event_type: ev.event_type.to_owned(),
        occurred_at,
        rest,
        strict_jcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    const RECEIVED_AT: &str = "2026-06-01T10:13:21.000Z";

    /// Renders `raw` on both paths; asserts they agree and returns the event. An event whose
    /// known string fields hold an escape sequence goes to the full path (they cannot be
    /// borrowed), so for those it is rendered by the full path only; any other must take the
    /// fast one.
    fn both_paths(raw: &str) -> crate::NewEvent {
        let value: Value = serde_json::from_str(raw).unwrap();
        let full = crate::validate::validate_event(0, value).unwrap();
        let fast = match try_fast(0, raw) {
            Some(fast) => fast,
            None => {
                assert!(
                    raw.contains('\\'),
                    "only escapes may send a valid event to the full path: {raw}"
                );
                return full.into_new_event("acme".into(), RECEIVED_AT);
            }
        };
        assert_eq!(fast.rest, full.rest, "{raw}");
        assert_eq!(fast.client_id, full.client_id);
        assert_eq!(fast.tenant_claim, full.tenant_claim);
        assert_eq!(fast.occurred_at, full.occurred_at);
        let (fast, full) = (
            fast.into_new_event("acme".into(), RECEIVED_AT),
            full.into_new_event("acme".into(), RECEIVED_AT),
        );
        if fast.client_supplied_id {
            assert_eq!(fast.body, full.body, "{raw}");
            assert_eq!(fast.offset_at, full.offset_at, "{raw}");
        }
        fast
    }

    /// The body is JCS of the event without `offset`, and the splice point puts `offset` where
    /// JCS of the event with it has it.
    fn assert_jcs(ev: &crate::NewEvent) {
        let value: Value = serde_json::from_str(&ev.body).unwrap();
        assert_eq!(ev.body, serde_jcs::to_string(&value).unwrap());
        let Value::Object(mut with_offset) = value else {
            panic!("not an object: {}", ev.body)
        };
        for offset in [1u64, 42, (1 << 53) + 1, u64::MAX] {
            with_offset.insert("offset".into(), offset.into());
            assert_eq!(
                String::from_utf8(ev.canonical_with_offset(offset)).unwrap(),
                serde_jcs::to_string(&with_offset).unwrap(),
                "{}",
                ev.body
            );
        }
    }

    /// Both paths must render byte-identical JSON for valid events.
    #[test]
    fn fast_and_full_paths_agree() {
        let samples = [
            r#"{"type":"a.b"}"#,
            r#"{"type":"a.b","severity":null,"actor":null}"#,
            r#"{"source":{"service":"billing-api"},"severity":9,"outcome":"success","type":"decision.rejected","occurred_at":"2026-06-01T12:13:20+02:00","actor":{"ip_address":"203.0.113.42","id":"usr_123"},"metadata":{"z":1,"a":2},"id":"client-1","request_id":"req-1","changes":{"status":["pending","rejected"]},"action":"reject","target":{"id":"dec_9","type":"decision"}}"#,
            "{\"type\":\"a.b\",\"metadata\": {\n  \"k\" : \"v w\\\"x\" ,\"n\":[1, 2]\n}}",
            r#"{"type":"a.b","actor":{},"target":{"name":"q\"uote"},"tenant_id":"t-1"}"#,
            r#"{"type":"a.b","metadata":null,"changes":null,"id":"x"}"#,
        ];
        for raw in samples {
            assert_jcs(&both_paths(raw));
        }
    }

    /// The body is exactly what serde_jcs makes of it, for the cases JCS is particular about.
    #[test]
    fn the_body_is_rfc_8785() {
        let samples = [
            // Keys that sort differently by UTF-16 code units than by UTF-8 bytes or chars (and
            // "\u00e9" and "é", one key given twice: the last wins).
            r#"{"type":"a.b","id":"k","metadata":{"\ue000":1,"😀":2,"\u00e9":3,"z":4,"":5,"Z":6,"é":7}}"#,
            // Numbers as ECMAScript prints them.
            r#"{"type":"a.b","id":"n","metadata":{"n":[1e21,1E+21,1e20,0.000001,1e-7,-0.0,-0,1.0,1.50,123456789012345678901,0.1,-12.5e3,5e-324]}}"#,
            // Escapes, in keys and values, and characters that need none.
            r#"{"type":"a.b","id":"e\"\\\/é","action":"a\/b\u007f\u2028","actor":{"name":"\t\n\r\b\f\u001f","user_agent":"Zoë 😀","email":"x@y"},"metadata":{"k\"ey\\":"v\u0000","\n":"nl"}}"#,
            // Nested arrays and objects, empty ones, duplicates (the last wins).
            r#"{"type":"a.b","id":"d","changes":{"z":{"b":[{"y":1,"x":[[],{}]}],"a":{}},"a":[[[1]]]},"metadata":{"dup":1,"m":true,"dup":[null,false]}}"#,
            // Every member, in an order no rule uses.
            r#"{"target":{"name":"n","id":"i","type":"t"},"source":{"version":"1","service":"s","instance":"i"},"request_id":"r","severity":0,"outcome":"failure","metadata":{},"changes":{},"action":"x","actor":{"user_agent":"u","type":"user","name":"n","ip_address":"::1","id":"i","email":"e"},"occurred_at":"2026-06-01T10:13:20Z","tenant_id":"t","id":"all","type":"a.b"}"#,
        ];
        for raw in samples {
            assert_jcs(&both_paths(raw));
        }
        let ev = both_paths(samples[0]);
        let sorted = "\"metadata\":{\"\":5,\"Z\":6,\"z\":4,\"\u{e9}\":7,\"\u{1f600}\":2,\"\u{e000}\":1}";
        assert!(ev.body.contains(sorted), "{}", ev.body);
        let ev = both_paths(samples[1]);
        assert!(
            ev.body.contains(
                r#"[1e+21,1e+21,100000000000000000000,0.000001,1e-7,0,0,1,1.5,123456789012345680000,0.1,-12500,5e-324]"#
            ),
            "{}",
            ev.body
        );
    }

    /// A typical event of ~500 bytes with metadata and changes takes the fast path.
    #[test]
    fn a_typical_event_takes_the_fast_path() {
        let raw = r#"{"id":"evt_01HZX3","type":"decision.rejected","occurred_at":"2026-06-01T12:13:20.123+02:00","actor":{"id":"usr_123","type":"user","name":"Zoë Example","email":"zoe@example.com","ip_address":"203.0.113.42","user_agent":"Mozilla/5.0"},"action":"reject","target":{"type":"decision","id":"dec_9","name":"Loan 9"},"outcome":"success","severity":7,"request_id":"req-7f3a","changes":{"status":["pending","rejected"],"amount":[1200.5,0]},"metadata":{"reason":"income \"unverified\"","score":0.37,"flags":["manual",1,true,null],"nested":{"b":2,"a":1}},"source":{"service":"billing-api","version":"2.4.1","instance":"i-0abc"}}"#;
        assert!((450..=650).contains(&raw.len()), "{}", raw.len());
        assert!(try_fast(0, raw).is_some());
        assert_jcs(&both_paths(raw));
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
