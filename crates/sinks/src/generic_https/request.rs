//! Requests, built purely from the parsed config and the events.

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Url;
use sha2::{Digest, Sha256};

use super::config::GenericConfig;

pub const HEADER_DIGEST: &str = "x-auditrelay-digest";
pub const HEADER_EVENT_ID: &str = "x-auditrelay-event-id";
pub const HEADER_EVENT_TYPE: &str = "x-auditrelay-event-type";
pub const HEADER_TENANT: &str = "x-auditrelay-tenant";
pub const HEADER_BATCH_ID: &str = "x-auditrelay-batch-id";

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: Url,
    /// Every header but those reqwest adds itself (`content-length`, `user-agent`, …). The
    /// auth header, when configured, is marked sensitive.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The `X-Auditrelay-Digest` value: lowercase hex SHA-256 of `<tenant_id>:<event_id>:<body>`,
/// bare (no `sha256=` prefix), as the Kirtonic seed words it: `<sha256(workspace_id:event_id:body)>`.
/// It is an integrity check, not a signature: anyone who knows the tenant id can compute it.
pub fn digest(tenant_id: &str, event_id: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update(b":");
    h.update(event_id.as_bytes());
    h.update(b":");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A header value for an identifier: as is when it is visible ASCII without `%`, else
/// percent-encoded UTF-8 (event ids may hold any non-space character; HTTP header values may
/// not).
pub fn id_header_value(id: &str) -> HeaderValue {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // Only visible ASCII remains, which is always a valid header value.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn content_type(format: Format) -> HeaderValue {
    HeaderValue::from_static(if text_format(format) {
        CONTENT_TYPE_TEXT
    } else {
        CONTENT_TYPE_JSON
    })
}

/// CEF and LEEF records are lines of text; JSON and OCSF records are JSON objects.
fn text_format(format: Format) -> bool {
    !format.is_json()
}

/// One record. `Err` is a failure of the format (not built, a line break it let through): it
/// would fail every event alike, so the caller pauses the sink rather than drop events.
fn record(format: Format, event: &StoredEvent, options: &FormatOptions) -> Result<Vec<u8>, String> {
    let record = encode(format, event, options)
        .map_err(|e| format!("format `{}` failed on event {}: {e}", format.name(), event.offset))?;
    // A line break inside a text record would split it into two records at the receiver.
    if text_format(format) && record.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Err(format!(
            "format `{}` produced a line break in event {}; not sent",
            format.name(),
            event.offset
        ));
    }
    Ok(record)
}

fn base_headers(config: &GenericConfig, format: Format) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, content_type(format));
    if let Some(auth) = &config.auth {
        headers.insert(auth.name.clone(), auth.value.clone());
    }
    headers
}

fn set(headers: &mut HeaderMap, name: &'static str, value: HeaderValue) {
    headers.insert(HeaderName::from_static(name), value);
}

/// Batched mode: every event in one request. JSON/OCSF: a JSON array of records; CEF/LEEF: the
/// records, each ending in `\n`.
pub fn batch_request(
    config: &GenericConfig,
    format: Format,
    tenant_id: &str,
    batch_id: &str,
    events: &[StoredEvent],
) -> Result<HttpRequest, String> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.body.len() + 16).sum::<usize>() + 2);
    let text = text_format(format);
    if !text {
        body.push(b'[');
    }
    for (i, event) in events.iter().enumerate() {
        if !text && i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&record(format, event, &config.options)?);
        if text {
            body.push(b'\n');
        }
    }
    if !text {
        body.push(b']');
    }
    let mut headers = base_headers(config, format);
    set(&mut headers, HEADER_TENANT, id_header_value(tenant_id));
    // Stable across attempts at this batch: a receiver can drop a repeat.
    set(&mut headers, HEADER_BATCH_ID, id_header_value(batch_id));
    Ok(HttpRequest {
        url: config.url.clone(),
        headers,
        body,
    })
}

/// Per-event mode: one event per request. The body is the record alone (a JSON object, or one
/// CEF/LEEF line ending in `\n`), and the digest covers exactly these bytes.
pub fn event_request(config: &GenericConfig, format: Format, event: &StoredEvent) -> Result<HttpRequest, String> {
    let mut body = record(format, event, &config.options)?;
    if text_format(format) {
        body.push(b'\n');
    }
    let mut headers = base_headers(config, format);
    set(&mut headers, HEADER_EVENT_ID, id_header_value(&event.id));
    set(&mut headers, HEADER_TENANT, id_header_value(&event.tenant_id));
    set(&mut headers, HEADER_EVENT_TYPE, id_header_value(&event.event_type));
    let digest = digest(&event.tenant_id, &event.id, &body);
    set(&mut headers, HEADER_DIGEST, id_header_value(&digest));
    Ok(HttpRequest {
        url: config.url.clone(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_a_known_input() {
        // printf 'acme:evt_1:{}' | sha256sum
        assert_eq!(
            digest("acme", "evt_1", b"{}"),
            "1702ad8e4edf51ff1b3226825ba2e6c8d09e33e4d871f9a352e2cb95cd89179b"
        );
    }

    #[test]
    fn id_header_values() {
        assert_eq!(id_header_value("evt_0001"), "evt_0001");
        assert_eq!(id_header_value("évt%1"), "%C3%A9vt%251");
    }
}
