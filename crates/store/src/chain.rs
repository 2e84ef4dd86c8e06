//! The per-tenant hash chain (docs/integrity.md), computed by every backend inside its append
//! transaction with [`link`]:
//!
//! ```text
//! chain(0) = 32 zero bytes                       (GENESIS)
//! chain(n) = SHA-256( chain(n-1) as 32 raw bytes ‖ JCS(event n as `json` delivers it, minus `chain`) )
//! ```
//!
//! JCS is RFC 8785: keys sorted by UTF-16 code units, no whitespace, numbers as ECMAScript
//! prints them. Because the hash covers the canonical form and not our bytes, anyone can check
//! a copy that went through a SIEM that re-serialised it.

use sha2::{Digest, Sha256};

use crate::StoreError;

/// The chain value "before offset 1".
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain value after the event with `offset` and `body` (the stored JSON without `offset` —
/// `StoredEvent::body`, which need not be in RFC 8785 form: events stored by earlier versions
/// are not), given the chain after the previous event of the same tenant
/// (`GENESIS` for offset 1). Pure: a backend calls it once per stored event, in offset order,
/// inside the transaction that stores the event, and stores the result beside it.
pub fn link(previous: &[u8; 32], offset: u64, body: &str) -> Result<[u8; 32], StoreError> {
    let canonical = canonical_bytes(offset, body)?;
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(&canonical);
    Ok(hasher.finalize().into())
}

/// [`link`] for an event about to be stored: its body is already RFC 8785 (rendered once at
/// ingest), so the writer hashes it in pieces with the offset spliced in
/// (`NewEvent::canonical_parts`), without parsing, re-serialising or allocating.
pub fn link_new(previous: &[u8; 32], offset: u64, event: &auditrelay_core::NewEvent) -> Result<[u8; 32], StoreError> {
    if !event.strict_jcs {
        // An integer beyond ±2^53 is stored digit for digit; RFC 8785 hashes its nearest
        // double, as every verifier's canonicaliser does: the slow, exact way (rare).
        return link(previous, offset, &event.body);
    }
    let mut hasher = Sha256::new();
    hasher.update(previous);
    event.canonical_parts(offset, |part| hasher.update(part));
    Ok(hasher.finalize().into())
}

/// RFC 8785 bytes of `{"offset":offset, …body}`: what [`link`] hashes after the previous chain.
pub fn canonical_bytes(offset: u64, body: &str) -> Result<Vec<u8>, StoreError> {
    let mut event: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("event body at offset {offset} is not a JSON object: {e}")))?;
    event.insert("offset".into(), offset.into());
    serde_jcs::to_vec(&event)
        .map_err(|e| StoreError::Corrupt(format!("canonicalising the event at offset {offset}: {e}")))
}

/// A chain value read back from a column: exactly 32 bytes or the store is damaged.
pub fn from_column(bytes: Option<Vec<u8>>, what: &str) -> Result<Option<[u8; 32]>, StoreError> {
    match bytes {
        None => Ok(None),
        Some(b) => b
            .try_into()
            .map(Some)
            .map_err(|b: Vec<u8>| StoreError::Corrupt(format!("{what}: a chain value of {} bytes", b.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_sort_keys_and_print_numbers_like_ecmascript() {
        let body = r#"{"type":"a.b","metadata":{"z":1.0,"a":[1e21,0.000001,-0.0],"é":"\u00e9"},"id":"x"}"#;
        let bytes = canonical_bytes(7, body).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"id":"x","metadata":{"a":[1e+21,0.000001,0],"z":1,"é":"é"},"offset":7,"type":"a.b"}"#
        );
    }

    #[test]
    fn link_hashes_raw_previous_bytes_then_the_canonical_event() {
        let body = r#"{"id":"x"}"#;
        let one = link(&GENESIS, 1, body).unwrap();
        let mut expected = Sha256::new();
        expected.update([0u8; 32]);
        expected.update(br#"{"id":"x","offset":1}"#);
        assert_eq!(one, <[u8; 32]>::from(expected.finalize()));
        // Any change to the previous value, the offset or the body changes the chain.
        assert_ne!(link(&one, 1, body).unwrap(), one);
        assert_ne!(link(&GENESIS, 2, body).unwrap(), one);
        assert_ne!(link(&GENESIS, 1, r#"{"id":"y"}"#).unwrap(), one);
    }

    fn new_events(body: &str) -> Vec<auditrelay_core::NewEvent> {
        auditrelay_core::parse_request(body.as_bytes(), auditrelay_core::BodyFormat::Json, &Default::default())
            .unwrap()
            .into_iter()
            .map(|p| p.into_new_event("acme".into(), "2026-06-01T10:13:21.000Z"))
            .collect()
    }

    #[test]
    fn the_prepared_canonical_form_matches_the_full_one() {
        let events = new_events(
            r#"[{"type":"a.b","id":"x"},
                {"type":"a.b","metadata":{"z":1.0,"a":[1e21,0.000001,-0.0],"\ue000":1,"\ud83d\ude00":2},"id":"x","outcome":"failure"},
                {"type":"a.b","actor":{"name":"Zo\u00eb \"q\""},"changes":{"of":2,"offseu":3,"offses":4,"\u00e9":5,"Z":6}}]"#,
        );
        for event in &events {
            for offset in [1, 42, (1 << 53) + 1, u64::MAX] {
                let full = canonical_bytes(offset, &event.body).unwrap();
                assert_eq!(event.canonical_with_offset(offset), full, "{}", event.body);
                let mut expected = Sha256::new();
                expected.update(GENESIS);
                expected.update(&full);
                assert_eq!(
                    link_new(&GENESIS, offset, event).unwrap(),
                    <[u8; 32]>::from(expected.finalize())
                );
                assert_eq!(
                    link_new(&GENESIS, offset, event).unwrap(),
                    link(&GENESIS, offset, &event.body).unwrap()
                );
            }
        }
    }

    #[test]
    fn an_integer_beyond_2_pow_53_is_stored_whole_and_hashed_as_rfc_8785_rounds_it() {
        let parsed = auditrelay_core::parse_request(
            br#"{"type":"a.b","metadata":{"ns":1796315914686405516}}"#,
            auditrelay_core::BodyFormat::Json,
            &auditrelay_core::Limits::default(),
        )
        .unwrap();
        let ev = parsed
            .into_iter()
            .next()
            .unwrap()
            .into_new_event("t".into(), "2026-01-01T00:00:00.000Z");
        assert!(ev.body.contains("1796315914686405516"), "{}", ev.body);
        let strict = canonical_bytes(3, &ev.body).unwrap();
        assert!(String::from_utf8_lossy(&strict).contains("1796315914686405600"));
        let mut expected = Sha256::new();
        expected.update(GENESIS);
        expected.update(&strict);
        assert_eq!(
            link_new(&GENESIS, 3, &ev).unwrap(),
            <[u8; 32]>::from(expected.finalize())
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert!(link(&GENESIS, 1, "[1]").is_err());
    }
}
