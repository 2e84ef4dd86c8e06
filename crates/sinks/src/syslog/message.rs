//! One event → one RFC 5424 message, and RFC 6587 octet-counting framing. Pure functions, so the
//! exact bytes are unit-tested.

use auditrelay_core::StoredEvent;
use jiff::Timestamp;
use serde::Deserialize;

/// The structured-data element carrying the event's identity (32473 is the enterprise number
/// RFC 5424 reserves for examples/documentation; a private SD-ID needs `@<number>`).
pub const SD_ID: &str = "audit@32473";
/// RFC 5424 limits MSGID to 32 printable ASCII characters.
pub const MAX_MSGID: usize = 32;
/// RFC 5424 limits HOSTNAME to 255 printable ASCII characters.
pub const MAX_HOSTNAME: usize = 255;

/// The per-sink part of every message's header.
#[derive(Debug, Clone)]
pub struct MessageHeader {
    /// 0–23.
    pub facility: u8,
    /// Printable ASCII, or `-`.
    pub hostname: String,
    /// Printable ASCII, ≤ 48.
    pub app_name: String,
}

#[derive(Deserialize)]
struct Facts {
    occurred_at: Option<String>,
    severity: Option<i64>,
}

/// The syslog severity (0 emergency … 7 debug) for the event's 0–10 severity, using CEF's bands
/// (0–3 low, 4–6 medium, 7–8 high, 9–10 very high). Emergency (0) is never used: it means "the
/// system is unusable", which no audit event says about the receiver's host. No severity →
/// informational (6).
pub fn severity(event_severity: Option<i64>) -> u8 {
    match event_severity {
        None => 6,
        Some(i64::MIN..=0) => 7,
        Some(1..=3) => 6,
        Some(4..=5) => 5,
        Some(6) => 4,
        Some(7..=8) => 3,
        Some(9) => 2,
        Some(_) => 1,
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [audit@32473 tenant="…" id="…" offset="…"] MSG`.
/// TIMESTAMP is `occurred_at` (UTC, at most microseconds, as RFC 5424 allows), or `-` when the
/// event has none; MSGID is the event type when it fits RFC 5424's rules, else `-` (the type is
/// still in the record).
pub fn message(header: &MessageHeader, event: &StoredEvent, record: &[u8]) -> Vec<u8> {
    let facts: Option<Facts> = serde_json::from_str(&event.body).ok();
    let (occurred_at, sev) = facts.map_or((None, None), |f| (f.occurred_at, f.severity));
    let pri = u16::from(header.facility) * 8 + u16::from(severity(sev));
    let timestamp = occurred_at
        .as_deref()
        .and_then(auditrelay_core::time::parse_rfc3339)
        .map(rfc5424_timestamp)
        .unwrap_or_else(|| "-".to_owned());
    let msgid = if is_header_token(&event.event_type, MAX_MSGID) {
        event.event_type.as_str()
    } else {
        "-"
    };
    let mut out = Vec::with_capacity(record.len() + 160);
    out.extend_from_slice(
        format!(
            "<{pri}>1 {timestamp} {} {} - {msgid} [{SD_ID} tenant=\"",
            header.hostname, header.app_name
        )
        .as_bytes(),
    );
    sd_escape(&mut out, &event.tenant_id);
    out.extend_from_slice(b"\" id=\"");
    sd_escape(&mut out, &event.id);
    out.extend_from_slice(format!("\" offset=\"{}\"] ", event.offset).as_bytes());
    out.extend_from_slice(record);
    out
}

/// RFC 6587 octet counting: `<byte length> <message>`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
    out
}

/// A header field RFC 5424 accepts as is: 1..=max printable US-ASCII characters (33–126).
pub(crate) fn is_header_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
}

/// PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash.
fn sd_escape(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// RFC 5424 allows at most 6 fractional digits: nanoseconds are truncated to microseconds.
fn rfc5424_timestamp(ts: Timestamp) -> String {
    let micros = Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts);
    auditrelay_core::time::format_timestamp(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: &str, id: &str, ty: &str, body: &str) -> StoredEvent {
        StoredEvent {
            tenant_id: tenant.to_owned(),
            offset: 42,
            id: id.to_owned(),
            event_type: ty.to_owned(),
            body: body.to_owned(),
            chain: None,
        }
    }

    fn header() -> MessageHeader {
        MessageHeader {
            facility: 16,
            hostname: "relay01".to_owned(),
            app_name: "auditrelay".to_owned(),
        }
    }

    #[test]
    fn exact_message_and_frame() {
        let ev = event(
            "acme",
            "evt_1",
            "user.login",
            r#"{"id":"evt_1","occurred_at":"2026-06-01T10:13:20.123456789Z","severity":7}"#,
        );
        let msg = message(&header(), &ev, b"CEF:0|a|b|1|user.login|user.login|7|x=y");
        // local0 (16) * 8 + error (3) = 131.
        let expected = "<131>1 2026-06-01T10:13:20.123456Z relay01 auditrelay - user.login \
                        [audit@32473 tenant=\"acme\" id=\"evt_1\" offset=\"42\"] CEF:0|a|b|1|user.login|user.login|7|x=y";
        assert_eq!(String::from_utf8(msg.clone()).unwrap(), expected);
        let framed = frame(&msg);
        assert_eq!(framed, format!("{} {expected}", expected.len()).into_bytes());
    }

    #[test]
    fn sd_values_escaped_and_bad_msgid_is_nil() {
        let ev = event(r#"t"\]x"#, "id ü", "has space", r#"{"id":"x"}"#);
        let msg = String::from_utf8(message(&header(), &ev, b"{}")).unwrap();
        assert_eq!(
            msg,
            "<134>1 - relay01 auditrelay - - [audit@32473 tenant=\"t\\\"\\\\\\]x\" id=\"id ü\" offset=\"42\"] {}"
        );
        let long = "a".repeat(33);
        let ev = event("t", "i", &long, "{}");
        assert!(String::from_utf8(message(&header(), &ev, b""))
            .unwrap()
            .contains(" - - [audit"));
    }

    #[test]
    fn severity_bands() {
        let got: Vec<u8> = (-1..=11).map(|s| severity(Some(s))).collect();
        assert_eq!(got, [7, 7, 6, 6, 6, 5, 5, 4, 3, 3, 2, 1, 1]);
        assert_eq!(severity(None), 6);
    }
}
