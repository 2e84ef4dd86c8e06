//! The durable log and everything stored beside it, behind narrow traits:
//!
//! * [`EventLog`]: per-tenant, gapless, append-only partitions with group commit;
//! * [`Cursors`]: committed positions of consumers (sinks), one per tenant they read;
//! * [`Catalog`]: tenants and hashed API keys;
//! * [`SinkStore`], [`DeadLetters`], [`DeliveryLog`]: sink definitions (secrets sealed), batches
//!   that exhausted their retries, and one row per delivery attempt.
//!
//! The traits are what the server and the delivery engine see. A backend (SQLite in
//! [`sqlite`], PostgreSQL in [`postgres`]) implements all three plus [`Store`]. Wake-ups after a commit go
//! through [`Notifier`], so consumers never poll the database in a loop.

pub mod chain;
mod error;
mod model;
mod notify;
pub mod postgres;
pub mod purge;
pub mod seglog;
pub mod sqlite;
mod time_search;

use async_trait::async_trait;
use auditrelay_core::{NewEvent, StoredEvent};
use tokio::sync::watch;

pub use error::StoreError;
pub use model::{
    ApiKey, AppendOutcome, Checkpoint, DeadLetter, DeliveryAttempt, NewApiKey, ReadQuery, SinkRow, SourceRow, Tenant,
};
pub use notify::Notifier;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Observes each group commit of the event log (for metrics): requests and events in the
/// group, and the new head of every tenant it touched (published in commit order, so a gauge
/// never goes back). Every backend's writer calls it.
pub type GroupObserver = std::sync::Arc<dyn Fn(usize, usize, &std::collections::HashMap<String, u64>) + Send + Sync>;

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends a request's events. Returns only after they are durable (fsync'd), with one
    /// outcome per event, in order. Concurrent calls share one transaction (group commit).
    /// Either every event of the call is stored (or found as a duplicate) or none is.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>>;

    /// Events of one tenant with offset > `after`, in offset order, at most `limit`, matching
    /// the type filter.
    async fn read(&self, query: ReadQuery) -> Result<Vec<StoredEvent>>;

    /// The highest committed offset of a tenant (0 when its log is empty).
    async fn head(&self, tenant: &str) -> Result<u64>;

    /// A receiver that changes whenever the tenant's head moves. Subscribe *before* reading so
    /// a commit between the read and the wait is not missed.
    fn subscribe(&self, tenant: &str) -> watch::Receiver<u64>;

    /// The cursor from which a reader sees the tenant's events received at or after `time`
    /// (RFC 3339): the offset just before the first such event, or the head if there is none.
    async fn offset_at_time(&self, tenant: &str, time: &str) -> Result<u64>;
}

#[async_trait]
pub trait Cursors: Send + Sync {
    /// The committed cursor of a consumer in one tenant, if it has one.
    async fn cursor(&self, consumer: &str, tenant: &str) -> Result<Option<u64>>;
    /// Commits a consumer's cursor. It never moves backwards by accident: callers that mean to
    /// rewind (replay) use `reset_cursor`.
    async fn commit_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()>;
    /// Sets a cursor to any position (start_at, operator rewind).
    async fn reset_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()>;
    /// Every cursor of a consumer as (tenant, position), ordered by tenant.
    async fn cursors_of(&self, consumer: &str) -> Result<Vec<(String, u64)>>;
}

