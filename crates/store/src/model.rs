use auditrelay_core::TypeFilter;

/// What became of one appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub id: String,
    pub offset: u64,
    /// The tenant already had an event with this client id; `offset` is the original one.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct ReadQuery {
    pub tenant: String,
    pub after: u64,
    pub limit: usize,
    pub filter: TypeFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// A key to store: only its SHA-256 hash, never the secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub hash: [u8; 32],
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub hash: [u8; 32],
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A sink as stored. The store keeps the definition as an opaque JSON document (`spec`) and the
/// secrets as an opaque sealed blob: the server validates the spec, the engine interprets it,
/// and only code holding the master key can open the secrets (invariant *sink secrets sealed at rest*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRow {
    /// `snk_…`
    pub id: String,
    /// The tenant that owns the sink (a tenant key created it, or the operator named one).
    /// `None` for an operator sink, which may span every tenant or a list named in its spec.
    pub owner_tenant: Option<String>,
    /// The sink definition as JSON (name, kind, config, format, batch, retry, …).
    pub spec: String,
    /// AES-256-GCM sealed JSON map of secret name → value. Never plaintext.
    pub sealed_secrets: Vec<u8>,
    pub paused: bool,
    /// Why the sink is paused (operator request, a 401/403/404/410 from the receiver, …).
    pub pause_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Starts at 1; every update adds 1, so workers notice changes and writers detect races.
    pub revision: u64,
}

impl SinkRow {
    /// The id as its own type, for the engine's and the API's boundaries.
    pub fn sink_id(&self) -> auditrelay_core::ids::SinkId {
        auditrelay_core::ids::SinkId::from_stored(self.id.clone())
    }
}

/// A source as stored (api.md "Sources"): like a sink, the definition is opaque JSON the server
/// validates and the secrets an opaque sealed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// `src_…`
    pub id: String,
    /// The tenant its events go to; `None` for kinds that take the tenant from each record.
    pub tenant: Option<String>,
    /// The definition as JSON (name, kind, config).
    pub spec: String,
    /// AES-256-GCM sealed JSON map of secret name → value. Never plaintext.
    pub sealed_secrets: Vec<u8>,
    pub paused: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Starts at 1; every update adds 1, so the supervisor restarts changed sources.
    pub revision: u64,
}

/// A batch that exhausted its attempts (or was rejected for good). It names the range of the
/// log it covers; the events themselves stay in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `dl_…`
    pub id: String,
    pub sink_id: String,
    pub tenant_id: String,
    pub first_offset: u64,
    pub last_offset: u64,
    /// Events of the range that matched the sink's type filter, i.e. what was sent.
    pub event_count: u64,
    pub reason: String,
    /// JSON array of every attempt: `[{"attempt", "at", "status", "error", "latency_ms"}…]`.
    pub attempts: String,
    pub created_at: String,
}

/// One row of the delivery log: one attempt to deliver one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub sink_id: String,
    pub tenant_id: String,
    pub first_offset: u64,
    pub last_offset: u64,
    pub event_count: u64,
    /// What the attempt was for: `delivery`, `replay`, `dead_letter_retry` or `test`.
    pub purpose: String,
    /// 1-based attempt number within its batch.
    pub attempt: u32,
    /// `delivered`, `retry`, `rejected` or `misconfigured`.
    pub outcome: String,
    /// The receiver's status (HTTP status code) when there was one.
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub at: String,
}

/// A signed statement "tenant's log had `chain` after `offset`, at `signed_at`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub tenant_id: String,
    pub offset: u64,
    pub chain: [u8; 32],
    /// Canonical RFC 3339 (UTC, `Z`).
    pub signed_at: String,
    /// Ed25519 over the bytes docs/integrity.md defines.
    pub signature: [u8; 64],
}
