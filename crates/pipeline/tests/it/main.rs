//! One test binary for the crate: the filter and the transform through their public API.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod filter;
mod transform;

use serde_json::{json, Value};

/// A typical event as the `json` format renders it.
pub fn event() -> Value {
    json!({
        "offset": 42,
        "id": "evt_01J9ZK3M5N6P7Q8R9S0T1V2W3X",
        "type": "auth.login.succeeded",
        "tenant_id": "acme",
        "occurred_at": "2026-12-03T18:59:59.123Z",
        "received_at": "2026-12-03T19:00:00.001Z",
        "severity": 8,
        "actor": {"id": "usr_123", "email": "ada@example.com", "ip_address": "192.0.2.7", "type": "user"},
        "target": {"id": "doc_9", "type": "document"},
        "metadata": {"domain": "finance", "env": "staging", "tags": ["a", "b"], "score": 0.75},
        "chain": "ab".repeat(32)
    })
}
