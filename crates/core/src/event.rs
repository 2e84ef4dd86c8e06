//! The event in its three lives: parsed from a request, ready to append, stored in the log.
//! It is serialised once, at ingest, in RFC 8785 (JCS) form.

/// Appends `"key":"value"` with the value JSON-escaped.
pub(crate) fn push_member(out: &mut String, key: &str, value: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_json_string(out, value);
}

/// Appends a JSON string literal with exactly serde_json's escaping, which is also what RFC 8785
/// requires: `"` and `\` escaped, `\b \t \n \f \r`, other control characters as `\u00xx`
/// (lowercase hex), everything else (including `/`, DEL and non-ASCII) as is.
pub fn push_json_string(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let needs_escape = |b: &u8| *b < 0x20 || *b == b'"' || *b == b'\\';
    // Most strings need no escape at all: one scan the compiler vectorises, then one copy.
    let Some(first) = value.as_bytes().iter().position(needs_escape) else {
        out.reserve(value.len() + 2);
        out.push('"');
        out.push_str(value);
        out.push('"');
        return;
    };
    out.push('"');
    out.push_str(&value[..first]);
    let mut start = first;
    for (i, &b) in value.as_bytes().iter().enumerate().skip(first) {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(&value[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// `actor`'s members in JCS order (sorted by UTF-16 code units).
pub(crate) const ACTOR_KEYS: [&str; 6] = ["email", "id", "ip_address", "name", "type", "user_agent"];
/// `target`'s members in JCS order.
pub(crate) const TARGET_KEYS: [&str; 3] = ["id", "name", "type"];
/// `source`'s members in JCS order.
pub(crate) const SOURCE_KEYS: [&str; 3] = ["instance", "service", "version"];

/// The validated members of an event other than the five the server settles (`id`,
/// `tenant_id`, `type`, `occurred_at`, `received_at`), as both validation paths hand them to
/// [`Rest::render`] so that they render byte for byte alike. String records list their values
/// in the order of `ACTOR_KEYS` / `TARGET_KEYS` / `SOURCE_KEYS`.
pub(crate) struct Members<'a, J: ?Sized> {
    pub action: Option<&'a str>,
    pub actor: Option<[Option<&'a str>; 6]>,
    pub changes: Option<&'a J>,
    pub metadata: Option<&'a J>,
    pub outcome: &'a str,
    pub request_id: Option<&'a str>,
    pub severity: u64,
    pub source: Option<[Option<&'a str>; 3]>,
    pub target: Option<[Option<&'a str>; 3]>,
}

/// `Members` rendered in JCS order, each member preceded by a comma, in four runs: before
/// `id`, between `id` and `occurred_at`, between `occurred_at` and `received_at`, and between
/// `received_at` and `tenant_id` (nothing of the client's sorts after `tenant_id` but `type`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rest {
    text: String,
    /// Where the second, third and fourth runs start.
    cuts: [usize; 3],
}

impl Rest {
    /// Renders the members; `write` appends the JCS text of `changes` / `metadata`.
    pub(crate) fn render<J: ?Sized>(m: &Members<'_, J>, capacity: usize, write: impl Fn(&J, &mut String)) -> Rest {
        fn record(out: &mut String, name: &str, keys: &[&str], values: &[Option<&str>]) {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":{");
            let mut first = true;
            for (key, value) in keys.iter().zip(values) {
                if let Some(v) = value {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    push_member(out, key, v);
                }
            }
            out.push('}');
        }
        let mut text = String::with_capacity(capacity + 64);
        let mut cuts = [0; 3];
        // action < actor < changes < id
        if let Some(action) = m.action {
            text.push(',');
            push_member(&mut text, "action", action);
        }
        if let Some(actor) = &m.actor {
            record(&mut text, "actor", &ACTOR_KEYS, actor);
        }
        if let Some(changes) = m.changes {
            text.push_str(",\"changes\":");
            write(changes, &mut text);
        }
        cuts[0] = text.len();
        // id < metadata < occurred_at
        if let Some(metadata) = m.metadata {
            text.push_str(",\"metadata\":");
            write(metadata, &mut text);
        }
        cuts[1] = text.len();
        // occurred_at < (offset) < outcome < received_at
        text.push(',');
        push_member(&mut text, "outcome", m.outcome);
        cuts[2] = text.len();
        // received_at < request_id < severity < source < target < tenant_id
        if let Some(request_id) = m.request_id {
            text.push(',');
            push_member(&mut text, "request_id", request_id);
        }
        text.push_str(",\"severity\":");
        crate::jcs::push_u64(&mut text, m.severity);
        if let Some(source) = &m.source {
            record(&mut text, "source", &SOURCE_KEYS, source);
        }
        if let Some(target) = &m.target {
            record(&mut text, "target", &TARGET_KEYS, target);
        }
        Rest { text, cuts }
    }

    fn runs(&self) -> [&str; 4] {
        let [a, b, c] = self.cuts;
        [&self.text[..a], &self.text[a..b], &self.text[b..c], &self.text[c..]]
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
    /// `actor` … `source`, validated, with defaults filled in, rendered in JCS.
    pub(crate) rest: Rest,
    /// Whether the rendered body is exactly RFC 8785 (false when `metadata` or `changes` hold
    /// an integer beyond ±2^53, which the body keeps digit for digit).
    pub strict_jcs: bool,
}

impl ParsedEvent {
    /// Fixes the server-side fields and renders the body: the RFC 8785 (JCS) serialisation of
    /// the event without `offset`, which the log assigns at commit.
    pub fn into_new_event(self, tenant_id: String, received_at: &str) -> NewEvent {
        let (id, client_supplied_id) = match self.client_id {
            Some(id) => (id, true),
            None => (crate::ids::new_event_id(), false),
        };
        let occurred_at = self.occurred_at.unwrap_or_else(|| received_at.to_owned());
        let [before_id, before_occurred, before_received, before_tenant] = self.rest.runs();
        let mut body =
            String::with_capacity(self.rest.text.len() + id.len() + tenant_id.len() + self.event_type.len() + 128);
        body.push('{');
        if let Some(members) = before_id.strip_prefix(',') {
            body.push_str(members);
            body.push(',');
        }
        push_member(&mut body, "id", &id);
        body.push_str(before_occurred);
        body.push(',');
        push_member(&mut body, "occurred_at", &occurred_at);
        let offset_at = body.len();
        body.push_str(before_received);
        body.push(',');
        push_member(&mut body, "received_at", received_at);
        body.push_str(before_tenant);
        body.push(',');
        push_member(&mut body, "tenant_id", &tenant_id);
        body.push(',');
        push_member(&mut body, "type", &self.event_type);
        body.push('}');
        NewEvent {
            tenant_id,
            id,
            client_supplied_id,
            event_type: self.event_type,
            occurred_at,
            received_at: received_at.to_owned(),
            body,
            offset_at,
            strict_jcs: self.strict_jcs,
        }
    }
}

/// A validated event ready to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: String,
    pub id: String,
    /// Server-generated ids are UUIDv7 and cannot collide, so the log skips the dedup lookup.
    pub client_supplied_id: bool,
    pub event_type: String,
    pub occurred_at: String,
    pub received_at: String,
    /// The event without `offset` in RFC 8785 (JCS) form: members sorted by UTF-16 code units
    /// at every level, no whitespace, numbers as ECMAScript prints them — except integers
    /// beyond ±2^53, kept digit for digit (`strict_jcs`). Rendered once, at ingest; it is what
    /// the log stores and what the `raw` format delivers.
    pub body: String,
    /// Where `"offset":N` goes in `body` for the result to be JCS of the event with `offset`:
    /// a byte index at a member boundary, either just after the opening `{` (insert
    /// `"offset":N` plus a comma when a member follows) or just after a member's value (insert
    /// `,"offset":N`). For every rendered event it is the end of the `occurred_at` member, the
    /// last one that sorts before `offset`. See [`NewEvent::canonical_parts`].
    pub offset_at: usize,
    /// `body` is exactly RFC 8785. False only when `metadata` or `changes` hold an integer
    /// beyond ±2^53: the body keeps its digits (so the event stays as sent), and the chain then
    /// hashes the strict form computed the slow way (`auditrelay_store::chain::link_new`).
    pub strict_jcs: bool,
}

impl NewEvent {
    /// Feeds the RFC 8785 bytes of the event with `offset` to `sink`, in pieces and without
    /// allocating: what the hash chain hashes after the previous chain value
    /// (docs/integrity.md). The offset is printed as JCS prints a number (plain digits below
    /// 2^53).
    pub fn canonical_parts(&self, offset: u64, mut sink: impl FnMut(&[u8])) {
        let body = self.body.as_bytes();
        let at = self.offset_at.min(body.len());
        let (head, tail) = body.split_at(at);
        sink(head);
        let first = at <= 1;
        sink(if first { b"\"offset\":" } else { b",\"offset\":" });
        let mut digits = [0u8; 32];
        let start = crate::jcs::offset_digits(offset, &mut digits);
        sink(&digits[start..]);
        if first && tail.first() != Some(&b'}') {
            sink(b",");
        }
        sink(tail);
    }

    /// [`NewEvent::canonical_parts`] in one buffer.
    pub fn canonical_with_offset(&self, offset: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 32);
        self.canonical_parts(offset, |part| out.extend_from_slice(part));
        out
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub tenant_id: String,
    pub offset: u64,
    pub id: String,
    pub event_type: String,
    /// Canonical JSON without `offset`, a non-empty object: `NewEvent::body` (RFC 8785) for
    /// events stored by this version, the earlier member order for older ones. The `raw`
    /// format delivers it as is.
    pub body: String,
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
            chain: Some(chain),
        };
        let hex = format!("ab{}01", "00".repeat(30));
        assert_eq!(ev.to_json(), format!(r#"{{"offset":1,"id":"e1","chain":"{hex}"}}"#));
        assert_eq!(ev.to_json_without_chain(), r#"{"offset":1,"id":"e1"}"#);
        assert_eq!(ev.chain_hex(), Some(hex));
    }
}
