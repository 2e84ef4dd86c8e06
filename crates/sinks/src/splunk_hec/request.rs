//! The HEC requests as pure functions (config + events → URL, headers, body bytes), so tests can
//! snapshot them and the sink only sends.

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatError};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::config::{HecConfig, Token};

/// Names the channel every request of an acknowledged sink carries.
pub const CHANNEL_HEADER: &str = "x-splunk-request-channel";

/// One POST, ready to send (every HEC request is a JSON POST). Debug output redacts the token
/// (its header value is marked sensitive).
#[derive(Debug, Clone)]
pub(crate) struct WireRequest {
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// An event the sink's format could not encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodeFailure {
    pub offset: u64,
    pub error: FormatError,
}

/// `POST {url}/services/collector/event`: the batch as HEC envelopes concatenated with no
/// separator. `channel` is sent when the sink uses indexer acknowledgements.
pub(crate) fn event_request(
    cfg: &HecConfig,
    token: &Token,
    channel: Option<&str>,
    format: Format,
    events: &[StoredEvent],
) -> Result<WireRequest, EncodeFailure> {
    Ok(WireRequest {
        url: cfg.event_url.clone(),
        headers: headers(token, channel),
        body: envelopes(cfg, format, events)?,
    })
}

/// `POST {url}/services/collector/ack` asking whether `ack_id` is indexed.
pub(crate) fn ack_request(cfg: &HecConfig, token: &Token, channel: &str, ack_id: u64) -> WireRequest {
    WireRequest {
        url: cfg.ack_url.clone(),
        headers: headers(token, Some(channel)),
        body: format!("{{\"acks\":[{ack_id}]}}").into_bytes(),
    }
}

fn headers(token: &Token, channel: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (AUTHORIZATION, token.header()),
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
    ];
    // A channel is a UUID the sink generated: always a valid header value.
    if let Some(value) = channel.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.push((HeaderName::from_static(CHANNEL_HEADER), value));
    }
    headers
}

/// The request body: one envelope per event, back to back (HEC's batch form; no separator).
pub(crate) fn envelopes(cfg: &HecConfig, format: Format, events: &[StoredEvent]) -> Result<Vec<u8>, EncodeFailure> {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.body.len() + 256).sum());
    for event in events {
        let record = encode(format, event, &cfg.options).map_err(|error| EncodeFailure {
            offset: event.offset,
            error,
        })?;
        push_envelope(&mut out, cfg, format, event, record);
    }
    Ok(out)
}

/// One event's record as HEC's `event`: the JSON object itself for JSON formats, a JSON string
/// otherwise (CEF, LEEF lines).
enum Record {
    Json(Box<RawValue>),
    Text(String),
}

impl Record {
    fn new(format: Format, bytes: Vec<u8>) -> Record {
        let text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if format.is_json() {
            // Parsed only to prove it is one JSON value: a broken record spliced into the
            // concatenated body would corrupt every envelope after it. One that is not (never
            // expected) still goes, as a string, rather than being lost.
            match serde_json::from_str::<Box<RawValue>>(&text) {
                Ok(raw) => Record::Json(raw),
                Err(_) => Record::Text(text),
            }
        } else {
            Record::Text(text)
        }
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Json(raw) => raw.serialize(s),
            Record::Text(text) => s.serialize_str(text),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    sourcetype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    fields: Fields<'a>,
    event: &'a Record,
}

/// Indexed fields: searchable as `tenant_id::acme` without extracting the event.
#[derive(Serialize)]
struct Fields<'a> {
    tenant_id: &'a str,
    event_id: &'a str,
}

fn push_envelope(out: &mut Vec<u8>, cfg: &HecConfig, format: Format, event: &StoredEvent, record: Vec<u8>) {
    let record = Record::new(format, record);
    let envelope = Envelope {
        time: event_time(&event.body),
        host: cfg.host.as_deref(),
        source: cfg.source.as_deref(),
        sourcetype: cfg.sourcetype.render(&event.event_type, &event.tenant_id),
        index: cfg.index.as_deref(),
        fields: Fields {
            tenant_id: &event.tenant_id,
            event_id: &event.id,
        },
        event: &record,
    };
    // Serialising plain strings and already-valid JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &envelope);
}

#[derive(Deserialize)]
struct Times {
    occurred_at: Option<String>,
    received_at: Option<String>,
}

