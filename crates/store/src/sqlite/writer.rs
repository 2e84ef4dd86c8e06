//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs one fsync. So every write goes
//! through this thread: it takes the first queued job, drains everything else already waiting,
//! appends all of those events in ONE transaction, commits (one fsync for the whole group), then
//! answers every request. Under load groups grow by themselves, which is what keeps throughput
//! from collapsing to one fsync per request.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use auditrelay_core::NewEvent;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use crate::{chain, AppendOutcome, Notifier, Result, StoreError};

/// Upper bound on events in one group, so a flood of big requests still commits regularly.
const MAX_GROUP_EVENTS: usize = 50_000;

pub(crate) type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

type AppendReply = oneshot::Sender<Result<Vec<AppendOutcome>>>;
type PendingAppend = (Vec<NewEvent>, AppendReply);

pub(crate) enum Job {
    Append {
        events: Vec<NewEvent>,
        reply: AppendReply,
    },
    /// Any other write (catalog, cursors), run in order on the writer's connection.
    Write(WriteFn),
}

/// Observes each group commit (for metrics): requests and events in the group, and the new
/// head of every tenant it touched (published in commit order, so a gauge never goes back).
pub type GroupObserver = Arc<dyn Fn(usize, usize, &HashMap<String, u64>) + Send + Sync>;

pub(crate) struct Writer {
    conn: Connection,
    notifier: Arc<Notifier>,
    /// Cached heads per tenant; the `tenants.head` column is the durable copy. Cleared when a
    /// transaction fails, so a rolled-back group never leaves a hole or a reused offset.
    heads: HashMap<String, u64>,
    /// The hash chain after each cached head (`tenants.chain` is the durable copy); cleared
    /// together with `heads`.
    chains: HashMap<String, [u8; 32]>,
    observer: Option<GroupObserver>,
}

impl Writer {
    pub(crate) fn new(conn: Connection, notifier: Arc<Notifier>, observer: Option<GroupObserver>) -> Self {
        Writer {
            conn,
            notifier,
            heads: HashMap::new(),
            chains: HashMap::new(),
            observer,
        }
    }

