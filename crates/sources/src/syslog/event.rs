//! From a syslog message to the event that is appended (pure): header fields to event fields,
//! structured data and the original message under `metadata.syslog`, CEF/LEEF payloads to event
//! fields (the inverse of the CEF and LEEF formats, so auditrelay → syslog → auditrelay keeps
//! type, action, outcome, severity, actor, target, source and request id).

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::cef::{self, Cef};
use super::config::{SyslogSettings, TypeFrom};
use super::leef::{self, Leef};
use super::message::SyslogMessage;

/// The type of an event that holds a message that could not become an event of its own.
pub const MALFORMED_TYPE: &str = "syslog.malformed";
/// The type when neither the configuration nor the message names one.
pub const DEFAULT_TYPE: &str = "syslog.message";

/// Syslog severity (0 emergency … 7 debug) on the API's 0–10 scale (10 most severe).
pub fn severity_of(syslog_severity: u8) -> u8 {
    match syslog_severity {
        0 => 10,
        1 => 9,
        2 => 8,
        3 => 7,
        4 => 6,
        5 => 4,
        6 => 3,
        _ => 1,
    }
}

pub fn severity_name(syslog_severity: u8) -> &'static str {
    ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
        .get(usize::from(syslog_severity))
        .copied()
        .unwrap_or("debug")
}

