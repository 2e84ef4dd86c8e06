//! The logs-intake requests as pure functions (config + events + now → URL, headers, body), so
//! tests can snapshot them and the sink only sends.
//!
//! Datadog's limits per request: at most 1,000 entries and 5 MB of uncompressed JSON, and 1 MB
//! per entry. One batch becomes as many requests as it needs; an entry over 1 MB is truncated
//! here, visibly, rather than silently by Datadog.

use std::io::Write;
use std::ops::Range;

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatError};
use flate2::write::GzEncoder;
use flate2::Compression;
use jiff::{SignedDuration, Timestamp};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::config::{ApiKey, DatadogSettings};

/// At most this many entries per request (Datadog: 1,000).
pub const MAX_ENTRIES: usize = 1000;
/// At most this many bytes of uncompressed JSON per request (Datadog: 5 MB; decimal, the
/// stricter reading).
pub const MAX_BODY_BYTES: usize = 5_000_000;
/// At most this many bytes per serialised entry (Datadog: 1 MB); larger ones are truncated.
pub const MAX_ENTRY_BYTES: usize = 1_000_000;
/// Ends a truncated `message`, so the cut shows where the log is read.
pub const TRUNCATION_SUFFIX: &str = "…[truncated by auditrelay]";
/// Datadog takes log timestamps up to 18 h old and 2 h ahead; outside that window the sink sends
/// none (Datadog then uses the arrival time) rather than have the log dropped. Ten minutes of
/// margin cover the time between building a request and Datadog reading it.
pub const TIMESTAMP_MAX_AGE: SignedDuration = SignedDuration::from_secs(18 * 3600 - 600);
pub const TIMESTAMP_MAX_AHEAD: SignedDuration = SignedDuration::from_secs(2 * 3600 - 600);

/// One POST, ready to send. Debug output redacts the API key (its header value is sensitive).
#[derive(Debug, Clone)]
pub(crate) struct WireRequest {
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The gzipped JSON array.
    pub body: Vec<u8>,
}

/// One request's worth of the batch: which events, and their entries as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub events: Range<usize>,
    pub json: Vec<u8>,
}

/// An event the sink's format could not encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodeFailure {
    pub offset: u64,
    pub error: FormatError,
}

/// The batch as JSON arrays within Datadog's limits, in event order.
pub(crate) fn chunks(
    cfg: &DatadogSettings,
    format: Format,
    events: &[StoredEvent],
    now: Timestamp,
) -> Result<Vec<Chunk>, EncodeFailure> {
    let mut chunks = Vec::new();
    let mut json = Vec::new();
    let mut start = 0;
    for (i, event) in events.iter().enumerate() {
        let record = encode(format, event, &cfg.options).map_err(|error| EncodeFailure {
            offset: event.offset,
            error,
        })?;
        let entry = entry_bytes(cfg, format, event, record, now);
        // `[` + entries + `,` between + `]`.
        let full = i > start && (i - start >= MAX_ENTRIES || json.len() + 1 + entry.len() + 1 > MAX_BODY_BYTES);
        if full {
            json.push(b']');
            chunks.push(Chunk {
                events: start..i,
                json: std::mem::take(&mut json),
            });
            start = i;
        }
        json.push(if i == start { b'[' } else { b',' });
        json.extend_from_slice(&entry);
    }
    if !json.is_empty() {
        json.push(b']');
        chunks.push(Chunk {
            events: start..events.len(),
            json,
        });
    }
    Ok(chunks)
}

/// `POST` to the intake: headers, and the chunk's JSON gzipped.
pub(crate) fn request(cfg: &DatadogSettings, api_key: &ApiKey, chunk: &Chunk) -> std::io::Result<WireRequest> {
    let mut gz = GzEncoder::new(Vec::with_capacity(chunk.json.len() / 4), Compression::default());
    gz.write_all(&chunk.json)?;
    Ok(WireRequest {
        url: cfg.url.clone(),
        headers: vec![
            (HeaderName::from_static("dd-api-key"), api_key.header()),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
        ],
        body: gz.finish()?,
    })
}

/// `message`: the record itself when it is a JSON object (Datadog turns its keys into log
/// attributes), else the record as a string (CEF, LEEF lines).
enum Message {
    Json(Box<RawValue>),
    Text(String),
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Json(raw) => raw.serialize(s),
            Message::Text(text) => s.serialize_str(text),
        }
    }
}

/// One log entry. Reserved attributes first (`ddsource`, `ddtags`, `hostname`, `service`,
/// `status`, `timestamp`), then auditrelay's own, then the record.
#[derive(Serialize)]
struct Entry<'a> {
    ddsource: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ddtags: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    tenant_id: &'a str,
    event_id: &'a str,
    event_type: &'a str,
    message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    auditrelay_truncated: Option<bool>,
    /// The record's size in bytes before truncation.
    #[serde(skip_serializing_if = "Option::is_none")]
    auditrelay_original_bytes: Option<usize>,
}

