//! The pure part: config + batch + clock → the signed `PUT` (URL, headers, body bytes).

use std::io::Write;

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatError};
use flate2::write::GzEncoder;
use jiff::Timestamp;
use reqwest::Url;

use super::config::{Compression, Credentials, Piece, S3Settings, MAX_KEY_BYTES};
use crate::aws::sign::{s3_key_path, sign_s3, Unsigned};
use crate::aws::Keys;

/// The objects' content type: newline-delimited JSON.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// One request, ready to send. `headers` excludes `Host`, which the client derives from the URL
/// (and which was signed with exactly that value).
#[derive(Debug, Clone)]
pub(crate) struct WireRequest {
    pub url: Url,
    /// The object key, unencoded (for error messages).
    pub key: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("cannot encode event {offset} as `{format}`: {error}")]
    Encode {
        offset: u64,
        format: &'static str,
        error: FormatError,
    },
    #[error("object key `{0}…` is longer than S3's 1024 bytes; shorten `key_template`")]
    KeyTooLong(String),
    #[error("bad object URL: {0}")]
    Url(String),
    #[error("could not compress the object: {0}")]
    Compress(#[from] std::io::Error),
    #[error("{0}")]
    Sign(String),
}

/// zstd's default level: about gzip's ratio on JSON lines at several times its speed.
const ZSTD_LEVEL: i32 = 3;

/// The batch's object key, rendered from the batch alone so a retry gets the same key.
/// `{date}` is the UTC date (`YYYY-MM-DD`) of the first event's `received_at` (the relay's own
/// clock, so a client's `occurred_at` cannot scatter a batch into odd partitions), or of its
/// `occurred_at` when the event carries no `received_at`; `unknown` when neither parses.
pub(crate) fn object_key(cfg: &S3Settings, tenant: &str, events: &[StoredEvent]) -> String {
    let first = events.first().map_or(0, |e| e.offset);
    let last = events.last().map_or(0, |e| e.offset);
    let mut key = String::new();
    for piece in &cfg.key_template {
        match piece {
            Piece::Text(t) => key.push_str(t),
            Piece::Tenant => key.push_str(tenant),
            Piece::Date => key.push_str(&events.first().and_then(event_date).unwrap_or_else(|| "unknown".into())),
            Piece::First(w) => key.push_str(&format!("{first:0w$}", w = *w)),
            Piece::Last(w) => key.push_str(&format!("{last:0w$}", w = *w)),
            Piece::Ext => key.push_str(cfg.compression.ext()),
        }
    }
    key
}

fn event_date(event: &StoredEvent) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&event.body).ok()?;
    let at = ["received_at", "occurred_at"]
        .iter()
        .find_map(|k| body.get(*k).and_then(|v| v.as_str()))?;
    let date = at.get(..10)?;
    let b = date.as_bytes();
    let shape = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    shape.then(|| date.to_owned())
}

/// The uncompressed object: each event encoded, then `\n`.
pub(crate) fn jsonl(format: Format, cfg: &S3Settings, events: &[StoredEvent]) -> Result<Vec<u8>, RequestError> {
    let mut out = Vec::new();
    for event in events {
        let record = encode(format, event, &cfg.options).map_err(|error| RequestError::Encode {
            offset: event.offset,
            format: format.name(),
            error,
        })?;
        out.extend_from_slice(&record);
        out.push(b'\n');
    }
    Ok(out)
}

