//! The delivery engine: every sink is a consumer with its own committed cursor per tenant.
//!
//! * [`supervisor`] runs one worker per sink and follows configuration changes (it applies
//!   the plans of [`leases`]); it is the top of the module graph;
//! * [`shared`] holds what the parts share (store, keys, the supervisor's mailbox, a sink's
//!   delivery context), [`tenants`] which tenants a sink reads;
//! * [`lane`] is one sink reading one tenant: batch, deliver, commit in order;
//! * [`deliver`] is the retry loop for one batch (breaker, timeout, backoff, verdict);
//! * [`jobs`] are deliveries beside the cursor: test, dead-letter retry, replay;
//! * [`spec`] is the sink definition, [`secrets`] seals its secrets, [`status`] and
//!   [`health`] say how it is doing, [`recorder`] writes the delivery log.
//!
//! Sinks only classify attempts; everything about time and state is decided here.

pub mod backoff;
pub mod breaker;
mod deliver;
pub mod health;
mod holds;
mod jobs;
mod kinds;
mod lane;
mod leases;
pub mod metrics;
mod recorder;
pub mod secrets;
mod shared;
pub mod spec;
pub mod stage;
pub mod status;
mod supervisor;
mod tenants;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_sinks::{ConfigError, Secrets, Sink, SinkEnv};
use auditrelay_store::{DeadLetter, SinkRow, Store, StoreError};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use health::{LatencyPercentiles, SinkHealth, TenantPosition};
pub use holds::Hold;
pub use jobs::{AttemptOutcome, AttemptResult, ReplayInfo, ReplayState};
pub use kinds::{sink_kinds, SinkDefaults, SinkKind};
pub use lane::PAUSE_AFTER_EXHAUSTED;
pub use secrets::{KeyId, Keyring, SecretsError};
use shared::{Control, EngineShared};
pub use status::LastError;
pub use status::SinkState;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the stored sink definition is unreadable: {0}")]
    Spec(String),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("the sink configuration does not work: {0}")]
    Build(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the call needs no longer exists (events pruned from the log).
    #[error("{0}")]
    Gone(String),
}

pub struct EngineConfig {
    pub env: SinkEnv,
    /// The master keys: the current one seals, every one opens (retired keys after a rotation).
    pub keyring: Keyring,
    /// How long the delivery log keeps attempts.
    pub delivery_log_retention: Duration,
    /// Builds the sink a stored definition describes; `None` = every kind of the sink registry
    /// ([`RegistrySinks`]). The seam lets tests drive the engine with scripted sinks instead of
    /// receivers on sockets.
    pub sink_factory: Option<Arc<dyn SinkFactory>>,
}

/// Turns a stored sink definition (kind, config, opened secrets, format) into a [`Sink`]. It is
/// called wherever the engine needs a sink: a worker (re)start, a test delivery, a dead-letter
/// retry, a replay.
pub trait SinkFactory: Send + Sync {
    /// `sink_id` names the stored sink, so a factory may hand different sinks to different rows.
    fn build(
        &self,
        sink_id: &str,
        kind: &str,
        config: &Value,
        secrets: &Secrets,
        format: &str,
        env: &SinkEnv,
    ) -> Result<Arc<dyn Sink>, ConfigError>;
}

/// The production factory: every kind `auditrelay_sinks::registry` knows.
pub struct RegistrySinks;

impl SinkFactory for RegistrySinks {
    fn build(
        &self,
        _sink_id: &str,
        kind: &str,
        config: &Value,
        secrets: &Secrets,
        format: &str,
        env: &SinkEnv,
    ) -> Result<Arc<dyn Sink>, ConfigError> {
        auditrelay_sinks::build(kind, config, secrets, format, env)
    }
}

pub use auditrelay_core::ids::{ReplayId, SinkId, TenantId};

#[derive(Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
    replays: Arc<jobs::ReplayTable>,
    tasks: TaskTracker,
    supervisor: Arc<Mutex<Option<JoinHandle<()>>>>,
    recorder_stop: CancellationToken,
}

