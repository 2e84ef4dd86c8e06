//! The server's side of sources: the [`Appender`] they append through (the same path as
//! `POST /v1/events`) and starting their supervisor.

use std::sync::Arc;

use async_trait::async_trait;
use auditrelay_core::{Limits, NewEvent};
use auditrelay_engine::secrets::Keyring;
use auditrelay_sources::{AppendFailure, Appender, Supervisor, SupervisorOptions};
use auditrelay_store::{AppendOutcome, Store};
use tokio_util::sync::CancellationToken;

use crate::state::KnownTenants;

/// How long a node's source leases last without a heartbeat (multi-node stores).
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub struct ServerAppender {
    pub store: Arc<dyn Store>,
    pub tenants: Arc<KnownTenants>,
    pub limits: Limits,
    pub clock: Arc<dyn auditrelay_core::time::Clock>,
}

#[async_trait]
impl Appender for ServerAppender {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn now_rfc3339(&self) -> String {
        self.clock.now_rfc3339()
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, AppendFailure> {
        let mut checked: Vec<&str> = Vec::new();
        for e in &events {
            if !checked.contains(&e.tenant_id.as_str()) {
                self.tenants
                    .ensure(self.store.as_ref(), &e.tenant_id)
                    .await
                    .map_err(|e| AppendFailure(e.message.clone()))?;
                checked.push(&e.tenant_id);
            }
        }
        crate::api::append_events(self.store.as_ref(), events)
            .await
            .map_err(|e| AppendFailure(e.to_string()))
    }

    async fn tenant_exists(&self, tenant: &str) -> Result<bool, AppendFailure> {
        if !auditrelay_core::ids::is_valid_tenant_id(tenant) {
            return Ok(false);
        }
        if self.tenants.ensure(self.store.as_ref(), tenant).await.is_ok() {
            return Ok(true);
        }
        match self.store.tenant(tenant).await {
            Ok(t) => Ok(t.is_some()),
            Err(e) => Err(AppendFailure(e.to_string())),
        }
    }
}

/// Starts the supervisor; it stops every source when `shutdown` fires (await the handle before
/// closing the store, so in-flight appends finish).
pub fn start(
    store: Arc<dyn Store>,
    appender: ServerAppender,
    keyring: Keyring,
    node_id: String,
    shutdown: CancellationToken,
) -> (Supervisor, tokio::task::JoinHandle<()>) {
    let options = SupervisorOptions {
        node_id,
        lease_ttl: LEASE_TTL,
        restart_after: std::time::Duration::from_secs(2),
        open_secrets: Arc::new(move |row| {
            keyring
                .open(&row.id, &row.sealed_secrets)
                .map_err(|e| format!("opening the source's secrets: {e}"))
        }),
    };
    Supervisor::start(store, Arc::new(appender), options, shutdown)
}
