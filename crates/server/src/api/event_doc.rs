//! The event as the API reference shows it. Events are validated by `auditrelay_core`'s own
//! parser (one pass, exact error locations) and rendered from their stored bytes, not through
//! serde types, so these types exist for the OpenAPI document only. The rules here are the
//! parser's (api.md "The event"); the schema fuzzer (tests/schema_fuzz.rs) sends what they
//! allow and checks the server accepts it, and reads events back against `StoredEvent`.

#![allow(dead_code)] // Fields are read by the schema derive only.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::doc::json_schema;

json_schema! {
    /// A client id, unique per tenant: sending it again is accepted and not stored twice.
    pub struct EventId = {
        "type": "string", "minLength": 1, "maxLength": 128,
        "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$",
        "description": "A client id, unique per tenant: 1–128 characters, no whitespace or control characters. Sending it again is accepted and not stored twice.",
        "examples": ["evt-1"]
    }
}

json_schema! {
    /// `category.verb`: 1–128 characters of `[a-z0-9_.-]` in dotted segments.
    pub struct EventType = {
        "type": "string", "minLength": 3, "maxLength": 128,
        "pattern": "^[a-z0-9_-]+(\\.[a-z0-9_-]+)+$",
        "description": "`category.verb`: 1–128 characters of `[a-z0-9_.-]`, at least two dot-separated segments.",
        "examples": ["decision.rejected"]
    }
}

json_schema! {
    /// 1–64 characters of `[a-z0-9_-]`.
    pub struct TenantId = {
        "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9_-]{1,64}$",
        "description": "A tenant id: 1–64 characters of `[a-z0-9_-]`.",
        "examples": ["acme"]
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

/// Who acted. Only these keys; each at most 1024 characters.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "usr_123", "type": "user", "ip_address": "203.0.113.42"}))]
pub struct Actor {
    #[schema(max_length = 1024)]
    id: Option<String>,
    #[serde(rename = "type")]
    #[schema(max_length = 1024)]
    kind: Option<String>,
    #[schema(max_length = 1024)]
    name: Option<String>,
    #[schema(max_length = 1024)]
    email: Option<String>,
    /// An IPv4 or IPv6 address.
    #[schema(value_type = Option<IpAddress>)]
    ip_address: Option<String>,
    #[schema(max_length = 1024)]
    user_agent: Option<String>,
}

/// An IPv4 or IPv6 address.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IpAddress {
    V4(Ipv4Address),
    V6(Ipv6Address),
}

#[derive(Serialize, ToSchema)]
#[schema(format = Ipv4, example = "203.0.113.42")]
pub struct Ipv4Address(String);

#[derive(Serialize, ToSchema)]
#[schema(format = Ipv6, example = "2001:db8::1")]
pub struct Ipv6Address(String);

/// What was acted on. Only these keys; each at most 1024 characters.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(rename = "type")]
    #[schema(max_length = 1024)]
    kind: Option<String>,
    #[schema(max_length = 1024)]
    id: Option<String>,
    #[schema(max_length = 1024)]
    name: Option<String>,
}

/// The service that emitted the event. Only these keys; each at most 1024 characters.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[schema(max_length = 1024)]
    service: Option<String>,
    #[schema(max_length = 1024)]
    version: Option<String>,
    #[schema(max_length = 1024)]
    instance: Option<String>,
}

/// An event as ingested: only `type` is required. Unknown top-level fields are refused (400
/// naming the field); application data belongs under `metadata`. A `null` field means absent.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    title = "Event (as ingested)",
    example = json!({"id": "evt-1", "type": "decision.rejected", "occurred_at": "2026-06-01T10:13:20.000Z",
        "actor": {"id": "usr_123", "type": "user", "ip_address": "203.0.113.42"}, "action": "reject",
        "target": {"type": "decision", "id": "dec_9"}, "outcome": "success", "severity": 9,
        "metadata": {"any": "json object"}})
)]
pub struct Event {
    id: Option<EventId>,
    /// The tenant, for the operator token (else `?tenant=`); a tenant key may give its own only.
    tenant_id: Option<TenantId>,
    #[serde(rename = "type")]
    kind: EventType,
    /// RFC 3339; default: the time received.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    actor: Option<Actor>,
    #[schema(max_length = 1024)]
    action: Option<String>,
    target: Option<Target>,
    /// Default `unknown`.
    outcome: Option<Outcome>,
    /// 0–10 (CEF's range); default 5.
    #[schema(minimum = 0, maximum = 10)]
    severity: Option<u8>,
    #[schema(max_length = 1024)]
    request_id: Option<String>,
    /// What changed, e.g. `{"status": ["pending", "rejected"]}`.
    changes: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    source: Option<Source>,
}

/// An event as stored and read back: the ingested fields with the server's additions.
#[derive(Serialize, ToSchema)]
#[schema(title = "Event (as stored and read)")]
pub struct StoredEvent {
    /// The event's position in its tenant's log: 1, 2, 3, … with no gaps.
    #[schema(minimum = 1)]
    offset: u64,
    id: EventId,
    tenant_id: TenantId,
    #[serde(rename = "type")]
    kind: EventType,
    #[schema(format = DateTime)]
    occurred_at: String,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(nullable = false)]
    actor: Option<Actor>,
    #[schema(nullable = false)]
    action: Option<String>,
    #[schema(nullable = false)]
    target: Option<Target>,
    outcome: Outcome,
    #[schema(minimum = 0, maximum = 10)]
    severity: u8,
    #[schema(nullable = false)]
    request_id: Option<String>,
    #[schema(nullable = false)]
    changes: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    metadata: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    source: Option<Source>,
    /// The tenant's hash chain through this event (docs/integrity.md).
    #[schema(nullable = false, pattern = "^[0-9a-f]{64}$")]
    chain: Option<String>,
}

json_schema! {
    /// `POST /v1/events` as NDJSON: each line one event. OpenAPI 3.1 has no schema for the
    /// items of a request stream, so the body is described as the array of its lines.
    pub struct NdjsonEvents = {
        "description": "NDJSON: one event per line (described here as the array of the lines' values).",
        "type": "array", "minItems": 1, "maxItems": 10000,
        "items": { "$ref": "#/components/schemas/Event" }
    }
}

json_schema! {
    /// `POST /v1/events` as JSON: one event or a non-empty array of them.
    pub struct EventsBody = {
        "description": "One event, or a non-empty array of events (at most 10000).",
        "oneOf": [
            { "$ref": "#/components/schemas/Event" },
            { "type": "array", "minItems": 1, "maxItems": 10000, "items": { "$ref": "#/components/schemas/Event" } }
        ]
    }
}