impl Entry<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        // Plain strings, numbers and already-valid JSON: serialising into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct Facts {
    occurred_at: Option<String>,
    severity: Option<i64>,
}

fn entry_bytes(cfg: &DatadogSettings, format: Format, event: &StoredEvent, record: Vec<u8>, now: Timestamp) -> Vec<u8> {
    let facts: Option<Facts> = serde_json::from_str(&event.body).ok();
    let (occurred_at, severity) = facts.map_or((None, None), |f| (f.occurred_at, f.severity));
    let text = String::from_utf8(record).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let message = if format.is_json() {
        // Parsed to prove it is one JSON value; one that is not (never expected) still goes, as
        // a string, rather than breaking the whole array.
        match serde_json::from_str::<Box<RawValue>>(&text) {
            Ok(raw) => Message::Json(raw),
            Err(_) => Message::Text(text.clone()),
        }
    } else {
        Message::Text(text.clone())
    };
    let mut entry = Entry {
        ddsource: &cfg.ddsource,
        ddtags: cfg.ddtags.as_deref(),
        hostname: cfg.hostname.as_deref(),
        service: cfg.service.as_deref(),
        status: severity.map(status),
        timestamp: occurred_at.as_deref().and_then(|t| timestamp(t, now)),
        tenant_id: &event.tenant_id,
        event_id: &event.id,
        event_type: &event.event_type,
        message,
        auditrelay_truncated: None,
        auditrelay_original_bytes: None,
    };
    let bytes = entry.to_bytes();
    if bytes.len() <= MAX_ENTRY_BYTES {
        return bytes;
    }
    // Too big for Datadog: keep the head of the record as a string, mark the cut, keep the size.
    entry.auditrelay_truncated = Some(true);
    entry.auditrelay_original_bytes = Some(text.len());
    entry.message = Message::Text(String::new());
    let room = MAX_ENTRY_BYTES.saturating_sub(entry.to_bytes().len() + escaped_len(TRUNCATION_SUFFIX));
    let mut cut = prefix_within(&text, room).to_owned();
    cut.push_str(TRUNCATION_SUFFIX);
    entry.message = Message::Text(cut);
    entry.to_bytes()
}

/// The longest prefix of `text` whose JSON-escaped form fits in `room` bytes (cut on a
/// character boundary).
fn prefix_within(text: &str, room: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += escaped_char_len(c);
        if used > room {
            return &text[..i];
        }
    }
    text
}

/// Bytes serde_json writes for `s` inside a string literal (quotes excluded).
fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Datadog's `status` from the event's 0–10 severity (CEF's bands: 0–3 low, 4–6 medium, 7–8
/// high, 9–10 very high).
fn status(severity: i64) -> &'static str {
    match severity {
        i64::MIN..=3 => "info",
        4..=6 => "notice",
        7..=8 => "error",
        _ => "critical",
    }
}

