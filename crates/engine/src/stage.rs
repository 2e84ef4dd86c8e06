//! A sink's own view of the log: its `filter` decides which events it sends, its `transform`
//! what they look like. Applied to each event read, after `event_types` and before the
//! format, identically for every kind and format; the stored log and its chain never change
//! (api.md "Per-sink filter and transform").
//!
//! A transformed copy keeps its `offset`, `id`, `tenant_id` and `chain` and carries
//! `"transformed": true`, so a verifier can still prove nothing is missing and name the events
//! whose content it cannot check (invariant *the log never changes for a sink*; test
//! `stage::tests::a_transformed_copy_keeps_what_proves_completeness`).

use auditrelay_core::StoredEvent;
use auditrelay_pipeline::{Filter, FilterError, Transform, TransformError};
use serde_json::{Map, Value};

use crate::spec::SinkSpec;

/// The name of the sink secret keyed into `hash` (generated when a transform hashes and none
/// was given).
pub const HASH_KEY: &str = "hash_key";

/// The compiled filter and parsed transform of one sink definition.
pub struct Stage {
    filter: Option<Filter>,
    transform: Option<Transform>,
    hash_key: Vec<u8>,
}

/// Why a definition's filter or transform is refused; `field` is `filter` or `transform.<op>…`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct StageError {
    pub field: String,
    pub message: String,
    /// 1-based line and column of a filter error.
    pub position: Option<(usize, usize)>,
}

impl From<FilterError> for StageError {
    fn from(e: FilterError) -> Self {
        StageError {
            field: "filter".into(),
            message: e.to_string(),
            position: Some((e.line, e.column)),
        }
    }
}

impl From<TransformError> for StageError {
    fn from(e: TransformError) -> Self {
        StageError {
            field: e.field,
            message: e.message,
            position: None,
        }
    }
}

/// What the stage made of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Staged {
    /// Send this (the event itself, or its transformed copy).
    Send(StoredEvent),
    /// The filter said no.
    Skip,
    /// The filter could not be evaluated on this event: counted, and treated as no.
    FilterError(String),
}

impl Stage {
    /// `None` when the definition has neither filter nor transform: events pass untouched and
    /// cost nothing extra.
    pub fn from_spec(spec: &SinkSpec, hash_key: Option<&str>) -> Result<Option<Stage>, StageError> {
        Self::new(spec.filter.as_deref(), spec.transform.as_ref(), hash_key)
    }

    pub fn new(
        filter: Option<&str>,
        transform: Option<&Value>,
        hash_key: Option<&str>,
    ) -> Result<Option<Stage>, StageError> {
        let filter = filter.map(Filter::compile).transpose()?;
        let transform = transform.map(Transform::parse).transpose()?.filter(|t| !t.is_empty());
        if filter.is_none() && transform.is_none() {
            return Ok(None);
        }
        Ok(Some(Stage {
            filter,
            transform,
            hash_key: hash_key.unwrap_or_default().as_bytes().to_vec(),
        }))
    }

    /// Whether the transform hashes (the sink then needs a `hash_key`).
    pub fn needs_hash_key(transform: Option<&Value>) -> bool {
        transform
            .and_then(|t| t.get("hash"))
            .and_then(Value::as_array)
            .is_some_and(|paths| !paths.is_empty())
    }

    pub fn apply(&self, event: StoredEvent) -> Staged {
        let mut json: Value = match serde_json::from_str(&event.to_json()) {
            Ok(v) => v,
            // A stored body is always JSON; if one were not, sending it untouched is safer
            // than dropping it silently.
            Err(_) => return Staged::Send(event),
        };
        if let Some(filter) = &self.filter {
            match filter.matches(&json) {
                Ok(true) => {}
                Ok(false) => return Staged::Skip,
                Err(e) => return Staged::FilterError(e.to_string()),
            }
        }
        let Some(transform) = &self.transform else {
            return Staged::Send(event);
        };
        if !transform.apply(&mut json, &self.hash_key) {
            return Staged::Send(event);
        }
        Staged::Send(copy_with_body(event, json))
    }
}

/// The transformed copy: the log's own `offset`, `id`, `tenant_id` and `chain`, the new body.
fn copy_with_body(event: StoredEvent, json: Value) -> StoredEvent {
    let Value::Object(mut members) = json else {
        return event;
    };
    members.remove("offset");
    members.remove("chain");
    let event_type = members
        .get("type")
        .and_then(Value::as_str)
        .map_or_else(|| event.event_type.clone(), str::to_owned);
    let body = serde_jcs::to_string(&Value::Object(members)).unwrap_or_else(|_| event.body.clone());
    StoredEvent {
        body,
        event_type,
        ..event
    }
}

/// The members of a body (for tests and previews).
pub fn body_members(event: &StoredEvent) -> Map<String, Value> {
    match serde_json::from_str(&event.body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(offset: u64, body: Value) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: format!("e{offset}"),
            event_type: body["type"].as_str().unwrap_or("a.b").into(),
            body: serde_jcs::to_string(&body).unwrap(),
            chain: Some([7; 32]),
        }
    }

    #[test]
    fn no_filter_and_no_transform_is_no_stage() {
        assert!(Stage::new(None, None, None).unwrap().is_none());
        assert!(Stage::new(None, Some(&json!({})), None).unwrap().is_none());
    }

    #[test]
    fn the_filter_decides_and_a_runtime_error_is_reported_not_sent() {
        let stage = Stage::new(Some("event.severity >= 7"), None, None).unwrap().unwrap();
        let high = event(1, json!({"id": "e1", "type": "a.b", "severity": 9}));
        assert_eq!(stage.apply(high.clone()), Staged::Send(high));
        assert_eq!(
            stage.apply(event(2, json!({"id": "e2", "type": "a.b", "severity": 2}))),
            Staged::Skip
        );
        assert!(matches!(
            stage.apply(event(3, json!({"id": "e3", "type": "a.b"}))),
            Staged::FilterError(_)
        ));
    }

    #[test]
    fn a_transformed_copy_keeps_what_proves_completeness() {
        let stage = Stage::new(
            None,
            Some(&json!({"redact": ["actor.email"], "hash": ["actor.id"]})),
            Some("k"),
        )
        .unwrap()
        .unwrap();
        let original = event(
            5,
            json!({"id": "e5", "type": "a.b", "actor": {"id": "u1", "email": "a@b"}}),
        );
        let Staged::Send(copy) = stage.apply(original.clone()) else {
            panic!("sent")
        };
        assert_eq!(
            (copy.offset, &copy.id, &copy.tenant_id, copy.chain),
            (5, &original.id, &original.tenant_id, original.chain)
        );
        let body = body_members(&copy);
        assert_eq!(body["transformed"], json!(true));
        assert_eq!(body["actor"]["email"], json!("[REDACTED]"));
        assert!(body["actor"]["id"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert!(!body.contains_key("offset") && !body.contains_key("chain"));
        // An event the transform does not touch is sent as stored, byte for byte.
        let untouched = event(6, json!({"id": "e6", "type": "a.b"}));
        assert_eq!(stage.apply(untouched.clone()), Staged::Send(untouched));
    }

    #[test]
    fn errors_name_the_field_and_the_position() {
        let e = Stage::new(Some("event.severity >="), None, None).err().unwrap();
        assert_eq!(e.field, "filter");
        assert!(e.position.is_some());
        let e = Stage::new(None, Some(&json!({"scramble": ["a"]})), None).err().unwrap();
        assert_eq!(e.field, "transform.scramble");
    }
}
