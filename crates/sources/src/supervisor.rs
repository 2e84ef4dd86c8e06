//! Runs every stored, unpaused source this node holds the lease of, and keeps that set in step
//! with the store: a create, change, pause or delete (through [`Supervisor::reload`], or seen on
//! the periodic lease heartbeat of a multi-node store) starts, restarts or stops the source's
//! task without a server restart.
//!
//! On PostgreSQL each source runs on exactly one node: the leases are the sinks' (`SinkLeases`,
//! keyed by the `src_…` id, a separate heartbeat so sinks and sources each get a fair share).
//! A node that dies stops renewing; another takes the source over after the lease TTL, which for
//! a listener means the new node binds the same address (a listen address names this host, so
//! several nodes sharing one database should bind a wildcard or a shared address behind a
//! load balancer).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_store::{SourceRow, Store};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::append::Appender;
use crate::health::{SourceHealth, SourceStatus};
use crate::kinds::{SourceConfig, SourceSpec};

/// Opens a source's sealed secrets (the server holds the master key).
pub type SecretOpener = Arc<dyn Fn(&SourceRow) -> Result<BTreeMap<String, String>, String> + Send + Sync>;

pub struct SupervisorOptions {
    /// This node's id in the lease table.
    pub node_id: String,
    pub lease_ttl: Duration,
    /// How long a failed source waits before it starts again.
    pub restart_after: Duration,
    pub open_secrets: SecretOpener,
}

/// What a running source gets.
#[derive(Clone)]
pub struct RunContext {
    pub source_id: String,
    /// The tenant its events go to (kinds with `needs_tenant`).
    pub tenant: Option<String>,
    pub secrets: BTreeMap<String, String>,
    pub status: Arc<SourceStatus>,
    pub appender: Arc<dyn Appender>,
    /// Fires when the source must stop (changed, paused, deleted, lease lost, shutdown).
    pub cancel: CancellationToken,
}

struct Running {
    revision: u64,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

struct Inner {
    store: Arc<dyn Store>,
    appender: Arc<dyn Appender>,
    options: SupervisorOptions,
    wake: Notify,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    statuses: Mutex<HashMap<String, Arc<SourceStatus>>>,
    shutdown: CancellationToken,
}

/// Cheap to clone; every clone drives the same set of sources.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Starts the reconcile loop; it stops (and stops every source) when `shutdown` fires.
    pub fn start(
        store: Arc<dyn Store>,
        appender: Arc<dyn Appender>,
        options: SupervisorOptions,
        shutdown: CancellationToken,
    ) -> (Supervisor, JoinHandle<()>) {
        let inner = Arc::new(Inner {
            store,
            appender,
            options,
            wake: Notify::new(),
            running: tokio::sync::Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            shutdown,
        });
        let task = tokio::spawn(run_loop(inner.clone()));
        (Supervisor { inner }, task)
    }

    /// Something changed in the stored sources: reconcile now.
    pub fn reload(&self) {
        self.inner.wake.notify_one();
    }

