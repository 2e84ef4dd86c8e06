//! The GraphQL types: typed readings of the REST answers and typed writers of the REST bodies.
//!
//! Output types deserialize the JSON a REST handler answered (snake_case, as REST names it) and
//! show it in camelCase; unknown REST fields are ignored, so REST can grow before GraphQL does.
//! Input types serialize into the exact body the REST handler takes, leaving out what the
//! caller left out, so REST's validation (and its field names in errors) applies unchanged.

use async_graphql::{ComplexObject, InputObject, Json, MaybeUndefined, SimpleObject, ID};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A sink, as `GET /v1/sinks/{id}` shows it: secrets appear only by name.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct Sink {
    pub id: ID,
    /// The owner tenant; null for an operator sink.
    pub tenant: Option<String>,
    pub name: String,
    pub kind: String,
    /// The kind's endpoint settings (see `sinkKinds { configSchema }`).
    pub config: Json<Value>,
    pub format: String,
    /// Type globs; empty = every type.
    pub event_types: Vec<String>,
    /// Operator sinks: the tenants read, null = every tenant. Always null for a tenant's sink,
    /// which reads its own tenant.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// `now`, `earliest` or an RFC 3339 time.
    pub start_at: String,
    pub batch: BatchPolicy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub max_in_flight: u64,
    /// `dead_letter` or `pause`.
    pub on_exhausted: String,
    pub breaker: BreakerPolicy,
    /// The CEL condition events must meet to be sent; null: every event.
    #[serde(default)]
    pub filter: Option<String>,
    /// Operations on each sent event's copy; null: none.
    #[serde(default)]
    pub transform: Option<Json<Value>>,
    /// Names of the stored secrets (never their values).
    pub secrets_set: Vec<String>,
    #[graphql(skip)]
    #[serde(default)]
    pub secret_rotation: Option<Map<String, Value>>,
    pub paused: bool,
    pub pause_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: u64,
    /// Secrets the server generated in this very call (shown once, like REST's
    /// `generated_secrets`); null everywhere else.
    #[serde(default)]
    pub generated_secrets: Option<Json<Value>>,
}

