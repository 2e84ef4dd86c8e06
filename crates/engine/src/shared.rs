//! What the engine's parts share: the store and keys ([`EngineShared`]), the supervisor's
//! mailbox ([`Control`]) and everything one delivery needs ([`DeliveryCtx`]). It sits below
//! every other module but the pure ones (`spec`, `status`, `breaker`, `backoff`, `recorder`,
//! `secrets`), so the supervisor, lanes, jobs, health and leases all depend on it and never on
//! each other's homes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auditrelay_sinks::{Sink, SinkEnv};
use auditrelay_store::{SinkRow, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::recorder::Recorder;
use crate::secrets::Keyring;
use crate::spec::SinkSpec;
use crate::stage::{Stage, HASH_KEY};
use crate::status::SinkStatus;
use crate::EngineError;

/// What the supervisor is told; it owns the workers, so everything else asks through this.
pub(crate) enum Control {
    /// Re-read the sink from the store and run what it says now (created, changed, paused,
    /// resumed, deleted).
    Reload(String),
    /// A tenant appeared: sinks over every tenant start reading it.
    TenantCreated(String),
    /// A shed lease was released (its worker had stopped): the sink may be claimed again.
    LeaseReleased(String),
}

pub(crate) struct EngineShared {
    pub store: Arc<dyn Store>,
    pub key: Keyring,
    pub env: SinkEnv,
    /// Builds the sink of a definition: the registry in production, scripted sinks in tests.
    pub sink_factory: Arc<dyn crate::SinkFactory>,
    pub recorder: Arc<Recorder>,
    pub statuses: Mutex<HashMap<String, Arc<SinkStatus>>>,
    pub control: mpsc::UnboundedSender<Control>,
    pub shutdown: CancellationToken,
    /// When this process started counting (the status counters are in-memory).
    pub started_at: String,
    /// This process's name in the lease table (new at every start).
    pub node_id: String,
}

impl EngineShared {
    pub fn status(&self, sink_id: &str, spec: &SinkSpec) -> Arc<SinkStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(sink_id.to_owned())
            .or_insert_with(|| Arc::new(SinkStatus::new(spec.breaker)))
            .clone()
    }

    /// Everything needed to deliver for this sink: spec, opened secrets, a built sink.
    pub fn delivery_ctx(&self, row: &SinkRow) -> Result<Arc<DeliveryCtx>, EngineError> {
        let spec = SinkSpec::from_stored(&row.spec)?;
        let secrets = self.key.open(&row.id, &row.sealed_secrets)?;
        let sink = self.sink_factory.build(
            &row.id,
            &spec.kind,
            &serde_json::Value::Object(spec.config.clone()),
            &secrets,
            &spec.format,
            &self.env,
        )?;
        // A stored definition whose filter or transform no longer compiles (written by hand,
        // or by a version with other rules) cannot be delivered as its owner meant: the sink
        // pauses with the reason, as for any other configuration it cannot run.
        let stage = Stage::from_spec(&spec, secrets.get(HASH_KEY).map(String::as_str))
            .map_err(|e| EngineError::Build(auditrelay_sinks::ConfigError::new(e.field, e.message)))?
            .map(Arc::new);
        let status = self.status(&row.id, &spec);
        Ok(Arc::new(DeliveryCtx {
            sink_id: row.id.clone(),
            spec,
            stage,
            sink,
            status,
            recorder: self.recorder.clone(),
        }))
    }
}

/// Everything one delivery needs, shared by a sink's lanes and jobs.
pub struct DeliveryCtx {
    pub sink_id: String,
    pub spec: SinkSpec,
    /// The sink's filter and transform; `None` when it has neither.
    pub stage: Option<Arc<Stage>>,
    pub sink: Arc<dyn Sink>,
    pub status: Arc<SinkStatus>,
    pub recorder: Arc<Recorder>,
}
