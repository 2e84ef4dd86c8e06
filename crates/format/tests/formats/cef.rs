//! CEF: snapshots, and hostile events read back by `cefp` (tests/peers/parse_cef.py).

use std::cell::RefCell;
use std::net::IpAddr;

use auditrelay_format::{encode, Format, FormatOptions};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::{canonical_ip, cap, check, fixtures, gen_event, gen_options, given, is_unsafe, GenEvent, Peer};

/// Header fields: controls (CR/LF included, CEF has no escape for them there) become U+FFFD.
fn header(v: &str, max: usize) -> String {
    let clean: String = v.chars().map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c }).collect();
    cap(&clean, max)
}

/// Extension values: CR/LF survive (as escapes on the wire), other controls become U+FFFD.
fn value(v: &str, max: usize) -> String {
    let clean: String = v
        .chars()
        .map(|c| {
            if is_unsafe(c) && c != '\r' && c != '\n' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    cap(&clean, max)
}

/// What a CEF reader must get back from `ev`, stated from the mapping table in docs/formats.md.
fn expected(ev: &GenEvent, o: &FormatOptions) -> Value {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: Option<&str>, max: usize| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            pairs.push((k.to_string(), value(v, max)));
        }
    };
    let actor = ev.actor.clone().unwrap_or_default();
    let target = ev.target.clone().unwrap_or_default();
    let source = ev.source.clone().unwrap_or_default();
    add("rt", ev.time_ms().map(|ms| ms.to_string()).as_deref(), 1023);
    add("externalId", Some(&ev.id), 40);
    add("act", given(&ev.action), 63);
    add("outcome", given(&ev.outcome), 63);
    add("suser", given(&actor.name).or(given(&actor.id)), 1023);
    add("suid", given(&actor.id), 1023);
    match given(&actor.ip_address).and_then(canonical_ip) {
        Some(IpAddr::V4(ip)) => add("src", Some(&ip.to_string()), 1023),
        Some(IpAddr::V6(ip)) => {
            add("c6a2", Some(&ip.to_string()), 1023);
            add("c6a2Label", Some("Source IPv6 Address"), 1023);
        }
        None => {}
    }
    add("requestClientApplication", given(&actor.user_agent), 1023);
    add("duid", given(&target.id), 1023);
    add("duser", given(&target.name), 1023);
    add("sourceServiceName", given(&source.service), 1023);
    let changes = ev
        .changes
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::to_string(c).unwrap());
    add("msg", changes.as_deref(), 1023);
    if let Some(ms) = ev.received_ms {
        add("deviceCustomDate1", Some(&ms.to_string()), 1023);
        add("deviceCustomDate1Label", Some("received_at"), 1023);
    }
    for (n, label, v) in [
        (1, "tenant_id", Some(ev.tenant_id.as_str())),
        (2, "request_id", given(&ev.request_id)),
        (3, "target_type", given(&target.kind)),
        (4, "actor_type", given(&actor.kind)),
        (5, "actor_email", given(&actor.email)),
        (6, "source_instance", given(&source.instance)),
    ] {
        if v.is_some_and(|v| !v.is_empty()) {
            add(&format!("cs{n}Label"), Some(label), 1023);
            add(&format!("cs{n}"), v, 1023);
        }
    }
    // The log position (generated events carry no chain value).
    add("cn1", Some(&ev.offset.to_string()), 1023);
    add("cn1Label", Some("offset"), 1023);
    let name = given(&ev.action).unwrap_or(&ev.event_type);
    json!({
        "ok": true,
        "version": "0",
        "vendor": header(&o.vendor, 63),
        "product": header(&o.product, 63),
        "device_version": header(&o.product_version, 31),
        "class_id": header(&ev.event_type, 1023),
        "name": header(name, 512),
        "severity": ev.severity().map_or("Unknown".to_string(), |s| s.to_string()),
        "pairs": pairs,
    })
}

fn record(ev: &auditrelay_core::StoredEvent, o: &FormatOptions) -> String {
    String::from_utf8(encode(Format::Cef, ev, o).unwrap()).unwrap()
}

#[test]
fn cef_snapshots_read_back_by_cefp() {
    let mut cefp = Peer::start("parse_cef.py", &[]);
    let custom = FormatOptions {
        vendor: "Acme|Corp\\".into(),
        product: "Audit Relay".into(),
        product_version: "2.0|beta".into(),
        ..FormatOptions::default()
    };
    for (name, ev) in fixtures() {
        for (suffix, o) in [("", FormatOptions::default()), ("_custom_names", custom.clone())] {
            if !suffix.is_empty() && name != "full" {
                continue;
            }
            let rec = record(&ev, &o);
            let parsed = cefp.ask(rec.as_bytes());
            assert_eq!(parsed["ok"], true, "{name}: {parsed}");
            // One line per field, values as JSON strings so CR/LF show as \r / \n.
            let mut shown = vec![format!("{rec}\n\n--- read back by cefp ---")];
            for k in [
                "version",
                "vendor",
                "product",
                "device_version",
                "class_id",
                "name",
                "severity",
            ] {
                shown.push(format!("{k}: {}", parsed[k]));
            }
            for pair in parsed["pairs"].as_array().unwrap() {
                shown.push(format!("  {} = {}", pair[0].as_str().unwrap(), pair[1]));
            }
            insta::assert_snapshot!(format!("cef_{name}{suffix}"), shown.join("\n"));
        }
    }
}

/// Every string field holds arbitrary text (pipes, backslashes, equals signs, CR, LF, TAB,
/// carets, NUL, non-ASCII, >1 KiB); cefp must read back exactly the capped, sanitised values
/// under exactly the expected keys: nothing injected, nothing lost beyond the documented caps.
#[test]
fn cef_hostile_fields_read_back_exactly_by_cefp() {
    let cefp = RefCell::new(Peer::start("parse_cef.py", &[]));
    check(600, (gen_event(), gen_options()), |(ev, o)| {
        let rec = record(&ev.stored(), &o);
        prop_assert!(rec.starts_with("CEF:0|"));
        prop_assert!(!rec.contains(['\r', '\n']), "raw line break in {rec:?}");
        prop_assert!(!rec.chars().any(is_unsafe), "control character in {rec:?}");
        let mut parsed = cefp.borrow_mut().ask(rec.as_bytes());
        if let Some(m) = parsed.as_object_mut() {
            m.remove("extension");
        }
        prop_assert_eq!(parsed, expected(&ev, &o), "record: {}", rec);
        Ok(())
    });
}