    /// The source's health as this node sees it.
    pub fn health(&self, row: &SourceRow) -> SourceHealth {
        let status = self
            .inner
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.id)
            .cloned();
        match status {
            Some(status) => {
                let mut h = status.snapshot();
                if row.paused {
                    h.state = "paused".into();
                }
                h
            }
            None => SourceHealth {
                state: if row.paused { "paused" } else { "standby" }.into(),
                received: 0,
                appended: 0,
                malformed: 0,
                last_error: None,
                lag: None,
            },
        }
    }

    /// Waits (up to `deadline`) until the source's task reports `state`, for callers that want
    /// a create to be listening before they answer.
    pub async fn wait_for_state(&self, id: &str, states: &[&str], deadline: Duration) -> Option<SourceHealth> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let status = self
                .inner
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned();
            if let Some(status) = status {
                if states.contains(&status.state()) {
                    return Some(status.snapshot());
                }
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Supervisor {
    /// Waits (up to `deadline`) until this node no longer runs the source (after a pause or a
    /// delete), so that its address is free when the caller answers. `false` on timeout.
    pub async fn wait_until_stopped(&self, id: &str, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let running = self.inner.running.lock().await.contains_key(id);
            if !running {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn run_loop(inner: Arc<Inner>) {
    let single = inner.store.single_node();
    // Multi-node: heartbeat often enough that a lease never lapses while this node lives.
    let tick = if single {
        Duration::from_secs(3600)
    } else {
        inner.options.lease_ttl / 3
    };
    loop {
        if let Err(e) = reconcile(&inner).await {
            tracing::warn!(error = %e, "reconciling sources failed; retrying");
        }
        tokio::select! {
            _ = inner.shutdown.cancelled() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
    let mut running = inner.running.lock().await;
    let ids: Vec<String> = running.keys().cloned().collect();
    for (_, r) in running.drain() {
        stop(r).await;
    }
    if !ids.is_empty() {
        if let Err(e) = inner.store.release_leases(&inner.options.node_id, &ids).await {
            tracing::warn!(error = %e, "releasing source leases at shutdown");
        }
    }
}

async fn stop(r: Running) {
    r.cancel.cancel();
    // A source finishes its in-flight append (durable) and then returns.
    if tokio::time::timeout(Duration::from_secs(30), r.task).await.is_err() {
        tracing::warn!("a source did not stop within 30 s");
    }
}

async fn all_sources(store: &dyn Store) -> auditrelay_store::Result<Vec<SourceRow>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_sources(after.as_deref(), 500).await?;
        let done = page.len() < 500;
        after = page.last().map(|r| r.id.clone());
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

async fn reconcile(inner: &Arc<Inner>) -> Result<(), String> {
    let rows = all_sources(inner.store.as_ref()).await.map_err(|e| e.to_string())?;
    let active: Vec<String> = rows.iter().filter(|r| !r.paused).map(|r| r.id.clone()).collect();
    let held = inner
        .store
        .heartbeat_leases(&inner.options.node_id, &active, inner.options.lease_ttl)
        .await
        .map_err(|e| e.to_string())?
        .held;
    let wanted: HashMap<&str, &SourceRow> = rows
        .iter()
        .filter(|r| !r.paused && held.contains(&r.id))
        .map(|r| (r.id.as_str(), r))
        .collect();

    let mut running = inner.running.lock().await;
    // Stop what is gone, paused, no longer ours, or changed (restarted below).
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, r)| wanted.get(id.as_str()).is_none_or(|row| row.revision != r.revision))
        .map(|(id, _)| id.clone())
        .collect();
    let mut released = Vec::new();
    for id in stale {
        if let Some(r) = running.remove(&id) {
            stop(r).await;
        }
        if !wanted.contains_key(id.as_str()) {
            released.push(id);
        }
    }
    if !released.is_empty() {
        if let Err(e) = inner.store.release_leases(&inner.options.node_id, &released).await {
            tracing::warn!(error = %e, "releasing source leases");
        }
    }
    {
        let mut statuses = inner.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses.retain(|id, _| wanted.contains_key(id.as_str()));
    }
    for (id, row) in wanted {
        if running.contains_key(id) {
            continue;
        }
        let status = Arc::new(SourceStatus::default());
        inner
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), status.clone());
        let cancel = inner.shutdown.child_token();
        let task = tokio::spawn(run_source(inner.clone(), row.clone(), status, cancel.clone()));
        running.insert(
            id.to_owned(),
            Running {
                revision: row.revision,
                cancel,
                task,
            },
        );
    }
    Ok(())
}

/// Runs one source until cancelled; a failure (address taken, unreadable certificate) is
/// reported in its health and retried after `restart_after`.
async fn run_source(inner: Arc<Inner>, row: SourceRow, status: Arc<SourceStatus>, cancel: CancellationToken) {
    let config: Result<SourceConfig, String> = serde_json::from_str::<SourceSpec>(&row.spec)
        .map_err(|e| format!("the stored definition is unreadable: {e}"))
        .and_then(|spec| spec.typed().map_err(|e| e.to_string()));
    let secrets = (inner.options.open_secrets)(&row);
    let (config, secrets) = match (config, secrets) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => {
            status.set_state("failed");
            status.set_error(e);
            return;
        }
    };
    loop {
        status.set_state("starting");
        let ctx = RunContext {
            source_id: row.id.clone(),
            tenant: row.tenant.clone(),
            secrets: secrets.clone(),
            status: status.clone(),
            appender: inner.appender.clone(),
            cancel: cancel.clone(),
        };
        match config.run(ctx).await {
            Ok(()) => {
                status.set_state("stopped");
                return;
            }
            Err(e) => {
                tracing::warn!(source = %row.id, error = %e, "source failed; restarting");
                status.set_state("failed");
                status.set_error(e);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                return;
            }
            _ = tokio::time::sleep(inner.options.restart_after) => {}
        }
    }
}
