//! Which sinks this node drives. Several nodes on one PostgreSQL database each drive a share of
//! the sinks; a lease in the database says which node drives which sink (see
//! `store::SinkLeases`). On SQLite the one process holds every lease.
//!
//! Every `HEARTBEAT` the supervisor runs a round: list the sinks, renew and claim leases, and
//! say how to reconcile the workers ([`LeasePlan`]) — start the sinks gained, stop the ones
//! lost, shed the ones above the fair share (a node joined) and release those once their lanes
//! have finished, and reload a sink whose revision moved (changed through another node). If the
//! node cannot renew for `LEASE_TTL - SAFETY_MARGIN` the plan stops every worker, before another
//! node may take them over. The supervisor applies the plan: this module never touches workers.
//!
//! A single-node backend (SQLite) grants every lease to its one process and nothing changes a
//! sink behind its back, so after the first successful round there is nothing to renew or
//! reconcile: the supervisor stops the heartbeat there, and idle sinks cost no periodic work.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_store::SinkRow;

use crate::shared::{Control, EngineShared};

/// How long a lease lasts without renewal: a dead node's sinks move within this plus one
/// heartbeat (documented in docs/deployment-postgres.md).
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often leases are renewed and sinks reconciled.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node that could not renew stops its workers this long before its leases can expire.
const SAFETY_MARGIN: Duration = Duration::from_secs(4);
/// A heartbeat slower than this counts as failed, so an unreachable database (whose connection
/// attempts may take seconds) cannot delay the stop decision past the leases' expiry: workers
/// stop at most `LEASE_TTL - SAFETY_MARGIN + ROUND_TIMEOUT` (7.5 s) after the last successful
/// heartbeat started, 2.5 s before another node may take their sinks over.
const ROUND_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Default)]
pub(crate) struct LeaseState {
    /// Sinks this node drives.
    pub owned: HashSet<String>,
    /// Leases given up above the fair share, until released (their workers are stopping).
    pub shedding: HashSet<String>,
    /// When the last successful heartbeat started.
    last_ok: Option<Instant>,
}

impl LeaseState {
    /// Whether a round has ever succeeded (a single-node engine needs no more after that).
    pub fn settled(&self) -> bool {
        self.last_ok.is_some()
    }
}

/// What a round asks of the supervisor.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LeasePlan {
    /// Leases given up above the fair share: stop each worker, then [`release_when_stopped`].
    pub shed: Vec<String>,
    /// Sinks to reload: gained, lost (including all of them when the leases could not be
    /// renewed in time) or changed through another node. Reloading a sink this node no longer
    /// owns stops its worker.
    pub reload: Vec<String>,
}

async fn all_sinks(shared: &EngineShared) -> Result<Vec<SinkRow>, auditrelay_store::StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = shared.store.list_sinks(None, after.as_deref(), 500).await?;
        let full = page.len() == 500;
        after = page.last().map(|r| r.id.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// One heartbeat: renew, claim and shed, and say how the workers must follow. `running` is the
/// revision each sink's worker runs (`None` when it runs none).
pub(crate) async fn round(
    shared: &EngineShared,
    lease: &mut LeaseState,
    running: impl Fn(&str) -> Option<u64>,
) -> LeasePlan {
    let started = Instant::now();
    let heartbeat = async {
        let rows = all_sinks(shared).await?;
        let wanted: Vec<String> = rows
            .iter()
            .map(|r| r.id.clone())
            .filter(|id| !lease.shedding.contains(id))
            .collect();
        let grant = shared
            .store
            .heartbeat_leases(&shared.node_id, &wanted, LEASE_TTL)
            .await?;
        Ok::<_, auditrelay_store::StoreError>((rows, grant))
    };
    let granted = match tokio::time::timeout(ROUND_TIMEOUT, heartbeat).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {ROUND_TIMEOUT:?}")),
    };
    let (rows, grant) = match granted {
        Ok(ok) => ok,
        Err(e) => {
            let stale = lease
                .last_ok
                .is_none_or(|t| t.elapsed() > LEASE_TTL.saturating_sub(SAFETY_MARGIN));
            tracing::warn!(error = %e, stale, "lease heartbeat failed");
            if stale && !lease.owned.is_empty() {
                // Another node may take these over soon: stop driving them first.
                tracing::warn!(
                    sinks = lease.owned.len(),
                    "leases could not be renewed in time; stopping their workers"
                );
                return LeasePlan {
                    shed: Vec::new(),
                    reload: lease.owned.drain().collect(),
                };
            }
            return LeasePlan::default();
        }
    };
    lease.last_ok = Some(started);

    let mut held = grant.held;
    let shed: Vec<String> = if held.len() > grant.fair_share {
        held.split_off(grant.fair_share)
    } else {
        Vec::new()
    };
    let old = std::mem::replace(&mut lease.owned, held.into_iter().collect());
    for id in &shed {
        tracing::info!(sink = %id, "shedding a lease to another node");
        lease.shedding.insert(id.clone());
    }
    let changed: Vec<String> = old
        .symmetric_difference(&lease.owned)
        .filter(|id| !shed.contains(id))
        .cloned()
        .chain(
            rows.iter()
                .filter(|r| lease.owned.contains(&r.id))
                .filter(|r| running(&r.id) != Some(r.revision))
                .map(|r| r.id.clone()),
        )
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for id in &changed {
        if lease.owned.contains(id) && !old.contains(id) {
            tracing::info!(sink = %id, node = %shared.node_id, "took the lease");
        }
    }
    LeasePlan { shed, reload: changed }
}

/// Releases a shed lease once `stopped` (its worker's lanes finishing) completes, then tells the
/// supervisor.
pub(crate) fn release_when_stopped(
    shared: &Arc<EngineShared>,
    id: String,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        stopped.await;
        if let Err(e) = shared
            .store
            .release_leases(&shared.node_id, std::slice::from_ref(&id))
            .await
        {
            // It expires on its own after LEASE_TTL.
            tracing::warn!(sink = %id, error = %e, "could not release a lease");
        }
        let _ = shared.control.send(Control::LeaseReleased(id));
    });
}

/// At shutdown, after every lane finished: release every lease so another node takes over now.
pub(crate) async fn release_all(shared: &EngineShared, lease: &mut LeaseState) {
    let owned: Vec<String> = lease.owned.drain().collect();
    if owned.is_empty() {
        return;
    }
    if let Err(e) = shared.store.release_leases(&shared.node_id, &owned).await {
        tracing::warn!(error = %e, "could not release leases at shutdown; they expire on their own");
    }
}
