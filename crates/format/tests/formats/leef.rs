//! LEEF 2.0: snapshots, and hostile events read back by a strict reader written here (no LEEF
//! parser exists to borrow).

use auditrelay_format::{encode, Format, FormatOptions, LEEF_DELIMITERS};
use proptest::prelude::*;

use crate::common::{canonical_ip, cap, check, fixtures, gen_event, gen_options, given, is_unsafe, GenEvent};

/// A LEEF 2.0 record as a strict reader sees it.
#[derive(Debug, PartialEq, Eq)]
struct Leef {
    /// Vendor, Product, Version, EventID.
    header: Vec<String>,
    delimiter: char,
    attributes: Vec<(String, String)>,
}

/// Reads one record by the letter of LEEF 2.0: the header is exactly six `|`-terminated
/// fields, the delimiter field is one character or `x`/`0x` + 1–4 hex digits, attributes are
/// split on that delimiter and each is `key=value` split at its first `=`. Anything else —
/// a line break, an attribute without `=`, an unknown or repeated key — is an error.
fn read(record: &str) -> Result<Leef, String> {
    if record.contains(['\r', '\n']) {
        return Err("line break in record".into());
    }
    let parts: Vec<&str> = record.splitn(7, '|').collect();
    if parts.len() != 7 {
        return Err(format!("header has {} fields", parts.len()));
    }
    if parts[0] != "LEEF:2.0" {
        return Err(format!("version field {:?}", parts[0]));
    }
    let d = parts[5];
    let hex = d.strip_prefix("0x").or_else(|| d.strip_prefix('x'));
    let delimiter = match hex {
        Some(h) if (1..=4).contains(&h.len()) => u32::from_str_radix(h, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or(format!("bad hex delimiter {d:?}"))?,
        _ => {
            let mut cs = d.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("bad delimiter field {d:?}")),
            }
        }
    };
    let mut attributes: Vec<(String, String)> = Vec::new();
    if !parts[6].is_empty() {
        for a in parts[6].split(delimiter) {
            let (k, v) = a.split_once('=').ok_or(format!("attribute without '=': {a:?}"))?;
            if !KEYS.contains(&k) {
                return Err(format!("unknown key {k:?}"));
            }
            if attributes.iter().any(|(seen, _)| seen == k) {
                return Err(format!("repeated key {k:?}"));
            }
            attributes.push((k.into(), v.into()));
        }
    }
    Ok(Leef {
        header: parts[1..5].iter().map(|s| s.to_string()).collect(),
        delimiter,
        attributes,
    })
}

/// Every key the encoder may write (docs/formats.md), in its order.
const KEYS: &[&str] = &[
    "devTime",
    "devTimeFormat",
    "sev",
    "cat",
    "usrName",
    "src",
    "externalId",
    "tenantId",
    "action",
    "outcome",
    "requestId",
    "actorId",
    "actorType",
    "actorEmail",
    "userAgent",
    "targetType",
    "targetId",
    "targetName",
    "sourceService",
    "sourceVersion",
    "sourceInstance",
    "receivedTime",
    "changes",
    "offset",
    "chain",
];

fn dev_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// What the reader must get back from `ev`.
fn expected(ev: &GenEvent, o: &FormatOptions) -> Leef {
    let delimiter = if LEEF_DELIMITERS.contains(&o.leef_delimiter) {
        o.leef_delimiter
    } else {
        '^'
    };
    let clean = |v: &str, extra: char, max: usize| {
        let s: String = v
            .chars()
            .map(|c| if is_unsafe(c) || c == extra { '\u{FFFD}' } else { c })
            .collect();
        cap(&s, max)
    };
    let mut attributes = Vec::new();
    let mut add = |k: &str, v: Option<&str>, max: usize| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            attributes.push((k.to_string(), clean(v, delimiter, max)));
        }
    };
    let actor = ev.actor.clone().unwrap_or_default();
    let target = ev.target.clone().unwrap_or_default();
    let source = ev.source.clone().unwrap_or_default();
    if let Some(ms) = ev.time_ms() {
        add("devTime", Some(&dev_time(ms)), 1023);
        add("devTimeFormat", Some("yyyy-MM-dd'T'HH:mm:ss.SSSZ"), 1023);
    }
    add("sev", ev.severity().map(|s| s.max(1).to_string()).as_deref(), 1023);
    add("cat", Some(&ev.event_type), 1023);
    add("usrName", given(&actor.name).or(given(&actor.id)), 255);
    let ip = given(&actor.ip_address).and_then(canonical_ip).map(|ip| ip.to_string());
    add("src", ip.as_deref(), 1023);
    add("externalId", Some(&ev.id), 1023);
    add("tenantId", Some(&ev.tenant_id), 1023);
    add("action", given(&ev.action), 1023);
    add("outcome", given(&ev.outcome), 1023);
    add("requestId", given(&ev.request_id), 1023);
    add("actorId", given(&actor.id), 1023);
    add("actorType", given(&actor.kind), 1023);
    add("actorEmail", given(&actor.email), 1023);
    add("userAgent", given(&actor.user_agent), 1023);
    add("targetType", given(&target.kind), 1023);
    add("targetId", given(&target.id), 1023);
    add("targetName", given(&target.name), 1023);
    add("sourceService", given(&source.service), 1023);
    add("sourceVersion", given(&source.version), 1023);
    add("sourceInstance", given(&source.instance), 1023);
    add("receivedTime", ev.received_ms.map(dev_time).as_deref(), 1023);
    let changes = ev
        .changes
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::to_string(c).unwrap());
    add("changes", changes.as_deref(), 1023);
    add("offset", Some(&ev.offset.to_string()), 1023);
    Leef {
        header: vec![
            clean(&o.vendor, '|', usize::MAX),
            clean(&o.product, '|', usize::MAX),
            clean(&o.product_version, '|', usize::MAX),
            clean(&ev.event_type, '|', 255),
        ],
        delimiter,
        attributes,
    }
}