/// Sink definitions. Deleting a sink deletes its cursors, dead letters and delivery log too.
#[async_trait]
pub trait SinkStore: Send + Sync {
    /// `StoreError::Conflict` if the id exists; `UnknownTenant` if `owner_tenant` is unknown.
    async fn create_sink(&self, sink: SinkRow) -> Result<()>;
    async fn sink(&self, id: &str) -> Result<Option<SinkRow>>;
    /// Sinks ordered by id, strictly after `after`. `owner`: `Some(t)` = only sinks owned by
    /// tenant `t`; `None` = every sink.
    async fn list_sinks(&self, owner: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<SinkRow>>;
    /// Replaces `spec`, `sealed_secrets`, `paused` and `pause_reason` if the stored revision is
    /// still `sink.revision`; sets `updated_at` and returns the row with revision + 1.
    /// `Ok(None)` if the sink is gone; `StoreError::Conflict` if someone updated it meanwhile.
    async fn update_sink(&self, sink: SinkRow) -> Result<Option<SinkRow>>;
    /// Pauses or resumes without a revision check (the engine pauses on a 401 while an
    /// operator may be editing). Bumps the revision. `Ok(None)` if the sink is gone.
    async fn set_sink_paused(&self, id: &str, paused: bool, reason: Option<&str>) -> Result<Option<SinkRow>>;
    /// `false` if there was no such sink.
    async fn delete_sink(&self, id: &str) -> Result<bool>;
}

/// Source definitions (listeners and pollers that append events). Operator-owned; a source's
/// run-time counters live in the process that runs it, not here.
#[async_trait]
pub trait SourceStore: Send + Sync {
    /// `StoreError::Conflict` if the id exists; `UnknownTenant` if `tenant` is unknown.
    async fn create_source(&self, source: SourceRow) -> Result<()>;
    async fn source(&self, id: &str) -> Result<Option<SourceRow>>;
    /// Sources ordered by id, strictly after `after`.
    async fn list_sources(&self, after: Option<&str>, limit: usize) -> Result<Vec<SourceRow>>;
    /// Replaces `tenant`, `spec`, `sealed_secrets` and `paused` if the stored revision is still
    /// `source.revision`; returns the row with revision + 1. `Ok(None)` if it is gone;
    /// `StoreError::Conflict` if someone updated it meanwhile.
    async fn update_source(&self, source: SourceRow) -> Result<Option<SourceRow>>;
    /// Pauses or resumes without a revision check; bumps the revision. `Ok(None)` if gone.
    async fn set_source_paused(&self, id: &str, paused: bool) -> Result<Option<SourceRow>>;
    /// `false` if there was no such source.
    async fn delete_source(&self, id: &str) -> Result<bool>;
}

#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn add_dead_letter(&self, dead_letter: DeadLetter) -> Result<()>;
    /// A sink's dead letters ordered by id (ids are time-ordered), strictly after `after`.
    async fn list_dead_letters(&self, sink_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>>;
    async fn dead_letter(&self, sink_id: &str, id: &str) -> Result<Option<DeadLetter>>;
    /// Replaces the attempts JSON (a retry that failed again); `false` if it is gone.
    async fn update_dead_letter_attempts(&self, sink_id: &str, id: &str, attempts: &str) -> Result<bool>;
    /// `false` if there was no such dead letter.
    async fn delete_dead_letter(&self, sink_id: &str, id: &str) -> Result<bool>;
    /// How many dead letters a sink holds.
    async fn count_dead_letters(&self, sink_id: &str) -> Result<u64>;
}

/// The delivery log: one row per attempt, kept for a bounded window.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Appends rows in one transaction (the engine buffers and flushes them together).
    async fn record_attempts(&self, attempts: Vec<DeliveryAttempt>) -> Result<()>;
    /// A sink's attempts, newest first, with their row number; `before` pages backwards.
    async fn list_attempts(
        &self,
        sink_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryAttempt)>>;
    /// Deletes attempts older than `older_than` (RFC 3339); returns how many went.
    async fn prune_attempts(&self, older_than: &str) -> Result<u64>;
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// Creates a tenant; `StoreError::Conflict` if the id exists.
    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>>;
    /// Tenants ordered by id, strictly after `after`.
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<Tenant>>;
    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey>;
    /// The key whose SHA-256 hash is `hash` (revoked keys included; the caller checks).
    async fn key_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiKey>>;
    /// Keys of a tenant ordered by id, strictly after `after`.
    async fn list_keys(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>>;
    /// Marks a key revoked; `false` when the tenant has no such key.
    async fn revoke_key(&self, tenant: &str, key_id: &str) -> Result<bool>;
    /// Records when a key was last used (callers throttle this).
    async fn touch_key(&self, key_id: &str, at: &str) -> Result<()>;
}

/// What one lease heartbeat left a node with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The sinks this node may drive until its next heartbeat is due.
    pub held: Vec<String>,
    /// Sinks per live node, rounded up: a node holding more sheds the rest.
    pub fair_share: usize,
}

