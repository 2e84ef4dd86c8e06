//! One event → one Kafka record's key and headers (pure; the value is the sink's format).

use auditrelay_core::StoredEvent;
use serde_json::Value;

use super::config::RecordKey;

/// Header names. Consumers deduplicate on `event_id` and detect gaps with `tenant_id` + `offset`.
pub const HEADER_EVENT_ID: &str = "event_id";
pub const HEADER_EVENT_TYPE: &str = "event_type";
pub const HEADER_TENANT: &str = "tenant_id";
pub const HEADER_OFFSET: &str = "offset";

/// The record key of `event`: its tenant id, or the configured field when the event has it as a
/// string or number (anything else falls back to the tenant id, so no record is keyless).
pub fn record_key(key: &RecordKey, event: &StoredEvent) -> String {
    let RecordKey::Field(path) = key else {
        return event.tenant_id.clone();
    };
    let Ok(body) = serde_json::from_str::<Value>(&event.body) else {
        return event.tenant_id.clone();
    };
    let mut node = &body;
    for part in path {
        match node.get(part) {
            Some(next) => node = next,
            None => return event.tenant_id.clone(),
        }
    }
    match node {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => event.tenant_id.clone(),
    }
}

/// The headers of `event`'s record, in a fixed order.
pub fn headers(event: &StoredEvent) -> [(&'static str, String); 4] {
    [
        (HEADER_EVENT_ID, event.id.clone()),
        (HEADER_EVENT_TYPE, event.event_type.clone()),
        (HEADER_TENANT, event.tenant_id.clone()),
        (HEADER_OFFSET, event.offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset: 7,
            id: "evt_1".into(),
            event_type: "user.login".into(),
            body: body.into(),
            chain: None,
        }
    }

    #[test]
    fn key_is_the_tenant_or_the_field() {
        let e = event(r#"{"id":"evt_1","type":"user.login","actor":{"id":"usr_9","n":3}}"#);
        assert_eq!(record_key(&RecordKey::Tenant, &e), "acme");
        let field = |p: &str| RecordKey::Field(p.split('.').map(str::to_owned).collect());
        assert_eq!(record_key(&field("actor.id"), &e), "usr_9");
        assert_eq!(record_key(&field("actor.n"), &e), "3");
        assert_eq!(record_key(&field("actor"), &e), "acme", "an object is no key");
        assert_eq!(record_key(&field("target.id"), &e), "acme", "missing falls back");
    }

    #[test]
    fn headers_carry_id_type_tenant_offset() {
        let h = headers(&event("{}"));
        assert_eq!(
            h.map(|(k, v)| format!("{k}={v}")),
            ["event_id=evt_1", "event_type=user.login", "tenant_id=acme", "offset=7"].map(String::from)
        );
    }
}
