//! The supervisor: one worker per sink, each a set of lanes (one per tenant the sink reads).
//! API calls tell it that a sink changed (`reload`); it stops the old worker — which finishes
//! the attempts on the wire and commits what was accepted — and starts the new one after it,
//! so workers follow configuration changes without a restart and never overlap.
//!
//! A node drives only the sinks whose lease it holds (`leases.rs`): every heartbeat renews,
//! claims and sheds leases and reloads what changed — sinks gained or lost, and sinks whose
//! revision moved (an update made through another node).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_sinks::SinkEnv;
use auditrelay_store::{SinkRow, Store};
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::deliver::DeliveryCtx;
use crate::lane::Lane;
use crate::leases::{self, LeaseState};
use crate::recorder::Recorder;
use crate::secrets::{Keyring, SecretsError};
use crate::spec::SinkSpec;
use crate::status::SinkStatus;
use crate::EngineError;

pub enum Control {
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
        let spec: SinkSpec = serde_json::from_str(&row.spec).map_err(|e| EngineError::Spec(e.to_string()))?;
        let secrets = self.key.open(&row.id, &row.sealed_secrets)?;
        let sink = self.sink_factory.build(
            &row.id,
            &spec.kind,
            &serde_json::Value::Object(spec.config.clone()),
            &secrets,
            &spec.format,
            &self.env,
        )?;
        let status = self.status(&row.id, &spec);
        Ok(Arc::new(DeliveryCtx {
            sink_id: row.id.clone(),
            spec,
            sink,
            status,
            recorder: self.recorder.clone(),
        }))
    }
}

pub(crate) type Done = Shared<BoxFuture<'static, ()>>;

pub(crate) struct Worker {
    stop: CancellationToken,
    /// The sink revision this worker runs; `None` when this node does not drive the sink (the
    /// entry only keeps the old lanes' handles so a later worker waits for them).
    revision: Option<u64>,
    lanes: Vec<JoinHandle<()>>,
    /// Set when the sink reads every tenant (new tenants get a lane).
    all_tenants: Option<WorkerTemplate>,
    tenants: HashSet<String>,
}

impl Worker {
    pub(crate) fn revision(&self) -> Option<u64> {
        self.revision
    }
}

#[derive(Clone)]
struct WorkerTemplate {
    ctx: Arc<DeliveryCtx>,
    created_at: String,
    previous: Done,
}

fn spawn_lane(
    shared: &EngineShared,
    template: &WorkerTemplate,
    tenant: String,
    stop: &CancellationToken,
) -> JoinHandle<()> {
    let lane = Lane {
        ctx: template.ctx.clone(),
        store: shared.store.clone(),
        tenant,
        sink_created_at: template.created_at.clone(),
        stop: stop.clone(),
        control: shared.control.clone(),
    };
    let previous = template.previous.clone();
    tokio::spawn(async move {
        // The old worker of this sink must be gone first: two lanes on one cursor would
        // deliver twice and race their commits.
        previous.await;
        lane.run().await;
    })
}

async fn all_tenants(store: &dyn Store) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_tenants(after.as_deref(), 1000).await?;
        // The system tenant (auditrelay's own trail) is read only by sinks that name it: a
        // customer-data pipe over "all tenants" should not start carrying operator activity.
        out.extend(
            page.iter()
                .filter(|t| t.id != auditrelay_core::ids::SYSTEM_TENANT)
                .map(|t| t.id.clone()),
        );
        if page.len() < 1000 {
            return Ok(out);
        }
        after = page.last().map(|t| t.id.clone());
    }
}

/// The tenants a sink reads right now.
pub(crate) async fn tenants_of(store: &dyn Store, row: &SinkRow, spec: &SinkSpec) -> Result<Vec<String>, EngineError> {
    Ok(match (&row.owner_tenant, &spec.tenants) {
        (Some(owner), _) => vec![owner.clone()],
        (None, Some(list)) => list.clone(),
        (None, None) => all_tenants(store).await?,
    })
}

/// Whether a sink reads `tenant`: [`tenants_of`] without listing every tenant.
pub(crate) fn reads_tenant(row: &SinkRow, spec: &SinkSpec, tenant: &str) -> bool {
    match (&row.owner_tenant, &spec.tenants) {
        (Some(owner), _) => owner == tenant,
        (None, Some(list)) => list.iter().any(|t| t == tenant),
        (None, None) => tenant != auditrelay_core::ids::SYSTEM_TENANT,
    }
}

pub(crate) fn finished(lanes: Vec<JoinHandle<()>>) -> Done {
    futures::future::join_all(lanes).map(|_| ()).boxed().shared()
}

