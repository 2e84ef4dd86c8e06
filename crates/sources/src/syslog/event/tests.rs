#![allow(clippy::unwrap_used)]

use auditrelay_core::{parse_request, BodyFormat, Limits, StoredEvent};
use auditrelay_format::{encode, Format, FormatOptions};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::append::validate_event;
use crate::syslog::config::ProtocolMode;
use crate::syslog::message::parse;
use crate::syslog::SyslogConfig;

fn settings(extra: Value) -> SyslogSettings {
    let mut config = json!({"listen": "127.0.0.1:6514"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    serde_json::from_value::<SyslogConfig>(config)
        .unwrap()
        .settings()
        .unwrap()
}

fn stored(event: Value) -> StoredEvent {
    let body = event.to_string();
    let new = parse_request(body.as_bytes(), BodyFormat::Json, &Limits::default())
        .unwrap()
        .remove(0)
        .into_new_event("acme".into(), "2026-06-01T10:13:21.000Z");
    StoredEvent {
        tenant_id: new.tenant_id,
        offset: 7,
        id: new.id,
        event_type: new.event_type,
        body: new.body,
        chain: Some([0xc4; 32]),
    }
}

/// Encodes `event` in `format`, sends it as an RFC 5424 message, and reads it back.
fn round_trip(event: &Value, format: Format) -> Value {
    let record = encode(format, &stored(event.clone()), &FormatOptions::default()).unwrap();
    let back = send(&record);
    // Compared as stored: defaults filled in (outcome), times canonical.
    let back = validate_event(&back, "acme", &Limits::default(), "2026-06-01T10:13:21.000Z").unwrap();
    serde_json::from_str(&back.body).unwrap()
}

/// The event as the log stores it.
fn canonical(event: &Value) -> Value {
    serde_json::from_str(&stored(event.clone()).body).unwrap()
}

fn send(record: &[u8]) -> Value {
    let mut raw = b"<134>1 2026-06-01T10:13:20.500Z - - - - - ".to_vec();
    raw.extend_from_slice(record);
    let m = parse(&raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    to_event(&m, &raw, "127.0.0.1:1", &settings(json!({})))
}

/// The fields both formats carry, as the original event had them.
fn carried(event: &Value) -> Value {
    let mut out = json!({});
    for key in [
        "type",
        "action",
        "outcome",
        "severity",
        "request_id",
        "occurred_at",
        "actor",
        "target",
        "source",
    ] {
        if let Some(v) = event.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

fn full_event() -> Value {
    json!({
        "type": "decision.rejected",
        "occurred_at": "2026-06-01T10:13:20.000Z",
        "action": "reject",
        "outcome": "failure",
        "severity": 9,
        "request_id": "req-abc-123",
        "actor": {"id": "usr_123", "type": "user", "name": "Ada L", "email": "ada@example.com",
                  "ip_address": "203.0.113.42", "user_agent": "curl/8.0"},
        "target": {"type": "decision", "id": "dec_9", "name": "Loan 9"},
        "source": {"service": "billing-api", "instance": "inst_7"}
    })
}

#[test]
fn cef_round_trips_the_event_fields() {
    let event = full_event();
    let back = round_trip(&event, Format::Cef);
    assert_eq!(carried(&back), carried(&canonical(&event)), "{back:#}");
    assert_eq!(back["metadata"]["cef"]["vendor"], "auditrelay");
    assert_eq!(back["metadata"]["cef"]["extension"]["cn1"], "7");
    // With a syslog header naming host and app, those fill `source` only where the payload
    // left it empty.
    let record = encode(Format::Cef, &stored(json!({"type": "a.b"})), &FormatOptions::default()).unwrap();
    let mut raw = b"<134>1 - web-1 billing - - - ".to_vec();
    raw.extend_from_slice(&record);
    let m = parse(&raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    let e = to_event(&m, &raw, "p", &settings(json!({})));
    assert_eq!(e["source"], json!({"service": "billing", "instance": "web-1"}));
}

#[test]
fn leef_round_trips_the_event_fields() {
    let mut event = full_event();
    event["source"]["version"] = json!("2.0.0");
    let back = round_trip(&event, Format::Leef);
    assert_eq!(carried(&back), carried(&canonical(&event)), "{back:#}");
    assert_eq!(back["metadata"]["leef"]["attributes"]["offset"], "7");
}

#[test]
fn ipv6_actor_round_trips_through_cef() {
    let event = json!({"type": "a.b", "severity": 5, "actor": {"id": "u", "ip_address": "2001:db8::1"}});
    let back = round_trip(&event, Format::Cef);
    assert_eq!(back["actor"], canonical(&event)["actor"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Free text with the characters CEF escapes (`\`, `=`, `|`) and spaces survives.
    #[test]
    fn cef_free_text_round_trips(action in "[a-z =|\\\\]{1,20}[a-z]", name in "[A-Za-z0-9 =|\\\\.]{0,30}[a-z]") {
        let event = json!({"type": "x.y", "severity": 3, "action": action, "actor": {"id": "u1", "name": name}});
        let back = round_trip(&event, Format::Cef);
        prop_assert_eq!(carried(&back), carried(&canonical(&event)));
    }

    /// LEEF has no escapes; text without its delimiter and control characters survives.
    #[test]
    fn leef_free_text_round_trips(action in "[a-z =|\\\\]{1,20}[a-z]", name in "[A-Za-z0-9 =|.]{0,30}[a-z]") {
        let event = json!({"type": "x.y", "severity": 3, "action": action, "actor": {"id": "u1", "name": name}});
        let back = round_trip(&event, Format::Leef);
        prop_assert_eq!(carried(&back), carried(&canonical(&event)));
    }
}

#[test]
fn header_fields_map_and_the_original_is_kept() {
    let raw = br#"<86>1 2026-06-01T10:00:00Z web01 sshd 4242 user.login [meta@1 tenant="t-42"] Accepted password"#;
    let m = parse(raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    let e = to_event(&m, raw, "10.0.0.1:5000", &settings(json!({})));
    assert_eq!(e["type"], "user.login");
    assert_eq!(e["occurred_at"], "2026-06-01T10:00:00Z");
    assert_eq!(e["severity"], 3, "info");
    assert_eq!(e["source"], json!({"service": "sshd", "instance": "web01"}));
    let s = &e["metadata"]["syslog"];
    assert_eq!(s["raw"], std::str::from_utf8(raw).unwrap());
    assert_eq!(s["facility"], 10);
    assert_eq!(s["procid"], "4242");
    assert_eq!(s["structured_data"]["meta@1"]["tenant"], "t-42");
    assert_eq!(s["message"], "Accepted password");
    assert_eq!(s["peer"], "10.0.0.1:5000");
    // Every event this makes passes the ingest validator.
    crate::append::validate_event(&e, "acme", &Limits::default(), "2026-06-01T10:00:01Z").unwrap();
}

#[test]
fn type_from_choices() {
    let raw = b"<13>1 - h My-App - Some%Thing - x";
    let m = parse(raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    assert_eq!(
        to_event(&m, raw, "p", &settings(json!({})))["type"],
        "syslog.some_thing"
    );
    assert_eq!(
        to_event(&m, raw, "p", &settings(json!({"type_from": "app_name"})))["type"],
        "syslog.my-app"
    );
    assert_eq!(
        to_event(&m, raw, "p", &settings(json!({"type_from": "fw.log"})))["type"],
        "fw.log"
    );
    let raw = b"<13>1 - h - - - - x";
    let m = parse(raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    assert_eq!(to_event(&m, raw, "p", &settings(json!({})))["type"], DEFAULT_TYPE);
}

#[test]
fn payload_parsing_can_be_off() {
    let raw = b"<13>1 - h app - - - CEF:0|a|b|c|x.y|n|5|act=go";
    let m = parse(raw, ProtocolMode::Auto, jiff::Timestamp::now()).unwrap();
    let e = to_event(&m, raw, "p", &settings(json!({"parse_payload": false})));
    assert!(e.get("action").is_none());
    assert!(e["metadata"].get("cef").is_none());
}

#[test]
fn malformed_keeps_the_bytes() {
    let e = malformed(b"\xff\xfegarbage", "bad", "p", 65536);
    assert_eq!(e["type"], MALFORMED_TYPE);
    assert_eq!(e["metadata"]["syslog"]["raw_base64"], "//5nYXJiYWdl");
    let e = malformed(b"plain", "bad", "p", 65536);
    assert_eq!(e["metadata"]["syslog"]["raw"], "plain");
    // Text that escaping would blow past the limit goes as base64.
    let control = vec![1u8; 1000];
    let e = malformed(&control, "bad", "p", 2000);
    assert!(e["metadata"]["syslog"].get("raw_base64").is_some());
    crate::append::validate_event(&e, "acme", &Limits::default(), "2026-06-01T10:00:01Z").unwrap();
}