    /// Runs until every sender is gone, finishing the jobs already queued.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut appends = Vec::new();
            let mut pending = Some(first);
            let mut group_events = 0;
            loop {
                match pending.take() {
                    Some(Job::Write(f)) => f(&mut self.conn),
                    Some(Job::Append { events, reply }) => {
                        group_events += events.len();
                        appends.push((events, reply));
                    }
                    None => {}
                }
                if group_events >= MAX_GROUP_EVENTS {
                    break;
                }
                match jobs.try_recv() {
                    Ok(job) => pending = Some(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if !appends.is_empty() {
                self.commit_group(appends);
            }
        }
        tracing::debug!("log writer stopped");
    }

    fn commit_group(&mut self, group: Vec<PendingAppend>) {
        let requests = group.len();
        let events: usize = group.iter().map(|(e, _)| e.len()).sum();
        match self.append_all(&group) {
            Ok((results, touched)) => {
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                for (tenant, head) in &touched {
                    self.notifier.publish(tenant, *head);
                }
                if let Some(observe) = &self.observer {
                    observe(requests, events, &touched);
                }
            }
            Err(e) => {
                // The whole group failed: nobody gets a 202, and cached heads are reloaded.
                tracing::error!(error = %e, requests, events, "group commit failed");
                self.heads.clear();
                self.chains.clear();
                let msg = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Unavailable(format!("appending events: {msg}"))));
                }
            }
        }
    }

    /// One transaction for the group. A request naming an unknown tenant is refused on its own
    /// (it stores nothing) without failing the others.
    #[allow(clippy::type_complexity)] // (per-request results, new heads): named only here
    fn append_all(
        &mut self,
        group: &[PendingAppend],
    ) -> Result<(Vec<Result<Vec<AppendOutcome>>>, HashMap<String, u64>)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting append transaction"))?;
        let mut touched: HashMap<String, u64> = HashMap::new();
        // Client ids seen in this group, so a repeat inside the group gets the first offset.
        let mut group_ids: HashMap<(String, String), u64> = HashMap::new();
        let mut results = Vec::with_capacity(group.len());
        {
            let mut head_stmt = tx
                .prepare_cached("SELECT head, chain FROM tenants WHERE id = ?1")
                .map_err(StoreError::sqlite("preparing head lookup"))?;
            let mut dup_stmt = tx
                .prepare_cached("SELECT seq FROM client_ids WHERE tenant_id = ?1 AND id = ?2")
                .map_err(StoreError::sqlite("preparing dedup lookup"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (tenant_id, seq, id, type, occurred_at, received_at, body, raw, chain)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(StoreError::sqlite("preparing insert"))?;
            let mut insert_client_id = tx
                .prepare_cached("INSERT INTO client_ids (tenant_id, id, seq) VALUES (?1, ?2, ?3)")
                .map_err(StoreError::sqlite("preparing client id insert"))?;

            'requests: for (events, _) in group {
                // Resolve every tenant of the request first: unknown → refuse just this request.
                for ev in events {
                    if !touched.contains_key(&ev.tenant_id) && !self.heads.contains_key(&ev.tenant_id) {
                        let head: Option<(i64, Option<Vec<u8>>)> = head_stmt
                            .query_row([&ev.tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                            .map_err(StoreError::sqlite("reading tenant head"))?;
                        match head {
                            Some((h, chain)) => {
                                let chain = match chain::from_column(chain, "tenants.chain")? {
                                    Some(c) => c,
                                    None if h == 0 => chain::GENESIS,
                                    None => {
                                        return Err(StoreError::Corrupt(format!(
                                            "tenant {} has events but no chain value",
                                            ev.tenant_id
                                        )))
                                    }
                                };
                                self.heads.insert(ev.tenant_id.clone(), h as u64);
                                self.chains.insert(ev.tenant_id.clone(), chain);
                            }
                            None => {
                                results.push(Err(StoreError::UnknownTenant(ev.tenant_id.clone())));
                                continue 'requests;
                            }
                        }
                    }
                }
                let mut outcomes = Vec::with_capacity(events.len());
                for ev in events {
                    if ev.client_supplied_id {
                        let key = (ev.tenant_id.clone(), ev.id.clone());
                        let existing = match group_ids.get(&key) {
                            Some(&off) => Some(off),
                            None => dup_stmt
                                .query_row(params![ev.tenant_id, ev.id], |r| r.get::<_, i64>(0))
                                .optional()
                                .map_err(StoreError::sqlite("looking up a client id"))?
                                .map(|o| o as u64),
                        };
                        if let Some(offset) = existing {
                            outcomes.push(AppendOutcome {
                                id: ev.id.clone(),
                                offset,
                                duplicate: true,
                            });
                            continue;
                        }
                    }
                    let head = self
                        .heads
                        .get_mut(&ev.tenant_id)
                        .ok_or_else(|| StoreError::Corrupt(format!("no cached head for tenant {}", ev.tenant_id)))?;
                    let offset = *head + 1;
                    // Only stored events extend the chain: a duplicate (above) never reaches here.
                    let previous = self
                        .chains
                        .get_mut(&ev.tenant_id)
                        .ok_or_else(|| StoreError::Corrupt(format!("no cached chain for tenant {}", ev.tenant_id)))?;
                    let next = chain::link_new(previous, offset, ev)?;
                    insert
                        .execute(params![
                            ev.tenant_id,
                            offset as i64,
                            ev.id,
                            ev.event_type,
                            ev.occurred_at,
                            ev.received_at,
                            ev.body,
                            // The `raw` column is no longer used: the `raw` format delivers the body.
                            "",
                            &next[..]
                        ])
                        .map_err(StoreError::sqlite("inserting an event"))?;
                    *head = offset;
                    *previous = next;
                    match touched.get_mut(&ev.tenant_id) {
                        Some(h) => *h = offset,
                        None => {
                            touched.insert(ev.tenant_id.clone(), offset);
                        }
                    }
                    if ev.client_supplied_id {
                        insert_client_id
                            .execute(params![ev.tenant_id, ev.id, offset as i64])
                            .map_err(StoreError::sqlite("recording a client id"))?;
                        group_ids.insert((ev.tenant_id.clone(), ev.id.clone()), offset);
                    }
                    outcomes.push(AppendOutcome {
                        id: ev.id.clone(),
                        offset,
                        duplicate: false,
                    });
                }
                results.push(Ok(outcomes));
            }
            let mut set_head = tx
                .prepare_cached("UPDATE tenants SET head = ?2, chain = ?3 WHERE id = ?1")
                .map_err(StoreError::sqlite("preparing head update"))?;
            for (tenant, head) in &touched {
                let chain = self
                    .chains
                    .get(tenant)
                    .ok_or_else(|| StoreError::Corrupt(format!("no cached chain for tenant {tenant}")))?;
                set_head
                    .execute(params![tenant, *head as i64, &chain[..]])
                    .map_err(StoreError::sqlite("updating tenant head"))?;
            }
        }
        tx.commit().map_err(StoreError::sqlite("committing events"))?;
        Ok((results, touched))
    }
}