fn record(ev: &auditrelay_core::StoredEvent, o: &FormatOptions) -> String {
    String::from_utf8(encode(Format::Leef, ev, o).unwrap()).unwrap()
}

#[test]
fn leef_snapshots_read_back_strictly() {
    let tab = FormatOptions {
        leef_delimiter: '\t',
        ..FormatOptions::default()
    };
    let pipe = FormatOptions {
        leef_delimiter: '|',
        vendor: "Acme|Corp".into(),
        ..FormatOptions::default()
    };
    for (name, ev) in fixtures() {
        let mut variants = vec![("", FormatOptions::default())];
        if name == "full" || name == "hostile" {
            variants.push(("_tab", tab.clone()));
            variants.push(("_pipe", pipe.clone()));
        }
        for (suffix, o) in variants {
            let rec = record(&ev, &o);
            let read = read(&rec).unwrap_or_else(|e| panic!("{name}{suffix}: {e}: {rec:?}"));
            // Tabs are invisible in a snapshot: show them as ⇥.
            let shown = rec.replace('\t', "⇥");
            let attrs: Vec<String> = read
                .attributes
                .iter()
                .map(|(k, v)| format!("  {k} = {}", serde_json::Value::from(v.as_str())))
                .collect();
            insta::assert_snapshot!(
                format!("leef_{name}{suffix}"),
                format!(
                    "{shown}\n\n--- read back strictly ---\nheader: {:?}\ndelimiter: {:?}\n{}",
                    read.header,
                    read.delimiter,
                    attrs.join("\n")
                )
            );
        }
    }
}

#[test]
fn leef_reader_rejects_injection() {
    assert!(read("LEEF:2.0|v|p|1|t|^|a=1^b=2").is_err(), "unknown keys");
    assert!(read("LEEF:2.0|v|p|1|t|^|cat=1^cat=2").is_err(), "repeated key");
    assert!(read("LEEF:2.0|v|p|1|t|^|cat=1^x").is_err(), "attribute without =");
    assert!(read("LEEF:2.0|v|p|1|t|^|cat=1\nsev=2").is_err(), "line break");
    assert!(read("LEEF:2.0|v|p|1|^|cat=1").is_err(), "short header");
    assert_eq!(
        read("LEEF:2.0|v|p|1|t|x5E|cat=a=b^sev=1").map(|l| l.attributes.len()),
        Ok(2)
    );
}

/// Every string field holds arbitrary text; the strict reader must find exactly the expected
/// keys with the sanitised, capped values, and no delimiter, CR, LF or other control character
/// inside any value or header field, for every delimiter a sink may configure.
#[test]
fn leef_hostile_fields_read_back_strictly() {
    check(1500, (gen_event(), gen_options()), |(ev, o)| {
        let rec = record(&ev.stored(), &o);
        let got = read(&rec).map_err(|e| TestCaseError::fail(format!("{e}: {rec:?}")))?;
        for (k, v) in &got.attributes {
            prop_assert!(!v.contains(got.delimiter), "delimiter survives in {k}={v:?}");
            prop_assert!(!v.chars().any(is_unsafe), "control character survives in {k}={v:?}");
        }
        for h in &got.header {
            prop_assert!(!h.contains('|') && !h.chars().any(is_unsafe), "header field {h:?}");
        }
        if let Some((_, t)) = got.attributes.iter().find(|(k, _)| k == "devTime") {
            let back = jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", t)
                .and_then(|t| t.to_timestamp())
                .map(|t| t.as_millisecond());
            prop_assert_eq!(back.ok(), ev.time_ms(), "devTime {} does not read back", t);
        }
        prop_assert_eq!(got, expected(&ev, &o), "record: {:?}", rec);
        Ok(())
    });
}