/// Which node drives which sink when several nodes share one database: each sink is driven by
/// exactly one node at a time, through leases that expire unless renewed.
#[async_trait]
pub trait SinkLeases: Send + Sync {
    /// One heartbeat of `node`: marks the node alive for `ttl`, renews its leases among `sinks`,
    /// and claims free or expired leases among `sinks` up to its fair share. Time is the
    /// database's clock, so nodes need not agree on theirs. A single-node backend grants all.
    async fn heartbeat_leases(&self, node: &str, sinks: &[String], ttl: std::time::Duration) -> Result<LeaseGrant>;
    /// Gives leases up (their workers have stopped) so another node can take them at once.
    async fn release_leases(&self, node: &str, sinks: &[String]) -> Result<()>;
    /// Whether this backend serves one process only: it grants that process every lease and
    /// every change to a sink goes through it, so a heartbeat after the first one would find
    /// nothing new (the engine then stops heartbeating, and idle sinks cost nothing).
    fn single_node(&self) -> bool {
        false
    }
}

/// Signed checkpoints of the hash chain (docs/integrity.md). The store only keeps them; the
/// server signs.
#[async_trait]
pub trait Checkpoints: Send + Sync {
    /// A tenant's head and the chain value after it (`None` when its log is empty).
    async fn chain_head(&self, tenant: &str) -> Result<Option<(u64, [u8; 32])>>;
    /// Stores a checkpoint; one at the same (tenant, offset) already stored is kept.
    async fn add_checkpoint(&self, checkpoint: Checkpoint) -> Result<()>;
    /// A tenant's checkpoints with offset > `after`, in offset order, at most `limit`.
    async fn list_checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<Checkpoint>>;
    /// The checkpoint with the highest offset of each tenant that has one, as (tenant, offset).
    async fn latest_checkpoints(&self) -> Result<Vec<(String, u64)>>;
}

/// Retention (docs/retention.md): each tenant's policy, kept as JSON the store does not
/// interpret, and the purge of the oldest events. Purged offsets stay purged: reads start after
/// them, offsets are never reused, and the chain continues from the last purged event's value
/// (a signed checkpoint at the purge boundary lets verifiers start there).
#[async_trait]
pub trait Retention: Send + Sync {
    /// The tenant's stored policy; `None` when it follows the server's defaults.
    async fn retention_policy(&self, tenant: &str) -> Result<Option<String>>;
    /// Stores (or, with `None`, clears) a tenant's policy; `UnknownTenant` if there is none.
    async fn set_retention_policy(&self, tenant: &str, policy: Option<&str>) -> Result<()>;
    /// Every offset at or below this has been purged (0: nothing was).
    async fn purged_through(&self, tenant: &str) -> Result<u64>;
    /// Deletes the tenant's oldest events with offset <= `through` (never past the head), at
    /// most `max_events` in one short transaction so appends are never held up for long.
    /// Returns the new `purged_through`; call again until it reaches `through`.
    async fn purge_events(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64>;
}

/// A complete backend.
#[async_trait]
pub trait Store:
    EventLog
    + Cursors
    + Catalog
    + SinkStore
    + SourceStore
    + DeadLetters
    + DeliveryLog
    + SinkLeases
    + Checkpoints
    + Retention
{
    /// Cheap check that the store answers (readiness).
    async fn ping(&self) -> Result<()>;
    /// Finishes queued writes and releases the store. Later calls fail with `ShuttingDown`.
    async fn close(&self);
}
