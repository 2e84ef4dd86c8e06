//! The stored event read into typed fields once, for the formats that rename and reshape it
//! (cef, leef, ocsf). The body is canonical JSON written by our own validator, but a format must
//! never panic or fail on it: anything missing or of an unexpected JSON type simply reads as
//! absent, and the log row's own `id`, `type` and `tenant_id` are used so that even an
//! unreadable body still yields an identifiable record.

use std::net::IpAddr;

use auditrelay_core::StoredEvent;
use serde_json::{Map, Value};

/// `actor` (api.md): every field optional.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// `target` (api.md).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub kind: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// `source` (api.md).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub service: Option<String>,
    pub version: Option<String>,
    pub instance: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct EventView<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub event_type: &'a str,
    pub offset: u64,
    /// The tenant's hash chain after this event, 64 hex digits (docs/integrity.md).
    pub chain: Option<String>,
    pub occurred_at: Option<String>,
    pub received_at: Option<String>,
    pub actor: Actor,
    pub action: Option<String>,
    pub target: Target,
    pub outcome: Option<String>,
    /// 0–10 when the body holds a valid one.
    pub severity: Option<u8>,
    pub request_id: Option<String>,
    pub changes: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    pub source: Source,
    /// The `source` object as stored, for OCSF `unmapped`.
    pub source_raw: Option<Map<String, Value>>,
}

/// A non-empty string member. Empty strings read as absent: every format would otherwise emit an
/// empty attribute (`suser=`), which SIEMs treat inconsistently, and it carries no information.
fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn object(m: &Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match m.get(key) {
        Some(Value::Object(o)) => Some(o.clone()),
        _ => None,
    }
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a StoredEvent) -> EventView<'a> {
        let body = match serde_json::from_str::<Value>(&event.body) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let actor = object(&body, "actor").unwrap_or_default();
        let target = object(&body, "target").unwrap_or_default();
        let source_raw = object(&body, "source");
        let source = source_raw.clone().unwrap_or_default();
        let severity = body
            .get("severity")
            .and_then(Value::as_u64)
            .filter(|s| *s <= 10)
            .and_then(|s| u8::try_from(s).ok());
        EventView {
            id: &event.id,
            tenant_id: &event.tenant_id,
            event_type: &event.event_type,
            offset: event.offset,
            chain: event.chain_hex(),
            occurred_at: text(&body, "occurred_at"),
            received_at: text(&body, "received_at"),
            actor: Actor {
                id: text(&actor, "id"),
                kind: text(&actor, "type"),
                name: text(&actor, "name"),
                email: text(&actor, "email"),
                ip_address: text(&actor, "ip_address"),
                user_agent: text(&actor, "user_agent"),
            },
            action: text(&body, "action"),
            target: Target {
                kind: text(&target, "type"),
                id: text(&target, "id"),
                name: text(&target, "name"),
            },
            outcome: text(&body, "outcome"),
            severity,
            request_id: text(&body, "request_id"),
            changes: object(&body, "changes"),
            metadata: object(&body, "metadata"),
            source: Source {
                service: text(&source, "service"),
                version: text(&source, "version"),
                instance: text(&source, "instance"),
            },
            source_raw,
        }
    }

    /// When the event happened, in ms since the epoch: `occurred_at`, else `received_at` (the
    /// server fills `occurred_at` in, so the fallback only matters for a damaged body).
    pub fn time_ms(&self) -> Option<i64> {
        self.occurred_at
            .as_deref()
            .and_then(epoch_ms)
            .or_else(|| self.received_at.as_deref().and_then(epoch_ms))
    }

    pub fn received_ms(&self) -> Option<i64> {
        self.received_at.as_deref().and_then(epoch_ms)
    }

    /// The actor's address, canonical (`::ffff:1.2.3.4` becomes `1.2.3.4`), when it is one.
    pub fn actor_ip(&self) -> Option<IpAddr> {
        self.actor.ip_address.as_deref().and_then(parse_ip)
    }

    /// The compact JSON of `changes`, for the text formats' free-form message field.
    pub fn changes_json(&self) -> Option<String> {
        self.changes
            .as_ref()
            .filter(|c| !c.is_empty())
            .and_then(|c| serde_json::to_string(c).ok())
    }
}

pub(crate) fn epoch_ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &str) -> StoredEvent {
        StoredEvent {
            tenant_id: "t".into(),
            offset: 7,
            id: "e1".into(),
            event_type: "a.b".into(),
            body: body.into(),
            chain: None,
        }
    }

    #[test]
    fn unreadable_body_keeps_the_row_identity() {
        for body in ["", "[1]", "{", "null", r#"{"actor":5,"severity":"x","occurred_at":1}"#] {
            let ev = stored(body);
            let v = EventView::new(&ev);
            assert_eq!((v.id, v.tenant_id, v.event_type), ("e1", "t", "a.b"));
            assert_eq!(v.actor, Actor::default());
            assert_eq!(v.severity, None);
            assert_eq!(v.time_ms(), None);
        }
    }

    #[test]
    fn reads_fields_and_treats_empty_strings_as_absent() {
        let ev = stored(
            r#"{"id":"e1","occurred_at":"2026-06-01T10:13:20.123Z","received_at":"2026-06-01T10:13:21.000Z",
            "actor":{"id":"","name":"n","ip_address":"::ffff:10.0.0.1"},"severity":11,"action":""}"#,
        );
        let v = EventView::new(&ev);
        assert_eq!(v.actor.id, None);
        assert_eq!(v.actor.name.as_deref(), Some("n"));
        assert_eq!(v.action, None);
        assert_eq!(v.severity, None);
        assert_eq!(v.time_ms(), Some(1_780_308_800_123));
        assert_eq!(v.received_ms(), Some(1_780_308_801_000));
        assert_eq!(v.actor_ip(), "10.0.0.1".parse().ok());
    }
}
