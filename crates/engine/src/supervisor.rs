//! The supervisor: one worker per sink, each a set of lanes (one per tenant the sink reads).
//! API calls tell it that a sink changed (`reload`); it stops the old worker — which finishes
//! the attempts on the wire and commits what was accepted — and starts the new one after it,
//! so workers follow configuration changes without a restart and never overlap.
//!
//! A node drives only the sinks whose lease it holds: every heartbeat, `leases::round` renews,
//! claims and sheds leases and returns a plan — sinks to reload (gained, lost, or whose
//! revision moved through another node) and leases to shed — which the supervisor applies. It
//! is the top of the engine's module graph: it uses the others, none uses it.
//!
//! Nothing here runs per sink on a timer: with a single-node store the heartbeat stops after
//! its first successful round, and lanes wait on their tenant's head and on their own timers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lane::Lane;
use crate::leases::{self, LeasePlan, LeaseState};
use crate::secrets::SecretsError;
use crate::shared::{Control, DeliveryCtx, EngineShared};
use crate::tenants::{reads_all_tenants, tenants_of};
use crate::EngineError;

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

pub(crate) fn finished(lanes: Vec<JoinHandle<()>>) -> Done {
    futures::future::join_all(lanes).map(|_| ()).boxed().shared()
}

/// Runs a lease round and applies its plan.
async fn lease_round(shared: &Arc<EngineShared>, workers: &mut HashMap<String, Worker>, lease: &mut LeaseState) {
    let plan = leases::round(shared, lease, |id| workers.get(id).and_then(Worker::revision)).await;
    apply(shared, workers, lease, plan).await;
}

async fn apply(shared: &Arc<EngineShared>, workers: &mut HashMap<String, Worker>, lease: &LeaseState, plan: LeasePlan) {
    for id in plan.shed {
        let stopped = stop_worker(workers, &id);
        leases::release_when_stopped(shared, id, stopped);
    }
    for id in plan.reload {
        reload(shared, workers, lease, &id).await;
    }
}

pub(crate) async fn supervise(shared: Arc<EngineShared>, mut commands: mpsc::UnboundedReceiver<Control>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut lease = LeaseState::default();
    let single_node = shared.store.single_node();
    // Claim this node's share and start those sinks.
    lease_round(&shared, &mut workers, &mut lease).await;
    let mut next_round = Instant::now() + leases::HEARTBEAT;
    loop {
        // A single-node store needs rounds only until one succeeded (it grants every lease,
        // and every change arrives as a `Control`); several nodes heartbeat for as long as
        // they run.
        let heartbeat = !single_node || !lease.settled();
        let command = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next_round), if heartbeat => {
                lease_round(&shared, &mut workers, &mut lease).await;
                // Like `MissedTickBehavior::Delay`: a slow round does not cause a burst.
                next_round = Instant::now() + leases::HEARTBEAT;
                continue;
            }
            c = commands.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        match command {
            // A sink this node drives is reloaded at once.
            Control::Reload(id) if lease.owned.contains(&id) => {
                if reload(&shared, &mut workers, &lease, &id).await == Loaded::Gone && single_node {
                    lease.owned.remove(&id);
                }
            }
            // A sink new to a single-node store is this node's by definition.
            Control::Reload(id) if single_node && lease.settled() => {
                lease.owned.insert(id.clone());
                if reload(&shared, &mut workers, &lease, &id).await == Loaded::Gone {
                    lease.owned.remove(&id);
                }
            }
            // Any other change (a new sink, one driven elsewhere) goes through a lease round,
            // which claims and reloads as needed.
            Control::Reload(_) => lease_round(&shared, &mut workers, &mut lease).await,
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

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// The sink no longer exists.
    Gone,
    /// Anything else: running, paused, driven elsewhere, or to be retried.
    Present,
}

async fn reload(
    shared: &Arc<EngineShared>,
    workers: &mut HashMap<String, Worker>,
    lease: &LeaseState,
    id: &str,
) -> Loaded {
    let previous = stop_worker(workers, id);
    if !lease.owned.contains(id) {
        // Another node drives it (or nobody yet): this node only remembers the old lanes.
        workers.insert(id.to_owned(), idle_worker(shared, previous, None));
        return Loaded::Present;
    }
    let row = match shared.store.sink(id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            shared.statuses.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            return Loaded::Gone;
        }
        Err(e) => {
            tracing::error!(sink = id, error = %e, "cannot load sink; will retry");
            retry_later(shared, id);
            return Loaded::Present;
        }
    };
    let stop = shared.shutdown.child_token();
    if row.paused {
        // Keep the handles so a resume still waits for the old lanes to finish; meanwhile the
        // lag gauge follows the heads (the cursors stay where they are).
        let mut worker = idle_worker(shared, previous, Some(row.revision));
        if let Ok(spec) = crate::spec::SinkSpec::from_stored(&row.spec) {
            let status = shared.status(id, &spec);
            worker.lanes.push(tokio::spawn(crate::health::watch_paused_lag(
                shared.store.clone(),
                row,
                status,
                worker.stop.clone(),
            )));
        }
        workers.insert(id.to_owned(), worker);
        return Loaded::Present;
    }
    let ctx = match shared.delivery_ctx(&row) {
        Ok(ctx) => ctx,
        // A key the server lacks is the server's configuration, not the sink's: pausing would
        // outlive the fix (every sink to resume by hand). Once restarted with the key, it runs.
        Err(e @ EngineError::Secrets(SecretsError::UnknownKey(_))) => {
            tracing::error!(sink = id, error = %e, "cannot start the sink until the server has its master key");
            return Loaded::Present;
        }
        Err(e) => {
            let reason = format!("cannot start the sink: {e}");
            tracing::error!(sink = id, %reason);
            if let Err(e) = shared.store.set_sink_paused(id, true, Some(&reason)).await {
                tracing::error!(sink = id, error = %e, "cannot pause a broken sink");
            }
            return Loaded::Present;
        }
    };
    ctx.status.set_breaker_policy(ctx.spec.breaker);
    // The new lanes set the lag of the tenants read now; a tenant dropped from the list must
    // not linger in the total.
    ctx.status.clear_lags();
    let tenants = match tenants_of(shared.store.as_ref(), &row, &ctx.spec).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(sink = id, error = %e, "cannot list tenants; will retry");
            retry_later(shared, id);
            return Loaded::Present;
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
    let all = reads_all_tenants(&row, &template.ctx.spec);
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
    Loaded::Present
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