/// The original message: text when it is UTF-8, base64 otherwise, so no byte is lost.
fn put_raw(meta: &mut Map<String, Value>, raw: &[u8]) {
    match std::str::from_utf8(raw) {
        Ok(text) => meta.insert("raw".into(), Value::String(text.to_owned())),
        Err(_) => meta.insert(
            "raw_base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        ),
    };
}

/// A name from the outside made into an event type: lowercased, other characters to `_`,
/// prefixed with `syslog.` when it has no dot. `None` when nothing usable is left.
pub fn type_from_name(name: &str) -> Option<String> {
    let mut t: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !t.contains('.') {
        t = format!("syslog.{t}");
    }
    t.truncate(128);
    auditrelay_core::ids::is_valid_event_type(&t).then_some(t)
}

fn put(obj: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        obj.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

fn valid_ip(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|v| v.parse::<IpAddr>().is_ok())
}

/// Event fields a payload gives (`actor`, `target`, …), before they are merged.
#[derive(Default)]
struct Fields {
    event_type: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    severity: Option<u8>,
    occurred_at: Option<String>,
    request_id: Option<String>,
    actor: Map<String, Value>,
    target: Map<String, Value>,
    source: Map<String, Value>,
}

fn outcome(v: Option<&String>) -> Option<String> {
    let v = v?.to_ascii_lowercase();
    matches!(v.as_str(), "success" | "failure" | "unknown").then_some(v)
}

fn from_ms(v: Option<&String>) -> Option<String> {
    let ms: i64 = v?.trim().parse().ok()?;
    Some(jiff::Timestamp::from_millisecond(ms).ok()?.to_string())
}

fn cef_fields(c: &Cef) -> Fields {
    let e = &c.extension;
    let mut f = Fields {
        event_type: auditrelay_core::ids::is_valid_event_type(&c.class_id).then(|| c.class_id.clone()),
        action: e.get("act").cloned(),
        outcome: outcome(e.get("outcome")),
        severity: cef::severity(&c.severity),
        occurred_at: from_ms(e.get("rt")),
        ..Fields::default()
    };
    put(&mut f.actor, "id", e.get("suid").map(String::as_str));
    // The encoder writes the name, or the id when there is no name, as `suser`.
    if e.get("suser") != e.get("suid") {
        put(&mut f.actor, "name", e.get("suser").map(String::as_str));
    }
    put(
        &mut f.actor,
        "ip_address",
        valid_ip(e.get("src")).or(valid_ip(e.get("c6a2"))),
    );
    put(
        &mut f.actor,
        "user_agent",
        e.get("requestClientApplication").map(String::as_str),
    );
    put(&mut f.target, "id", e.get("duid").map(String::as_str));
    put(&mut f.target, "name", e.get("duser").map(String::as_str));
    put(&mut f.source, "service", e.get("sourceServiceName").map(String::as_str));
    // Custom strings by their label, whichever slot they are in.
    for n in 1..=6 {
        let (Some(label), Some(value)) = (e.get(&format!("cs{n}Label")), e.get(&format!("cs{n}"))) else {
            continue;
        };
        let value = Some(value.as_str());
        match label.as_str() {
            "request_id" => f.request_id = value.map(str::to_owned),
            "target_type" => put(&mut f.target, "type", value),
            "actor_type" => put(&mut f.actor, "type", value),
            "actor_email" => put(&mut f.actor, "email", value),
            "source_instance" => put(&mut f.source, "instance", value),
            _ => {}
        }
    }
    f
}

/// LEEF `devTime` in the encoder's pattern (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`), or milliseconds.
fn leef_time(v: Option<&String>) -> Option<String> {
    let v = v?.trim();
    if let Some(t) = from_ms(Some(&v.to_owned())) {
        return Some(t);
    }
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", v)
        .ok()?
        .to_timestamp()
        .ok()
        .map(|t| t.to_string())
}

fn leef_fields(l: &Leef) -> Fields {
    let a = &l.attributes;
    let mut f = Fields {
        event_type: [Some(&l.event_id), a.get("cat")]
            .into_iter()
            .flatten()
            .find(|t| auditrelay_core::ids::is_valid_event_type(t))
            .cloned(),
        action: a.get("action").cloned(),
        outcome: outcome(a.get("outcome")),
        severity: a
            .get("sev")
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|s| *s <= 10),
        occurred_at: leef_time(a.get("devTime")),
        request_id: a.get("requestId").cloned(),
        ..Fields::default()
    };
    let id = a.get("actorId");
    put(&mut f.actor, "id", id.map(String::as_str));
    if a.get("usrName") != id {
        put(&mut f.actor, "name", a.get("usrName").map(String::as_str));
    }
    put(&mut f.actor, "type", a.get("actorType").map(String::as_str));
    put(&mut f.actor, "email", a.get("actorEmail").map(String::as_str));
    put(&mut f.actor, "ip_address", valid_ip(a.get("src")));
    put(&mut f.actor, "user_agent", a.get("userAgent").map(String::as_str));
    put(&mut f.target, "type", a.get("targetType").map(String::as_str));
    put(&mut f.target, "id", a.get("targetId").map(String::as_str));
    put(&mut f.target, "name", a.get("targetName").map(String::as_str));
    put(&mut f.source, "service", a.get("sourceService").map(String::as_str));
    put(&mut f.source, "version", a.get("sourceVersion").map(String::as_str));
    put(&mut f.source, "instance", a.get("sourceInstance").map(String::as_str));
    f
}

