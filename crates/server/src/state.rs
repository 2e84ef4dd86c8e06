//! What every handler shares.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use auditrelay_core::Limits;
use auditrelay_engine::Engine;
use auditrelay_store::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub limits: Limits,
    pub sse_heartbeat: std::time::Duration,
    pub tenants: Arc<KnownTenants>,
    /// Cancelled on SIGTERM: long-polls answer at once and SSE streams end, so draining is quick.
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    /// The delivery engine: sink routes tell it what changed.
    pub engine: Engine,
    /// Per-key rate limit and stream cap.
    pub abuse: Arc<crate::abuse::Abuse>,
    /// Where a rotated operator token's hash is kept.
    pub data_dir: std::path::PathBuf,
    /// Signs hash-chain checkpoints; its public key is served at `/v1/integrity/key`.
    pub integrity: Arc<crate::integrity::CheckpointSigner>,
    /// "Now" for `received_at` and retention (a fake clock in tests).
    pub clock: Arc<dyn auditrelay_core::time::Clock>,
    /// Retention policies, the active window of the consume routes, and purges.
    pub retention: Arc<crate::retention::RetentionService>,
    /// Runs the sources (syslog listeners, …); source routes tell it what changed.
    pub sources: auditrelay_sources::Supervisor,
}

/// Tenants known to exist. Only positive answers are cached (tenants are never deleted), so a
/// tenant created on another node is found on the first miss.
#[derive(Default)]
pub struct KnownTenants {
    known: Mutex<HashSet<String>>,
}

impl KnownTenants {
    pub fn insert(&self, tenant: &str) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned());
    }

    pub async fn ensure(&self, store: &dyn Store, tenant: &str) -> Result<(), ApiError> {
        if self.known.lock().unwrap_or_else(|p| p.into_inner()).contains(tenant) {
            return Ok(());
        }
        match store.tenant(tenant).await? {
            Some(_) => {
                self.insert(tenant);
                Ok(())
            }
            None => Err(ApiError::not_found(format!("tenant `{tenant}` not found"))),
        }
    }
}
