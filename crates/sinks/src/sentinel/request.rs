//! Pure request building: events → records → JSON-array bodies within the per-call limit, and
//! the exact token, Logs Ingestion and Data Collector requests. No I/O, no clock: the caller
//! passes the time, so every request can be snapshot-tested.

use std::borrow::Cow;

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use sha2::Sha256;

use super::config::{decode_shared_key, DataCollectorSettings, LogsIngestionSettings};
use crate::ConfigError;

/// The Logs Ingestion API's limit per call. 1,000,000 bytes rather than 1 MiB: the limit Azure's
/// own SDKs split at (`LogsIngestionClient.SingleUploadThreshold`).
pub const MAX_CALL_BYTES: usize = 1_000_000;
/// The Data Collector API's limit per post (30 MB), kept for compatible receivers.
pub const DATA_COLLECTOR_MAX_POST_BYTES: usize = 30 * 1024 * 1024;

/// The column every Azure Monitor table has; the Data Collector API is told its name with the
/// `time-generated-field` header.
pub const TIME_GENERATED: &str = "TimeGenerated";

/// A request ready to send (always a POST).
#[derive(Debug, Clone)]
pub(crate) struct WireRequest {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why an event has no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The format cannot encode at all (not built yet): the sink's configuration is at fault,
    /// not this event.
    Format(String),
    /// This event alone cannot be sent.
    Event(String),
}

/// The times a canonical event carries (ignoring every other member).
#[derive(Deserialize)]
struct EventTimes<'a> {
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    received_at: Option<Cow<'a, str>>,
}

/// The `TimeGenerated` of an event: its `occurred_at` (canonical UTC RFC 3339), else its
/// `received_at`; `None` if neither parses (the canonical body always has both).
pub(crate) fn time_generated(event: &StoredEvent) -> Option<String> {
    let times: EventTimes<'_> = serde_json::from_str(&event.body).ok()?;
    [times.occurred_at, times.received_at]
        .into_iter()
        .flatten()
        .find_map(|t| auditrelay_core::time::parse_rfc3339(&t))
        .map(auditrelay_core::time::format_timestamp)
}

/// One event as one record: the format's JSON object with `TimeGenerated` spliced in as its
/// first member (the rest of the record's bytes untouched).
pub(crate) fn record(format: Format, event: &StoredEvent, options: &FormatOptions) -> Result<Vec<u8>, RecordError> {
    // Every format error is the format's own (not built), the same for every event.
    let encoded = encode(format, event, options).map_err(|e| RecordError::Format(e.to_string()))?;
    with_time_generated(&encoded, time_generated(event).as_deref())
        .map_err(|m| RecordError::Event(format!("event {}: {m}", event.offset)))
}

