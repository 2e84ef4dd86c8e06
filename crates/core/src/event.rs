//! The event in its three lives: parsed from a request, ready to append, stored in the log.

/// Appends `"key":"value"` with the value JSON-escaped.
pub(crate) fn push_member(out: &mut String, key: &str, value: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_json_string(out, value);
}

/// Appends a JSON string literal (serde_json's escaping, without a `Value`).
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    // Writing into a String cannot fail.
    let mut buf = Vec::with_capacity(value.len() + 2);
    if serde_json::to_writer(&mut buf, value).is_ok() {
        out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// An event that passed validation, before the server settles its tenant, id and receive time.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// Position of the event in its request (0-based), for error messages.
    pub index: usize,
    /// The client's `id`, when it gave one.
    pub client_id: Option<String>,
    /// The `tenant_id` the event names itself, if any (only the operator may use it).
    pub tenant_claim: Option<String>,
    pub event_type: String,
    /// Canonical (UTC) `occurred_at`, when the client gave one.
    pub occurred_at: Option<String>,
    /// `actor` … `source`, validated, rendered as compact JSON members in canonical order
    /// with defaults filled in (`"actor":{…},…,"severity":5`), without the enclosing braces.
    pub(crate) rest: String,
    /// The event exactly as the client sent it (for the `raw` format).
    pub raw: String,
}

impl ParsedEvent {
    /// Fixes the server-side fields and renders the canonical body (every field but `offset`,
    /// which the log assigns at commit).
    pub fn into_new_event(self, tenant_id: String, received_at: &str) -> NewEvent {
        let (id, client_supplied_id) = match self.client_id {
            Some(id) => (id, true),
            None => (crate::ids::new_event_id(), false),
        };
        let occurred_at = self.occurred_at.unwrap_or_else(|| received_at.to_owned());
        let mut body = String::with_capacity(160 + self.rest.len());
        body.push('{');
        push_member(&mut body, "id", &id);
        body.push(',');
        push_member(&mut body, "tenant_id", &tenant_id);
        body.push(',');
        push_member(&mut body, "type", &self.event_type);
        body.push(',');
        push_member(&mut body, "occurred_at", &occurred_at);
        body.push(',');
        push_member(&mut body, "received_at", received_at);
        if !self.rest.is_empty() {
            body.push(',');
            body.push_str(&self.rest);
        }
        body.push('}');
        let canonical = crate::CanonicalBody::new(&body);
        NewEvent {
            tenant_id,
            id,
            client_supplied_id,
            event_type: self.event_type,
            occurred_at,
            received_at: received_at.to_owned(),
            body,
            canonical,
            raw: self.raw,
        }
    }
}

/// A validated event ready to append. `body` is the canonical JSON without `offset`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: String,
    pub id: String,
    /// Server-generated ids are UUIDv7 and cannot collide, so the log skips the dedup lookup.
    pub client_supplied_id: bool,
    pub event_type: String,
    pub occurred_at: String,
    pub received_at: String,
    pub body: String,
    /// `body` in RFC 8785 form, prepared here so the log's writer only splices the offset in
    /// to compute the hash chain (`None` only for a body that is not an object).
    pub canonical: Option<crate::CanonicalBody>,
    pub raw: String,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub tenant_id: String,
    pub offset: u64,
    pub id: String,
    pub event_type: String,
    /// Canonical JSON without `offset` (always a non-empty object starting with `{"id"`).
    pub body: String,
    /// The event exactly as ingested, when the reader asked for it (`ReadQuery::with_raw`).
    pub raw: Option<String>,
    /// The tenant's hash chain after this event (docs/integrity.md); `None` for an event that
    /// is not in the log (a sink's synthetic `system.test`) or was stored before the chain.
    pub chain: Option<[u8; 32]>,
}

/// The two times of a stored event, as RFC 3339 text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct EventTimes {
    pub occurred_at: Option<String>,
    pub received_at: Option<String>,
}

impl StoredEvent {
    /// The canonical event as the API and the `json` format deliver it: `offset` first, then
    /// the stored body, then `chain` (64 lowercase hex digits) when the event has one.
    /// Splicing avoids re-serialising on every read.
    pub fn to_json(&self) -> String {
        let mut out = self.to_json_without_chain();
        if let Some(chain) = &self.chain {
            out.pop(); // the closing brace
            out.push_str(",\"chain\":\"");
            push_hex(&mut out, chain);
            out.push_str("\"}");
        }
        out
    }

    /// `to_json` minus the `chain` member: what the hash chain hashes (after RFC 8785).
    pub fn to_json_without_chain(&self) -> String {
        let rest = self.body.strip_prefix('{').unwrap_or(&self.body);
        let mut out = String::with_capacity(self.body.len() + 96);
        out.push_str("{\"offset\":");
        out.push_str(&self.offset.to_string());
        out.push(',');
        out.push_str(rest);
        out
    }

    /// `occurred_at` and `received_at` from the stored body, in one parse that reads only
    /// those two members (`None` for a body that is not ours, which cannot happen).
    pub fn times(&self) -> EventTimes {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// The chain as 64 lowercase hex digits, as the formats carry it.
    pub fn chain_hex(&self) -> Option<String> {
        self.chain.as_ref().map(|c| {
            let mut out = String::with_capacity(64);
            push_hex(&mut out, c);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn stored_event_json_puts_offset_first_and_stays_valid() {
        let ev = StoredEvent {
            tenant_id: "t".into(),
            offset: 42,
            id: "e1".into(),
            event_type: "a.b".into(),
            body: r#"{"id":"e1","tenant_id":"t","type":"a.b"}"#.into(),
            raw: None,
            chain: None,
        };
        let v: Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["offset"], 42);
        assert_eq!(v["id"], "e1");
        assert!(ev.to_json().starts_with("{\"offset\":42,\"id\""));
        assert!(v.get("chain").is_none());
    }

    #[test]
    fn the_chain_comes_last_as_lowercase_hex() {
        let mut chain = [0u8; 32];
        chain[0] = 0xab;
        chain[31] = 0x01;
        let ev = StoredEvent {
            tenant_id: "t".into(),
            offset: 1,
            id: "e1".into(),
            event_type: "a.b".into(),
            body: r#"{"id":"e1"}"#.into(),
            raw: None,
            chain: Some(chain),
        };
        let hex = format!("ab{}01", "00".repeat(30));
        assert_eq!(ev.to_json(), format!(r#"{{"offset":1,"id":"e1","chain":"{hex}"}}"#));
        assert_eq!(ev.to_json_without_chain(), r#"{"offset":1,"id":"e1"}"#);
        assert_eq!(ev.chain_hex(), Some(hex));
    }
}