/// `occurred_at` as epoch milliseconds, when Datadog will take it (see [`TIMESTAMP_MAX_AGE`]).
fn timestamp(occurred_at: &str, now: Timestamp) -> Option<i64> {
    let at = auditrelay_core::time::parse_rfc3339(occurred_at)?;
    let age = now.duration_since(at);
    (age <= TIMESTAMP_MAX_AGE && -age <= TIMESTAMP_MAX_AHEAD).then(|| at.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadog::config::{parse_api_key, parse_config};
    use crate::Secrets;
    use serde_json::{json, Value};

    fn event(offset: u64, occurred_at: &str, severity: i64, note: &str) -> StoredEvent {
        let id = format!("evt_{offset}");
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: id.clone(),
            event_type: "user.login".into(),
            body: json!({"id": id, "tenant_id": "acme", "type": "user.login", "occurred_at": occurred_at,
                         "received_at": occurred_at, "severity": severity, "metadata": {"note": note}})
            .to_string(),
            chain: None,
        }
    }

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn cfg() -> DatadogSettings {
        parse_config(&json!({"url": "http://127.0.0.1:9/api/v2/logs", "service": "billing",
                             "ddtags": "env:prod", "hostname": "relay-1"}))
        .unwrap()
    }

    #[test]
    fn request_snapshot() {
        let events = [
            event(1, "2026-06-01T10:13:20.123Z", 2, "é \"q\""),
            event(2, "2026-05-01T00:00:00Z", 9, "too old for a timestamp"),
        ];
        let chunks = chunks(&cfg(), Format::Json, &events, now()).unwrap();
        assert_eq!(chunks.len(), 1);
        let key = parse_api_key(&Secrets::from([("api_key".to_owned(), "dd-test-key".to_owned())])).unwrap();
        let req = request(&cfg(), &key, &chunks[0]).unwrap();
        let mut text = format!("POST {}\n", req.url);
        for (name, value) in &req.headers {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
        }
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&req.body[..]), &mut plain).unwrap();
        assert_eq!(plain, chunks[0].json, "the body is the chunk, gzipped");
        text.push('\n');
        text.push_str(std::str::from_utf8(&plain).unwrap());
        insta::assert_snapshot!(text);
    }

    #[test]
    fn timestamp_window() {
        let at = |s: &str| timestamp(s, now());
        assert_eq!(at("2026-06-01T11:59:59.500Z"), Some(1780315199500));
        assert!(at("2026-05-31T18:10:01Z").is_some(), "17 h 50 min ago");
        assert_eq!(at("2026-05-31T18:09:59Z"), None, "just past the margin");
        assert!(at("2026-06-01T13:50:00Z").is_some());
        assert_eq!(at("2026-06-01T13:50:01Z"), None);
        assert_eq!(at("yesterday"), None);
    }

    #[test]
    fn status_bands() {
        let got: Vec<&str> = (0..=10).map(status).collect();
        assert_eq!(
            got,
            ["info", "info", "info", "info", "notice", "notice", "notice", "error", "error", "critical", "critical"]
        );
    }

    #[test]
    fn splits_by_count_and_by_bytes() {
        let events: Vec<StoredEvent> = (1..=2500).map(|o| event(o, "2026-06-01T10:00:00Z", 5, "x")).collect();
        let c = chunks(&cfg(), Format::Json, &events, now()).unwrap();
        let ranges: Vec<Range<usize>> = c.iter().map(|c| c.events.clone()).collect();
        assert_eq!(ranges, [0..1000, 1000..2000, 2000..2500]);
        for chunk in &c {
            let v: Vec<Value> = serde_json::from_slice(&chunk.json).unwrap();
            assert_eq!(v.len(), chunk.events.len());
        }

        // ~600 KB entries: 8 fit in 5 MB, the 9th opens a new request.
        let big = "b".repeat(600_000);
        let events: Vec<StoredEvent> = (1..=10).map(|o| event(o, "2026-06-01T10:00:00Z", 5, &big)).collect();
        let c = chunks(&cfg(), Format::Json, &events, now()).unwrap();
        assert_eq!(c.iter().map(|c| c.events.clone()).collect::<Vec<_>>(), [0..8, 8..10]);
        assert!(c.iter().all(|c| c.json.len() <= MAX_BODY_BYTES));
        assert!(chunks(&cfg(), Format::Json, &[], now()).unwrap().is_empty());
    }

    #[test]
    fn oversized_entries_are_truncated_visibly() {
        // Quotes and control characters escape to more bytes than they take: the cut counts them.
        let note = "\"\u{1}é".repeat(400_000);
        let e = event(7, "2026-06-01T10:00:00Z", 5, &note);
        let record_len = e.to_json().len();
        let c = chunks(&cfg(), Format::Json, &[e], now()).unwrap();
        let json = &c[0].json;
        let v: Vec<Value> = serde_json::from_slice(json).unwrap();
        let entry = &v[0];
        assert!(json.len() - 2 <= MAX_ENTRY_BYTES, "{}", json.len());
        assert!(
            json.len() - 2 > MAX_ENTRY_BYTES - 8,
            "the cut uses the room: {}",
            json.len()
        );
        assert_eq!(entry["auditrelay_truncated"], true);
        assert_eq!(entry["auditrelay_original_bytes"], record_len);
        assert_eq!(entry["event_id"], "evt_7");
        let message = entry["message"].as_str().unwrap();
        assert!(message.starts_with(r#"{"offset":7,"id":"evt_7""#), "{}", &message[..40]);
        assert!(message.ends_with(TRUNCATION_SUFFIX));
        // A small entry is untouched.
        let c = chunks(&cfg(), Format::Json, &[event(8, "2026-06-01T10:00:00Z", 5, "s")], now()).unwrap();
        let v: Vec<Value> = serde_json::from_slice(&c[0].json).unwrap();
        assert!(v[0].get("auditrelay_truncated").is_none());
        assert_eq!(v[0]["message"]["metadata"]["note"], "s");
    }

    #[test]
    fn text_records_are_strings() {
        let e = event(3, "2026-06-01T10:00:00Z", 5, "x");
        let bytes = entry_bytes(&cfg(), Format::Leef, &e, b"LEEF:2.0|a|b|1|x|^|k=v".to_vec(), now());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["message"], "LEEF:2.0|a|b|1|x|^|k=v");
    }
}