/// The event for one parsed message. `peer` is the sender's address.
pub fn to_event(m: &SyslogMessage, raw: &[u8], peer: &str, settings: &SyslogSettings) -> Value {
    let mut syslog = Map::new();
    put_raw(&mut syslog, raw);
    syslog.insert("protocol".into(), json!(m.protocol.name()));
    syslog.insert("facility".into(), json!(m.facility));
    syslog.insert("severity".into(), json!(m.severity));
    syslog.insert("severity_name".into(), json!(severity_name(m.severity)));
    put(&mut syslog, "timestamp", m.timestamp.as_deref());
    put(&mut syslog, "hostname", m.hostname.as_deref());
    put(&mut syslog, "app_name", m.app_name.as_deref());
    put(&mut syslog, "procid", m.procid.as_deref());
    put(&mut syslog, "msgid", m.msgid.as_deref());
    if !m.structured_data.is_empty() {
        syslog.insert("structured_data".into(), json!(m.structured_data));
    }
    syslog.insert("message".into(), json!(m.message));
    syslog.insert("peer".into(), json!(peer));

    let mut metadata = Map::new();
    let mut fields = Fields::default();
    if settings.parse_payload {
        if let Some(parsed) = cef::parse(&m.message) {
            match parsed {
                Ok(c) => {
                    fields = cef_fields(&c);
                    metadata.insert(
                        "cef".into(),
                        json!({
                            "version": c.version, "vendor": c.vendor, "product": c.product,
                            "product_version": c.product_version, "class_id": c.class_id,
                            "name": c.name, "severity": c.severity, "extension": c.extension,
                        }),
                    );
                }
                Err(e) => {
                    syslog.insert("payload_error".into(), json!(e));
                }
            }
        } else if let Some(parsed) = leef::parse(&m.message) {
            match parsed {
                Ok(l) => {
                    fields = leef_fields(&l);
                    metadata.insert(
                        "leef".into(),
                        json!({
                            "version": l.version, "vendor": l.vendor, "product": l.product,
                            "product_version": l.product_version, "event_id": l.event_id,
                            "attributes": l.attributes,
                        }),
                    );
                }
                Err(e) => {
                    syslog.insert("payload_error".into(), json!(e));
                }
            }
        }
    }
    metadata.insert("syslog".into(), Value::Object(syslog));

    let event_type = match &settings.type_from {
        TypeFrom::Fixed(t) => t.clone(),
        from => fields
            .event_type
            .clone()
            .or_else(|| {
                let name = match from {
                    TypeFrom::AppName => m.app_name.as_deref(),
                    _ => m.msgid.as_deref(),
                };
                name.and_then(type_from_name)
            })
            .unwrap_or_else(|| DEFAULT_TYPE.to_owned()),
    };
    let mut event = Map::new();
    event.insert("type".into(), json!(event_type));
    if let Some(t) = fields.occurred_at.or_else(|| m.time.map(|t| t.to_string())) {
        event.insert("occurred_at".into(), json!(t));
    }
    event.insert(
        "severity".into(),
        json!(fields.severity.unwrap_or_else(|| severity_of(m.severity))),
    );
    put(&mut event, "action", fields.action.as_deref());
    put(&mut event, "outcome", fields.outcome.as_deref());
    put(&mut event, "request_id", fields.request_id.as_deref());
    if !fields.actor.is_empty() {
        event.insert("actor".into(), Value::Object(fields.actor));
    }
    if !fields.target.is_empty() {
        event.insert("target".into(), Value::Object(fields.target));
    }
    let mut source = fields.source;
    if !source.contains_key("service") {
        put(&mut source, "service", m.app_name.as_deref());
    }
    if !source.contains_key("instance") {
        put(&mut source, "instance", m.hostname.as_deref());
    }
    if !source.is_empty() {
        event.insert("source".into(), Value::Object(source));
    }
    event.insert("metadata".into(), Value::Object(metadata));
    Value::Object(event)
}

/// The event for a message that could not become one: its bytes (text, or base64 when not UTF-8
/// or when the text would not fit the event limit) and why.
pub fn malformed(raw: &[u8], error: &str, peer: &str, max_event_bytes: usize) -> Value {
    let mut syslog = Map::new();
    put_raw(&mut syslog, raw);
    syslog.insert("error".into(), json!(error));
    syslog.insert("peer".into(), json!(peer));
    let event = json!({"type": MALFORMED_TYPE, "severity": 5, "metadata": {"syslog": syslog}});
    // Escaping can grow text up to sixfold (control characters); base64 grows it by a third.
    let too_big = serde_json::to_vec(&event).map_or(true, |v| v.len() > max_event_bytes);
    if too_big && syslog.contains_key("raw") {
        let mut syslog = Map::new();
        syslog.insert(
            "raw_base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        );
        syslog.insert("error".into(), json!(error));
        syslog.insert("peer".into(), json!(peer));
        return json!({"type": MALFORMED_TYPE, "severity": 5, "metadata": {"syslog": syslog}});
    }
    event
}

#[cfg(test)]
mod tests;