#[ComplexObject]
impl Sink {
    /// Secrets being rotated: the previous value keeps signing until `previousValidUntil`.
    async fn secret_rotation(&self) -> Vec<SecretRotation> {
        let Some(map) = &self.secret_rotation else {
            return Vec::new();
        };
        map.iter()
            .map(|(name, v)| SecretRotation {
                secret: name.clone(),
                previous_valid_until: v
                    .get("previous_valid_until")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct SecretRotation {
    pub secret: String,
    pub previous_valid_until: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct BatchPolicy {
    pub max_events: u64,
    pub max_bytes: u64,
    pub flush_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct RetryPolicy {
    pub max_attempts: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct BreakerPolicy {
    pub failure_threshold: u64,
    pub cooldown_ms: u64,
}

/// `POST /v1/sinks`'s answer: the sink, and the secrets generated for it (shown this once).
#[derive(Debug, Clone, SimpleObject)]
pub struct CreateSinkPayload {
    pub sink: Sink,
    /// e.g. `{"signing_secret": "whsec_…"}` for a webhook created without one; null if none.
    pub generated_secrets: Option<Json<Value>>,
}

/// `GET /v1/sinks/{id}/health`.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct SinkHealth {
    pub sink_id: ID,
    /// `active`, `backing_off`, `circuit_open` or `paused`.
    pub state: String,
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// Events behind the log head, over all tenants read.
    pub lag: u64,
    pub tenants: Vec<TenantLag>,
    pub consecutive_failures: u64,
    pub consecutive_exhausted_batches: u64,
    pub last_error: Option<LastError>,
    pub last_success_at: Option<String>,
    pub success_count: u64,
    pub failure_count: u64,
    pub delivered_events: u64,
    pub retried_attempts: u64,
    pub dead_lettered_batches: u64,
    pub dead_lettered_events: u64,
    pub filtered_events: u64,
    pub filter_errors: u64,
    pub dead_letters: u64,
    pub latency_ms: Option<Latency>,
    pub counts_since: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct TenantLag {
    pub tenant: String,
    pub cursor: Option<u64>,
    pub head: u64,
    pub lag: u64,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct LastError {
    pub at: String,
    pub tenant: String,
    pub status: Option<u16>,
    pub message: String,
}

/// Delivery latency percentiles in milliseconds.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// One delivery attempt: `POST /v1/sinks/{id}/test`, a dead-letter retry.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct TestResult {
    pub delivered: bool,
    /// `delivered`, `partial`, `retry`, `rejected` or `misconfigured`.
    pub outcome: String,
    /// The receiver's HTTP status, when it answered one.
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub error: Option<String>,
}

/// `POST /v1/sinks/{id}/replay` and `GET /v1/sinks/{id}/replays/{replay}`.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Replay {
    pub id: ID,
    pub sink_id: ID,
    pub tenant: String,
    pub from_offset: u64,
    pub to_offset: u64,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub state: String,
    pub delivered_events: u64,
    pub dead_lettered_batches: u64,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A batch that exhausted its retries, with every attempt.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct DeadLetter {
    pub id: ID,
    pub sink_id: ID,
    pub tenant: String,
    pub first_offset: u64,
    pub last_offset: u64,
    pub event_count: u64,
    pub reason: String,
    pub attempts: Vec<DeliveryAttempt>,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct DeliveryAttempt {
    pub attempt: u64,
    pub at: String,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

/// A sink kind and what it accepts (`GET /v1/sink-kinds`).
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct SinkKind {
    pub kind: String,
    pub formats: Vec<String>,
    pub default_format: String,
    pub secrets: Vec<SecretSpec>,
    /// JSON Schema (2020-12) of the kind's `config`.
    pub config_schema: Json<Value>,
    /// The defaults a sink of this kind gets for what its definition leaves out.
    #[serde(default)]
    pub defaults: Option<Json<Value>>,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct SecretSpec {
    pub name: String,
    /// Whether every definition of the kind needs it.
    pub required: bool,
    /// When it is needed although not always, or what happens without it.
    #[serde(default)]
    pub note: Option<String>,
}

/// REST's list answer: `{"items": […], "next_cursor": …}`.
#[derive(Debug, Deserialize)]
pub struct RestPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Relay's page information. Paging is forward only (`first`/`after`), so
/// `hasPreviousPage` is always false, as the Relay specification allows.
#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct SinkEdge {
    pub node: Sink,
    /// Pass as `after` to read the sinks after this one (REST's `cursor`).
    pub cursor: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct SinkConnection {
    pub edges: Vec<SinkEdge>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct DeadLetterEdge {
    pub node: DeadLetter,
    pub cursor: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct DeadLetterConnection {
    pub edges: Vec<DeadLetterEdge>,
    pub page_info: PageInfo,
}

/// `batch` of a definition; what is left out keeps its default (create) or stored value (update).
#[derive(Debug, Clone, Default, Serialize, InputObject)]
pub struct BatchInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_events: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, InputObject)]
pub struct RetryInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_backoff_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, InputObject)]
pub struct BreakerInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<i64>,
}

/// The body of `POST /v1/sinks`, field for field, validated by the same code.
#[derive(Debug, Clone, Serialize, InputObject)]
pub struct CreateSinkInput {
    pub name: String,
    pub kind: String,
    /// The owner tenant: implied by a tenant key; the operator names it, or leaves it out for
    /// a sink over several tenants (`tenants`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Json<Value>>,
    /// Secret names to values (write-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Json<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exhausted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerInput>,
    /// A CEL condition over `event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `{drop, redact, hash, rename, set}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<Json<Value>>,
}

/// The body of `PATCH /v1/sinks/{id}`: a field left out keeps its value; an explicit null means
/// what it means in REST (`tenants: null` = every tenant, a `null` member of `config` or
/// `secrets` removes that key). `config`, `batch`, `retry` and `breaker` merge key by key.
#[derive(Debug, Clone, Default, Serialize, InputObject)]
pub struct UpdateSinkInput {
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub name: MaybeUndefined<String>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub tenants: MaybeUndefined<Vec<String>>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub config: MaybeUndefined<Json<Value>>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub secrets: MaybeUndefined<Json<Value>>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub format: MaybeUndefined<String>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub event_types: MaybeUndefined<Vec<String>>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub start_at: MaybeUndefined<String>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub batch: MaybeUndefined<BatchInput>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub retry: MaybeUndefined<RetryInput>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub timeout_ms: MaybeUndefined<i64>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub max_in_flight: MaybeUndefined<i64>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub on_exhausted: MaybeUndefined<String>,
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub breaker: MaybeUndefined<BreakerInput>,
    /// null: no filter.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub filter: MaybeUndefined<String>,
    /// null: no transform.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub transform: MaybeUndefined<Json<Value>>,
}