/// Splices `"TimeGenerated":"<time>"` in as the object's first member. The json and ocsf
/// records never have a top-level `TimeGenerated` of their own (their top-level keys are fixed),
/// so no duplicate key can arise.
pub(crate) fn with_time_generated(record: &[u8], time: Option<&str>) -> Result<Vec<u8>, String> {
    let start = record
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| record[i] == b'{')
        .ok_or_else(|| "the record is not a JSON object".to_owned())?;
    let Some(time) = time else {
        return Ok(record[start..].to_vec());
    };
    let rest = &record[start + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(record.len() + time.len() + 20);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(TIME_GENERATED.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(serde_json::Value::from(time).to_string().as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// One call's worth of records: a JSON array body and the batch indices of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub indices: Vec<usize>,
    pub body: Vec<u8>,
}

/// Packs `(index, record)` pairs, in order, into JSON-array bodies of at most `limit` bytes
/// each. A record too big for any call is returned as rejected, with the reason.
pub(crate) fn pack(records: Vec<(usize, Vec<u8>)>, limit: usize) -> (Vec<Call>, Vec<(usize, String)>) {
    let mut calls = Vec::new();
    let mut rejected = Vec::new();
    let mut current = Call {
        indices: Vec::new(),
        body: Vec::new(),
    };
    for (index, record) in records {
        // `[` + record + `]`.
        if record.len() + 2 > limit {
            rejected.push((
                index,
                format!(
                    "the record is {} bytes; a call to the receiver takes at most {limit} bytes",
                    record.len()
                ),
            ));
            continue;
        }
        // Adding it costs a comma (or the opening bracket) plus the closing bracket.
        if !current.indices.is_empty() && current.body.len() + 1 + record.len() + 1 > limit {
            current.body.push(b']');
            calls.push(std::mem::replace(
                &mut current,
                Call {
                    indices: Vec::new(),
                    body: Vec::new(),
                },
            ));
        }
        current.body.push(if current.indices.is_empty() { b'[' } else { b',' });
        current.body.extend_from_slice(&record);
        current.indices.push(index);
    }
    if !current.indices.is_empty() {
        current.body.push(b']');
        calls.push(current);
    }
    (calls, rejected)
}

/// The OAuth2 client-credentials request to Microsoft Entra ID (form-urlencoded, in the order
/// the v2.0 endpoint documents).
pub(crate) fn token_request(config: &LogsIngestionSettings, client_secret: &str) -> WireRequest {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &config.client_id)
        .append_pair("client_secret", client_secret)
        .append_pair("scope", &config.scope)
        .append_pair("grant_type", "client_credentials")
        .finish();
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    WireRequest {
        url: config.token_url.clone(),
        headers,
        body: body.into_bytes(),
    }
}

/// One Logs Ingestion call: the array of records to the DCR's stream, with the bearer token.
pub(crate) fn ingestion_request(config: &LogsIngestionSettings, bearer: &HeaderValue, body: Vec<u8>) -> WireRequest {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, bearer.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    WireRequest {
        url: config.ingestion_url.clone(),
        headers,
        body,
    }
}

/// `x-ms-date`: RFC 1123 in GMT, e.g. `Mon, 04 Apr 2016 08:00:00 GMT`.
pub(crate) fn rfc1123(at: Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The Data Collector signature: base64(HMAC-SHA256(key, string-to-sign)) with string-to-sign
/// `POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs`. The resource is
/// always `/api/logs`, whatever `url` says: that is what the receiver signs.
pub(crate) fn sign_with_key(key: &[u8], content_length: usize, date: &str) -> String {
    let string_to_sign = format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs");
    // HMAC accepts keys of any length, so this cannot fail; handled rather than unwrapped.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The Data Collector API's SharedKey signature for a body of `content_length` bytes sent with
/// `x-ms-date: {date}`, from the workspace key as Azure shows it (base64). A key that is not
/// base64 is a `ConfigError` on `secrets.shared_key` (the value is never echoed).
pub fn shared_key_signature(shared_key: &str, content_length: usize, date: &str) -> Result<String, ConfigError> {
    let key = decode_shared_key(shared_key).map_err(|m| ConfigError::new("secrets.shared_key", m))?;
    Ok(sign_with_key(&key, content_length, date))
}

/// One Data Collector post, signed for `at`.
pub(crate) fn data_collector_request(
    config: &DataCollectorSettings,
    key: &[u8],
    body: Vec<u8>,
    at: Timestamp,
) -> Result<WireRequest, String> {
    let date = rfc1123(at);
    let signature = sign_with_key(key, body.len(), &date);
    let value = |s: String| HeaderValue::from_str(&s).map_err(|_| "a header value is not valid".to_owned());
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static("log-type"), value(config.log_type.clone())?);
    headers.insert(HeaderName::from_static("x-ms-date"), value(date)?);
    headers.insert(
        HeaderName::from_static("time-generated-field"),
        HeaderValue::from_static(TIME_GENERATED),
    );
    headers.insert(
        AUTHORIZATION,
        value(format!("SharedKey {}:{signature}", config.workspace_id))?,
    );
    Ok(WireRequest {
        url: config.url.clone(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentinel::config::{parse_config, ModeConfig};
    use serde_json::json;

    fn event(offset: u64, body: &str) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: format!("ev{offset}"),
            event_type: "user.login".into(),
            body: body.into(),
            chain: None,
        }
    }

    #[test]
    fn protocols_md_test_vector() {
        let sig = shared_key_signature(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            br#"[{"a":1}]"#.len(),
            "Mon, 04 Apr 2016 08:00:00 GMT",
        )
        .unwrap();
        assert_eq!(sig, "i7HKsWseN3qSgBNyDUqE2NKAzSBu+jY8FGM/4iBdNcQ=");
        let e = shared_key_signature("not base64 hunter2", 9, "x").unwrap_err();
        assert_eq!(e.field, "secrets.shared_key");
        assert!(!e.message.contains("hunter2"));
    }

    #[test]
    fn rfc1123_dates() {
        let at: Timestamp = "2016-04-04T08:00:00Z".parse().unwrap();
        assert_eq!(rfc1123(at), "Mon, 04 Apr 2016 08:00:00 GMT");
        let at: Timestamp = "2026-11-05T17:03:09.999+01:00".parse().unwrap();
        assert_eq!(rfc1123(at), "Thu, 05 Nov 2026 16:03:09 GMT");
    }

    #[test]
    fn data_collector_request_headers() {
        let parsed =
            parse_config(&json!({"mode": "data_collector", "workspace_id": "ws-1", "log_type": "Audit"})).unwrap();
        let ModeConfig::DataCollector(config) = parsed.mode else {
            panic!("mode")
        };
        let key = b"0123456789abcdef0123456789abcdef";
        let at: Timestamp = "2016-04-04T08:00:00Z".parse().unwrap();
        let req = data_collector_request(&config, key, br#"[{"a":1}]"#.to_vec(), at).unwrap();
        assert_eq!(
            req.url.as_str(),
            "https://ws-1.ods.opinsights.azure.com/api/logs?api-version=2016-04-01"
        );
        let h = |n: &str| req.headers[n].to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("log-type"), "Audit");
        assert_eq!(h("x-ms-date"), "Mon, 04 Apr 2016 08:00:00 GMT");
        assert_eq!(h("time-generated-field"), "TimeGenerated");
        assert_eq!(
            h("authorization"),
            "SharedKey ws-1:i7HKsWseN3qSgBNyDUqE2NKAzSBu+jY8FGM/4iBdNcQ="
        );
    }

    #[test]
    fn time_generated_is_spliced_first() {
        assert_eq!(
            with_time_generated(br#"{"a":1}"#, Some("2026-06-01T10:13:20.000Z")).unwrap(),
            br#"{"TimeGenerated":"2026-06-01T10:13:20.000Z","a":1}"#
        );
        assert_eq!(
            with_time_generated(b" { } ", Some("t")).unwrap(),
            br#"{"TimeGenerated":"t" } "#
        );
        assert_eq!(with_time_generated(br#"{"a":1}"#, None).unwrap(), br#"{"a":1}"#);
        assert!(with_time_generated(b"CEF:0|x", Some("t")).is_err());
        assert!(with_time_generated(b"", Some("t")).is_err());
    }

    #[test]
    fn time_generated_comes_from_occurred_at() {
        let e = event(
            1,
            r#"{"id":"a","type":"x","occurred_at":"2026-06-01T10:13:20.000Z","received_at":"2026-06-01T10:13:21.000Z"}"#,
        );
        assert_eq!(time_generated(&e).as_deref(), Some("2026-06-01T10:13:20.000Z"));
        let e = event(
            1,
            r#"{"id":"a","occurred_at":"yesterday","received_at":"2026-06-01T10:13:21Z"}"#,
        );
        assert_eq!(time_generated(&e).as_deref(), Some("2026-06-01T10:13:21.000Z"));
        assert_eq!(time_generated(&event(1, r#"{"id":"a"}"#)), None);
        let rec = record(
            Format::Json,
            &event(7, r#"{"id":"a","occurred_at":"2026-06-01T10:13:20.000Z"}"#),
            &FormatOptions::default(),
        )
        .unwrap();
        assert_eq!(
            rec,
            br#"{"TimeGenerated":"2026-06-01T10:13:20.000Z","offset":7,"id":"a","occurred_at":"2026-06-01T10:13:20.000Z"}"#
        );
        // CEF is text, not a JSON object: either not built yet (a configuration fault) or refused
        // per event, never sent.
        let cef = record(Format::Cef, &event(7, r#"{"id":"a"}"#), &FormatOptions::default());
        assert!(cef.is_err(), "{cef:?}");
    }

    #[test]
    fn packing_respects_the_limit_and_order() {
        let rec = |i: usize, n: usize| (i, vec![b'x'; n]);
        // limit 10: `[xxx,xxx]` is 9 bytes, a third record does not fit.
        let (calls, rejected) = pack(vec![rec(0, 3), rec(1, 3), rec(2, 3), rec(3, 9), rec(4, 8)], 10);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 3);
        assert!(rejected[0].1.contains("9 bytes"), "{}", rejected[0].1);
        let shapes: Vec<(Vec<usize>, String)> = calls
            .iter()
            .map(|c| (c.indices.clone(), String::from_utf8(c.body.clone()).unwrap()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (vec![0, 1], "[xxx,xxx]".to_owned()),
                (vec![2], "[xxx]".to_owned()),
                (vec![4], "[xxxxxxxx]".to_owned()),
            ]
        );
        assert!(calls.iter().all(|c| c.body.len() <= 10));
        // Exactly at the limit fits.
        let (calls, rejected) = pack(vec![rec(0, 3), rec(1, 4)], 10);
        assert_eq!((calls.len(), rejected.len()), (1, 0));
        assert_eq!(calls[0].body.len(), 10);
        assert_eq!(pack(Vec::new(), 10), (Vec::new(), Vec::new()));
    }
}