impl Engine {
    /// Starts a worker for every stored sink, and the delivery-log writer.
    pub fn start(store: Arc<dyn Store>, config: EngineConfig) -> Engine {
        let (control, commands) = mpsc::unbounded_channel();
        let recorder = recorder::Recorder::new(config.delivery_log_retention);
        let shared = Arc::new(EngineShared {
            store: store.clone(),
            key: config.keyring,
            env: config.env,
            sink_factory: config.sink_factory.unwrap_or_else(|| Arc::new(RegistrySinks)),
            recorder: recorder.clone(),
            statuses: Mutex::new(HashMap::new()),
            control,
            shutdown: CancellationToken::new(),
            started_at: auditrelay_core::time::now_rfc3339(),
            node_id: auditrelay_core::ids::new_prefixed_id("node"),
        });
        let tasks = TaskTracker::new();
        let recorder_stop = CancellationToken::new();
        tasks.spawn(recorder.run(store, recorder_stop.clone()));
        tracing::info!(node = %shared.node_id, "delivery engine started");
        let supervisor = tokio::spawn(supervisor::supervise(shared.clone(), commands));
        Engine {
            shared,
            replays: Arc::new(Mutex::new(HashMap::new())),
            tasks,
            supervisor: Arc::new(Mutex::new(Some(supervisor))),
            recorder_stop,
        }
    }

    /// This process's id in the lease table. Sources lease under the same id: one process is
    /// one live node, or the fair share of sinks per node would halve.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn master_key(&self) -> &Keyring {
        &self.shared.key
    }

    pub fn env(&self) -> &SinkEnv {
        &self.shared.env
    }

    /// The sink was created, changed, paused, resumed or deleted: run what the store says now.
    pub fn reload(&self, sink: &SinkId) {
        let _ = self.shared.control.send(Control::Reload(sink.to_string()));
    }

    /// A resumed sink starts with a closed breaker and a clean "exhausted in a row" count.
    pub fn resumed(&self, sink: &SinkId) {
        let status = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sink.as_str())
            .cloned();
        if let Some(status) = status {
            status.reset_exhausted();
        }
        self.reload(sink);
    }

    /// Stops the sink's replays; its worker stops on the next reload.
    pub fn deleted(&self, sink: &SinkId) {
        for (info, stop) in self.replays.lock().unwrap_or_else(|p| p.into_inner()).values() {
            if &info.sink_id == sink {
                stop.cancel();
            }
        }
        self.reload(sink);
    }

    pub fn tenant_created(&self, tenant: &TenantId) {
        let _ = self.shared.control.send(Control::TenantCreated(tenant.to_string()));
    }

    /// What each sink reading `tenant` has yet to deliver there (retention's purge guard).
    pub async fn holds(&self, tenant: &TenantId) -> Result<Vec<Hold>, EngineError> {
        holds::holds(self.shared.store.as_ref(), tenant.as_str()).await
    }

    pub async fn health(&self, row: &SinkRow) -> Result<health::SinkHealth, EngineError> {
        health::health(&self.shared, row).await
    }

    pub async fn test_delivery(&self, row: &SinkRow) -> Result<AttemptResult, EngineError> {
        jobs::test_delivery(&self.shared, row).await
    }

    pub async fn retry_dead_letter(&self, row: &SinkRow, dl: &DeadLetter) -> Result<AttemptResult, EngineError> {
        jobs::retry_dead_letter(&self.shared, row, dl).await
    }

    /// Starts re-delivering `from..=to` of `tenant` to this sink only.
    pub fn start_replay(
        &self,
        row: &SinkRow,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<ReplayInfo, EngineError> {
        let ctx = self.shared.delivery_ctx(row)?;
        let info = ReplayInfo {
            id: ReplayId::generate(),
            sink_id: row.sink_id(),
            tenant: tenant.clone(),
            from_offset: from,
            to_offset: to,
            state: ReplayState::Running,
            delivered_events: 0,
            dead_lettered_batches: 0,
            error: None,
            started_at: auditrelay_core::time::now_rfc3339(),
            finished_at: None,
        };
        let stop = self.shared.shutdown.child_token();
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.id.clone(), (info.clone(), stop.clone()));
        self.tasks.spawn(jobs::run_replay(
            self.shared.clone(),
            self.replays.clone(),
            ctx,
            info.id.clone(),
            stop,
        ));
        Ok(info)
    }

    pub fn replay(&self, sink: &SinkId, replay: &ReplayId) -> Option<ReplayInfo> {
        let table = self.replays.lock().unwrap_or_else(|p| p.into_inner());
        table
            .get(replay)
            .filter(|(info, _)| &info.sink_id == sink)
            .map(|(info, _)| info.clone())
    }

    /// Drains: lanes stop reading, finish the attempts on the wire, commit what was accepted;
    /// replays stop between batches; the delivery log is flushed.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let supervisor = self.supervisor.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = supervisor {
            let _ = handle.await;
        }
        self.recorder_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
