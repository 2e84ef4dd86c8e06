//! Retention (docs/retention.md): per-tenant policies, the active window the consume routes
//! show, and the purge of events past the archive window.
//!
//! * [`policy`]: what a policy is and how an override lays on the server's defaults;
//! * this module: [`RetentionService`], which resolves policies (cached briefly, since every
//!   pull read asks) and reads the active part of a log;
//! * [`purge`]: one purge pass over every tenant, guarded by what sinks still owe.

pub mod policy;
mod purge;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditrelay_core::time::{parse_rfc3339, render_micros, Clock};
use auditrelay_core::StoredEvent;
use auditrelay_engine::Engine;
use auditrelay_store::{ReadQuery, Store, StoreError};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

pub use policy::{PolicyError, PolicyOverride, RetentionPolicy};
pub use purge::PurgeReport;

use crate::integrity::CheckpointSigner;

/// How long a resolved policy is reused by the consume routes. A change made on this node is
/// seen at once; one made on another node of a cluster within this long.
const POLICY_CACHE_TTL: Duration = Duration::from_secs(10);

pub struct RetentionService {
    store: Arc<dyn Store>,
    engine: Engine,
    signer: Arc<CheckpointSigner>,
    clock: Arc<dyn Clock>,
    defaults: RetentionPolicy,
    cache: Mutex<HashMap<String, (RetentionPolicy, Instant)>>,
}

impl RetentionService {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Engine,
        signer: Arc<CheckpointSigner>,
        clock: Arc<dyn Clock>,
        defaults: RetentionPolicy,
    ) -> RetentionService {
        RetentionService {
            store,
            engine,
            signer,
            clock,
            defaults,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn defaults(&self) -> RetentionPolicy {
        self.defaults
    }

    /// The tenant's stored override (if any) and the effective policy, uncached.
    pub async fn policy(&self, tenant: &str) -> Result<(Option<PolicyOverride>, RetentionPolicy), StoreError> {
        let over = match self.store.retention_policy(tenant).await? {
            None => None,
            Some(text) => Some(serde_json::from_str::<PolicyOverride>(&text).map_err(|e| {
                StoreError::Corrupt(format!("the stored retention policy of `{tenant}` is unreadable: {e}"))
            })?),
        };
        let effective = over.as_ref().map_or(self.defaults, |o| self.defaults.with(o));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), (effective, Instant::now()));
        Ok((over, effective))
    }

    /// The effective policy, from the cache when it is fresh.
    pub async fn effective(&self, tenant: &str) -> Result<RetentionPolicy, StoreError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .copied();
        match cached {
            Some((policy, at)) if at.elapsed() < POLICY_CACHE_TTL => Ok(policy),
            _ => Ok(self.policy(tenant).await?.1),
        }
    }

    /// Stores (or with `None` clears) a tenant's override; the cache forgets the old one.
    pub async fn set_override(&self, tenant: &str, over: Option<&PolicyOverride>) -> Result<(), StoreError> {
        let text = over.map(|o| serde_json::to_string(o).unwrap_or_else(|_| "{}".into()));
        self.store.set_retention_policy(tenant, text.as_deref()).await?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(tenant);
        Ok(())
    }

    /// `days` before now.
    fn days_ago(&self, days: u32) -> Timestamp {
        let ago = jiff::SignedDuration::from_hours(i64::from(days) * 24);
        self.clock.now().saturating_sub(ago).unwrap_or(Timestamp::MIN)
    }

    /// The last offset received before `cutoff` (0 when none is that old).
    async fn received_before(&self, tenant: &str, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.store.offset_at_time(tenant, &render_micros(cutoff)).await
    }

    /// The last offset received before the window of `days`.
    async fn older_than(&self, tenant: &str, days: u32) -> Result<u64, StoreError> {
        self.received_before(tenant, self.days_ago(days)).await
    }

    /// The last archived offset of a tenant: every event at or below it is past the active
    /// window.
    pub async fn archived_through(&self, tenant: &str) -> Result<u64, StoreError> {
        let policy = self.effective(tenant).await?;
        self.older_than(tenant, policy.active_days).await
    }

    /// Reads like [`EventLog::read`](auditrelay_store::EventLog::read) but never returns an
    /// archived event: a cursor inside the archive moves to its end. The second value is that
    /// end when the cursor moved (so clients can tell retention from loss).
    ///
    /// Costs nothing extra while the cursor is in the active window: only a read whose first
    /// event is older than the window looks for the boundary.
    pub async fn read_active(&self, mut query: ReadQuery) -> Result<(Vec<StoredEvent>, Option<u64>), StoreError> {
        let events = self.store.read(query.clone()).await?;
        let Some(first) = events.first() else {
            return Ok((events, None));
        };
        let policy = self.effective(&query.tenant).await?;
        let cutoff = self.days_ago(policy.active_days);
        let received = first.times().received_at.as_deref().and_then(parse_rfc3339);
        // Active (or, for a body without the time, which ours always has, treated as such).
        if received.is_none_or(|r| r >= cutoff) {
            return Ok((events, None));
        }
        let boundary = self.received_before(&query.tenant, cutoff).await?;
        if boundary <= query.after {
            return Ok((events, None));
        }
        query.after = boundary;
        Ok((self.store.read(query).await?, Some(boundary)))
    }

    /// Runs purge passes every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = self.purge_once(&shutdown).await {
                tracing::warn!(error = %e, "retention pass failed; trying again next interval");
            }
        }
    }
}