pub(crate) async fn supervise(shared: Arc<EngineShared>, mut commands: mpsc::UnboundedReceiver<Control>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut lease = LeaseState::default();
    // Claim this node's share and start those sinks.
    leases::round(&shared, &mut workers, &mut lease).await;
    let mut heartbeat = tokio::time::interval(leases::HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;

    let mut lag_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        let command = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = lag_tick.tick() => {
                let ids: Vec<String> = lease.owned.iter().cloned().collect();
                let shared = shared.clone();
                tokio::spawn(async move { crate::health::publish_lag(&shared, &ids).await });
                continue;
            }
            _ = heartbeat.tick() => {
                leases::round(&shared, &mut workers, &mut lease).await;
                continue;
            }
            c = commands.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        match command {
            // A sink this node drives is reloaded at once; any other change (a new sink, one
            // driven elsewhere) goes through a lease round, which claims and reloads as needed.
            Control::Reload(id) if lease.owned.contains(&id) => reload(&shared, &mut workers, &lease, &id).await,
            Control::Reload(_) => leases::round(&shared, &mut workers, &mut lease).await,
            Control::LeaseReleased(id) => {
                lease.shedding.remove(&id);
            }
            Control::TenantCreated(tenant) => {
                for worker in workers.values_mut() {
                    if let Some(template) = &worker.all_tenants {
                        if worker.tenants.insert(tenant.clone()) {
                            worker
                                .lanes
                                .push(spawn_lane(&shared, template, tenant.clone(), &worker.stop));
                        }
                    }
                }
            }
        }
    }
    // Drain: every lane finishes its attempts on the wire and commits.
    let lanes: Vec<JoinHandle<()>> = workers
        .into_values()
        .flat_map(|w| {
            w.stop.cancel();
            w.lanes
        })
        .collect();
    futures::future::join_all(lanes).await;
    // Every worker has stopped: hand the leases over now instead of after their expiry.
    leases::release_all(&shared, &mut lease).await;
}

/// Stops a sink's worker (if any); the result completes when its lanes have finished.
pub(crate) fn stop_worker(workers: &mut HashMap<String, Worker>, id: &str) -> Done {
    match workers.remove(id) {
        Some(old) => {
            old.stop.cancel();
            finished(old.lanes)
        }
        None => finished(Vec::new()),
    }
}

/// Keeps only the handles of a stopped worker's lanes, so a later worker waits for them.
fn idle_worker(shared: &EngineShared, previous: Done, revision: Option<u64>) -> Worker {
    Worker {
        stop: shared.shutdown.child_token(),
        revision,
        lanes: vec![tokio::spawn(previous)],
        all_tenants: None,
        tenants: HashSet::new(),
    }
}

pub(crate) async fn reload(
    shared: &Arc<EngineShared>,
    workers: &mut HashMap<String, Worker>,
    lease: &LeaseState,
    id: &str,
) {
    let previous = stop_worker(workers, id);
    if !lease.owned.contains(id) {
        // Another node drives it (or nobody yet): this node only remembers the old lanes.
        workers.insert(id.to_owned(), idle_worker(shared, previous, None));
        return;
    }
    let row = match shared.store.sink(id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            shared.statuses.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            return;
        }
        Err(e) => {
            tracing::error!(sink = id, error = %e, "cannot load sink; will retry");
            retry_later(shared, id);
            return;
        }
    };
    let stop = shared.shutdown.child_token();
    if row.paused {
        // Keep the handles so a resume still waits for the old lanes to finish.
        workers.insert(id.to_owned(), idle_worker(shared, previous, Some(row.revision)));
        return;
    }
    let ctx = match shared.delivery_ctx(&row) {
        Ok(ctx) => ctx,
        // A key the server lacks is the server's configuration, not the sink's: pausing would
        // outlive the fix (every sink to resume by hand). Once restarted with the key, it runs.
        Err(e @ EngineError::Secrets(SecretsError::UnknownKey(_))) => {
            tracing::error!(sink = id, error = %e, "cannot start the sink until the server has its master key");
            return;
        }
        Err(e) => {
            let reason = format!("cannot start the sink: {e}");
            tracing::error!(sink = id, %reason);
            if let Err(e) = shared.store.set_sink_paused(id, true, Some(&reason)).await {
                tracing::error!(sink = id, error = %e, "cannot pause a broken sink");
            }
            return;
        }
    };
    ctx.status.set_breaker_policy(ctx.spec.breaker);
    let tenants = match tenants_of(shared.store.as_ref(), &row, &ctx.spec).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(sink = id, error = %e, "cannot list tenants; will retry");
            retry_later(shared, id);
            return;
        }
    };
    let template = WorkerTemplate {
        ctx,
        created_at: row.created_at.clone(),
        previous,
    };
    let lanes = tenants
        .iter()
        .map(|t| spawn_lane(shared, &template, t.clone(), &stop))
        .collect();
    let all = row.owner_tenant.is_none() && template.ctx.spec.tenants.is_none();
    workers.insert(
        id.to_owned(),
        Worker {
            stop,
            revision: Some(row.revision),
            lanes,
            all_tenants: all.then_some(template),
            tenants: tenants.into_iter().collect(),
        },
    );
}

/// Asks for another reload in a second (the store was unavailable).
fn retry_later(shared: &EngineShared, id: &str) {
    let control = shared.control.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = control.send(Control::Reload(id));
    });
}
