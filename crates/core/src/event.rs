//! The event in its three lives: parsed from a request, ready to append, stored in the log.

use serde_json::{Map, Value};

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
    /// `actor` … `source`, validated and in canonical order, defaults filled in.
    pub(crate) rest: Map<String, Value>,
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
        let mut body = Map::with_capacity(6 + self.rest.len());
        body.insert("id".into(), Value::String(id.clone()));
        body.insert("tenant_id".into(), Value::String(tenant_id.clone()));
        body.insert("type".into(), Value::String(self.event_type.clone()));
        body.insert("occurred_at".into(), Value::String(occurred_at.clone()));
        body.insert("received_at".into(), Value::String(received_at.to_owned()));
        body.extend(self.rest);
        let body = Value::Object(body).to_string();
        NewEvent {
            tenant_id,
            id,
            client_supplied_id,
            event_type: self.event_type,
            occurred_at,
            received_at: received_at.to_owned(),
            body,
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
}

impl StoredEvent {
    /// The canonical event as the API and the `json` format deliver it: `offset` first, then
    /// the stored body. Splicing avoids re-serialising on every read.
    pub fn to_json(&self) -> String {
        let rest = self.body.strip_prefix('{').unwrap_or(&self.body);
        let mut out = String::with_capacity(self.body.len() + 24);
        out.push_str("{\"offset\":");
        out.push_str(&self.offset.to_string());
        out.push(',');
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_event_json_puts_offset_first_and_stays_valid() {
        let ev = StoredEvent {
            tenant_id: "t".into(),
            offset: 42,
            id: "e1".into(),
            event_type: "a.b".into(),
            body: r#"{"id":"e1","tenant_id":"t","type":"a.b"}"#.into(),
        };
        let v: Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["offset"], 42);
        assert_eq!(v["id"], "e1");
        assert!(ev.to_json().starts_with("{\"offset\":42,\"id\""));
    }
}