/// The signed `PUT` of one batch's object at time `now`.
pub(crate) fn request(
    cfg: &S3Settings,
    creds: &Credentials,
    format: Format,
    tenant: &str,
    events: &[StoredEvent],
    now: Timestamp,
) -> Result<WireRequest, RequestError> {
    let key = object_key(cfg, tenant, events);
    if key.len() > MAX_KEY_BYTES {
        return Err(RequestError::KeyTooLong(key.chars().take(64).collect()));
    }
    let url = cfg
        .object_url(&s3_key_path(&key))
        .map_err(|e| RequestError::Url(e.message))?;
    let raw = jsonl(format, cfg, events)?;
    let body = match cfg.compression {
        // flate2 writes mtime 0 in the gzip header, so a retry uploads identical bytes.
        Compression::Gzip => {
            let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::default());
            gz.write_all(&raw)?;
            gz.finish()?
        }
        // zstd frames carry no timestamp either: the same batch compresses to the same bytes.
        Compression::Zstd => zstd::bulk::compress(&raw, ZSTD_LEVEL)?,
        Compression::None => raw,
    };
    let keys = Keys {
        access_key_id: creds.access_key_id.clone(),
        secret_access_key: creds.secret_access_key.clone(),
        session_token: creds.session_token.clone(),
    };
    // Signed: host, x-amz-content-sha256, x-amz-date (and x-amz-security-token), as before the
    // move to aws-sigv4; the content headers are sent unsigned.
    let signed = sign_s3(
        &Unsigned {
            method: "PUT",
            url: &url,
            headers: &[],
            body: &body,
        },
        &keys,
        &cfg.region,
        std::time::SystemTime::from(now),
    )
    .map_err(RequestError::Sign)?;
    let mut headers = vec![("content-type", CONTENT_TYPE.to_owned())];
    match cfg.compression {
        Compression::Gzip => headers.push(("content-encoding", "gzip".to_owned())),
        Compression::Zstd => headers.push(("content-encoding", "zstd".to_owned())),
        Compression::None => {}
    }
    // A stable order (the signer's is its own), `authorization` last.
    for name in [
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
        "authorization",
    ] {
        if let Some((n, v)) = signed.iter().find(|(n, _)| *n == name) {
            headers.push((*n, v.clone()));
        }
    }
    Ok(WireRequest {
        url,
        key,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::{parse_config, Credentials};
    use super::*;
    use serde_json::json;

    fn events(offsets: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
        offsets
            .map(|offset| StoredEvent {
                tenant_id: "acme".into(),
                offset,
                id: format!("evt_{offset}"),
                event_type: "user.login".into(),
                body: json!({"id": format!("evt_{offset}"), "type": "user.login",
                             "occurred_at": "2026-11-22T23:59:59Z", "received_at": "2026-11-23T00:00:01Z"})
                .to_string(),
                chain: None,
            })
            .collect()
    }

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[test]
    fn keys_are_deterministic() {
        let cfg = parse_config(&json!({"bucket": "audit"})).unwrap();
        let ev = events(1..=100);
        assert_eq!(
            object_key(&cfg, "t1", &ev),
            "tenant=t1/date=2026-11-23/000000001-000000100.jsonl.gz"
        );
        let cfg = parse_config(&json!({"bucket": "audit", "compression": "none",
                                        "key_template": "{tenant}/{first}-{last}{ext}"}))
        .unwrap();
        assert_eq!(object_key(&cfg, "t1", &ev), "t1/1-100");
    }

    #[test]
    fn exact_request() {
        let cfg = parse_config(&json!({"bucket": "audit", "endpoint": "http://127.0.0.1:9000",
                                        "region": "eu-west-2", "compression": "none"}))
        .unwrap();
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let r = request(&cfg, &creds(), Format::Json, "acme co", &events(7..=8), now).unwrap();
        let again = request(&cfg, &creds(), Format::Json, "acme co", &events(7..=8), now).unwrap();
        assert_eq!((&r.url, &r.headers, &r.body), (&again.url, &again.headers, &again.body));
        insta::assert_json_snapshot!(json!({
            "method": "PUT",
            "url": r.url.as_str(),
            "key": r.key,
            "headers": r.headers,
            "body": String::from_utf8(r.body).unwrap(),
        }));
    }

    #[test]
    fn gzip_body_round_trips_and_is_stable() {
        let cfg = parse_config(&json!({"bucket": "audit"})).unwrap();
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let ev = events(1..=3);
        let r = request(&cfg, &creds(), Format::Json, "acme", &ev, now).unwrap();
        assert_eq!(
            r.url.as_str(),
            "https://audit.s3.us-east-1.amazonaws.com/tenant%3Dacme/date%3D2026-11-23/000000001-000000003.jsonl.gz"
        );
        assert!(r.headers.contains(&("content-encoding", "gzip".to_owned())));
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut out).unwrap();
        assert_eq!(out.lines().count(), 3);
        assert!(out.ends_with('\n'));
        let again = request(&cfg, &creds(), Format::Json, "acme", &ev, now).unwrap();
        assert_eq!(r.body, again.body);
    }
}
