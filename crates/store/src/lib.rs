//! The durable log and everything stored beside it, behind three narrow traits:
//!
//! * [`EventLog`]: per-tenant, gapless, append-only partitions with group commit;
//! * [`Cursors`]: committed positions of consumers (sinks), one per tenant they read;
//! * [`Catalog`]: tenants and hashed API keys.
//!
//! The traits are what the server and the delivery engine see. A backend (SQLite in
//! [`sqlite`], PostgreSQL next) implements all three plus [`Store`]. Wake-ups after a commit go
//! through [`Notifier`], so consumers never poll the database in a loop.

mod error;
mod model;
mod notify;
pub mod sqlite;

use async_trait::async_trait;
use auditrelay_core::{NewEvent, StoredEvent};
use tokio::sync::watch;

pub use error::StoreError;
pub use model::{ApiKey, AppendOutcome, NewApiKey, ReadQuery, Tenant};
pub use notify::Notifier;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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

/// A complete backend.
#[async_trait]
pub trait Store: EventLog + Cursors + Catalog {
    /// Cheap check that the store answers (readiness).
    async fn ping(&self) -> Result<()>;
    /// Finishes queued writes and releases the store. Later calls fail with `ShuttingDown`.
    async fn close(&self);
}