/// HEC's `time`: epoch seconds with milliseconds, from `occurred_at` (when it happened, what a
/// SIEM searches and alerts on), else `received_at`. Written as the exact decimal (no float
/// rounding). `None` (Splunk then stamps the arrival time) for an unreadable or pre-1970 time.
fn event_time(body: &str) -> Option<Box<RawValue>> {
    let times: Times = serde_json::from_str(body).ok()?;
    let ms = [times.occurred_at, times.received_at]
        .into_iter()
        .flatten()
        .find_map(|t| auditrelay_core::time::parse_rfc3339(&t))?
        .as_millisecond();
    if ms < 0 {
        return None;
    }
    RawValue::from_string(format!("{}.{:03}", ms / 1000, ms % 1000)).ok()
}

/// The request as text for snapshots: method, URL, headers, then the body.
#[cfg(test)]
pub(crate) fn render(request: &WireRequest) -> String {
    let mut out = format!("POST {}\n", request.url);
    for (name, value) in &request.headers {
        out.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("<binary>")));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&request.body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splunk_hec::config::{parse_config, parse_token};
    use crate::Secrets;
    use serde_json::json;

    fn event(offset: u64, body: serde_json::Value) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: format!("evt_{offset}"),
            event_type: "user.login".into(),
            body: body.to_string(),
            chain: None,
        }
    }

    fn token() -> Token {
        parse_token(&Secrets::from([("token".to_owned(), "hec-token".to_owned())])).unwrap()
    }

    #[test]
    fn event_request_snapshot() {
        let cfg = parse_config(&json!({
            "url": "https://splunk.example.com:8088", "index": "audit", "source": "auditrelay",
            "host": "relay-1", "sourcetype": "auditrelay:{tenant}:{type}", "acks": true
        }))
        .unwrap();
        let events = [
            event(
                1,
                json!({"id": "evt_1", "tenant_id": "acme", "type": "user.login",
                       "occurred_at": "2026-06-01T10:13:20.123456Z", "received_at": "2026-06-01T10:13:21Z"}),
            ),
            event(
                2,
                json!({"id": "evt_2", "tenant_id": "acme", "type": "user.login", "received_at": "2026-06-01T10:13:21Z"}),
            ),
        ];
        let req = event_request(
            &cfg,
            &token(),
            Some("0b8e2d9c-6f71-4a52-9a3e-5d1c2b7f4e10"),
            Format::Json,
            &events,
        )
        .unwrap();
        insta::assert_snapshot!(render(&req));
        let ack = ack_request(&cfg, &token(), "0b8e2d9c-6f71-4a52-9a3e-5d1c2b7f4e10", 7);
        insta::assert_snapshot!("ack_request", render(&ack));
    }

    #[test]
    fn minimal_config_omits_optional_keys_and_raw_is_spliced() {
        let cfg = parse_config(&json!({"url": "http://127.0.0.1:8088"})).unwrap();
        let events = [event(
            5,
            json!({"id": "evt_5", "tenant_id": "acme", "type": "user.login", "occurred_at": "1969-12-31T23:59:59Z"}),
        )];
        let body = envelopes(&cfg, Format::Raw, &events).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"sourcetype":"auditrelay:user.login","fields":{"tenant_id":"acme","event_id":"evt_5"},"event":{"id":"evt_5","tenant_id":"acme","type":"user.login","occurred_at":"1969-12-31T23:59:59Z"}}"#
        );
        let headers = event_request(&cfg, &token(), None, Format::Json, &events)
            .unwrap()
            .headers;
        assert!(
            headers.iter().all(|(n, _)| n != CHANNEL_HEADER),
            "no channel without acks"
        );
    }

    #[test]
    fn text_records_are_json_strings_and_broken_json_still_goes() {
        let cfg = parse_config(&json!({"url": "http://127.0.0.1:8088"})).unwrap();
        let e = event(1, json!({"occurred_at": "2026-06-01T10:13:20Z"}));
        let mut out = Vec::new();
        push_envelope(
            &mut out,
            &cfg,
            Format::Cef,
            &e,
            b"CEF:0|a|b|1|x|y|5|msg=\"q\" \\= ok".to_vec(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "CEF:0|a|b|1|x|y|5|msg=\"q\" \\= ok");
        assert_eq!(v["time"].to_string(), "1780308800.0");
        assert!(String::from_utf8_lossy(&out).contains(r#""time":1780308800.000,"#));
        let mut out = Vec::new();
        push_envelope(&mut out, &cfg, Format::Raw, &e, b"{not json".to_vec());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "{not json");
    }
}
