//! Group commit on PostgreSQL.
//!
//! One writer task per node takes the first queued append, drains everything else already
//! waiting, and stores the whole group in ONE transaction with multi-row inserts (`unnest` of
//! arrays): a handful of round trips and one WAL flush for the group instead of one per request.
//!
//! Offsets stay gapless and commit-ordered across nodes because the transaction first locks the
//! tenants' counter rows (`SELECT … FOR UPDATE`, in id order so two nodes never deadlock) and
//! writes the new heads before it commits. A second node appending to the same tenant waits for
//! that lock, then reads the committed head: offset order is commit order, so a reader at cursor
//! N never misses an event that commits later with a lower number. The same lock makes the
//! client-id dedup check race-free across nodes. `pg_notify` inside the transaction tells every
//! node's listener about the new head when (and only if) the transaction commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use auditrelay_core::NewEvent;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::listen::HEADS_CHANNEL;
use crate::GroupObserver;
use crate::{chain, AppendOutcome, Notifier, Result, StoreError};

/// Upper bound on events in one group, so a flood of big requests still commits regularly.
const MAX_GROUP_EVENTS: usize = 20_000;

type AppendReply = oneshot::Sender<Result<Vec<AppendOutcome>>>;

pub(crate) struct PendingAppend {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: AppendReply,
}

pub(crate) struct Writer {
    pub(crate) pool: PgPool,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) observer: Option<GroupObserver>,
}

/// What one request of the group became: its outcomes, or its own refusal.
type RequestResult = Result<Vec<AppendOutcome>>;

impl Writer {
    /// Runs until every sender is gone, finishing the appends already queued.
    pub(crate) async fn run(self, mut jobs: mpsc::UnboundedReceiver<PendingAppend>) {
        while let Some(first) = jobs.recv().await {
            let mut group_events = first.events.len();
            let mut group = vec![first];
            while group_events < MAX_GROUP_EVENTS {
                match jobs.try_recv() {
                    Ok(job) => {
                        group_events += job.events.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group).await;
        }
        tracing::debug!("PostgreSQL log writer stopped");
    }

    async fn commit_group(&self, group: Vec<PendingAppend>) {
        let requests = group.len();
        let events: usize = group.iter().map(|p| p.events.len()).sum();
        match self.append_all(&group).await {
            Ok((results, touched)) => {
                for (pending, result) in group.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
                for (tenant, head) in &touched {
                    self.notifier.publish(tenant, *head);
                }
                if let Some(observe) = &self.observer {
                    observe(requests, events, &touched);
                }
            }
            Err(e) => {
                // The transaction rolled back (or its commit is in doubt): nobody gets a 202.
                tracing::error!(error = %e, requests, events, "group commit failed");
                let msg = e.to_string();
                for pending in group {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::Unavailable(format!("appending events: {msg}"))));
                }
            }
        }
    }

    async fn append_all(&self, group: &[PendingAppend]) -> Result<(Vec<RequestResult>, HashMap<String, u64>)> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::pg("starting append transaction"))?;
        let mut tenants: Vec<&str> = group
            .iter()
            .flat_map(|p| p.events.iter().map(|e| e.tenant_id.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        tenants.sort_unstable();
        let (mut heads, mut chains) = lock_heads(&mut tx, &tenants).await?;
        let mut known_ids = existing_client_ids(&mut tx, group).await?;

        let mut rows = EventRows::default();
        let mut touched: HashMap<String, u64> = HashMap::new();
        let mut results = Vec::with_capacity(group.len());
        for pending in group {
            if let Some(unknown) = pending.events.iter().find(|e| !heads.contains_key(&e.tenant_id)) {
                // Refused on its own; the rest of the group goes on.
                results.push(Err(StoreError::UnknownTenant(unknown.tenant_id.clone())));
                continue;
            }
            let mut outcomes = Vec::with_capacity(pending.events.len());
            for ev in &pending.events {
                if ev.client_supplied_id {
                    if let Some(&offset) = known_ids.get(&(ev.tenant_id.clone(), ev.id.clone())) {
                        outcomes.push(AppendOutcome {
                            id: ev.id.clone(),
                            offset,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let head = heads
                    .get_mut(&ev.tenant_id)
                    .ok_or_else(|| StoreError::Corrupt(format!("no locked head for tenant {}", ev.tenant_id)))?;
                let offset = *head + 1;
                *head = offset;
                // The hash chain moves with the head, in offset order, inside this transaction.
                let previous = chains.entry(ev.tenant_id.clone()).or_insert(chain::GENESIS);
                let link = chain::link_new(previous, offset, ev)?;
                *previous = link;
                touched.insert(ev.tenant_id.clone(), offset);
                if ev.client_supplied_id {
                    known_ids.insert((ev.tenant_id.clone(), ev.id.clone()), offset);
                }
                rows.push(ev, offset, link)?;
                outcomes.push(AppendOutcome {
                    id: ev.id.clone(),
                    offset,
                    duplicate: false,
                });
            }
            results.push(Ok(outcomes));
        }

        if !rows.is_empty() {
            let heads: Vec<(&str, i64, Vec<u8>)> = touched
                .iter()
                .map(|(t, h)| {
                    let link = chains.get(t).copied().unwrap_or(chain::GENESIS);
                    (t.as_str(), *h as i64, link.to_vec())
                })
                .collect();
            rows.write(&mut tx, &heads).await?;
        }
        tx.commit().await.map_err(StoreError::pg("committing events"))?;
        Ok((results, touched))
    }
}

/// Locks the counter rows of the group's tenants and returns their committed heads and chain
/// values (tenants with an empty log have no chain yet: the genesis value applies). Tenants
/// that do not exist are simply absent.
async fn lock_heads(
    tx: &mut Transaction<'_, Postgres>,
    tenants: &[&str],
) -> Result<(HashMap<String, u64>, HashMap<String, [u8; 32]>)> {
    let rows: Vec<(String, i64, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, head, chain FROM tenants WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(tenants)
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::pg("locking tenant heads"))?;
    let mut heads = HashMap::with_capacity(rows.len());
    let mut chains = HashMap::with_capacity(rows.len());
    for (id, head, link) in rows {
        if let Some(link) = chain::from_column(link, "tenants.chain")? {
            chains.insert(id.clone(), link);
        }
        heads.insert(id, head as u64);
    }
    Ok((heads, chains))
}

/// The offsets of client ids in the group that the log already holds (one query for the group).
async fn existing_client_ids(
    tx: &mut Transaction<'_, Postgres>,
    group: &[PendingAppend],
) -> Result<HashMap<(String, String), u64>> {
    let (tenants, ids): (Vec<&str>, Vec<&str>) = group
        .iter()
        .flat_map(|p| p.events.iter())
        .filter(|e| e.client_supplied_id)
        .map(|e| (e.tenant_id.as_str(), e.id.as_str()))
        .unzip();
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT c.tenant_id, c.id, c.seq FROM client_ids c
         JOIN unnest($1::text[], $2::text[]) AS q(tenant_id, id) ON c.tenant_id = q.tenant_id AND c.id = q.id",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::pg("looking up client ids"))?;
    Ok(rows.into_iter().map(|(t, id, seq)| ((t, id), seq as u64)).collect())
}

/// The group's new events as column arrays, for one multi-row insert.
#[derive(Default)]
struct EventRows<'a> {
    tenant: Vec<&'a str>,
    seq: Vec<i64>,
    id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    occurred_at: Vec<&'a str>,
    received_at: Vec<&'a str>,
    body: Vec<&'a str>,
    chain: Vec<Vec<u8>>,
    client_tenant: Vec<&'a str>,
    client_id: Vec<&'a str>,
    client_seq: Vec<i64>,
}

impl<'a> EventRows<'a> {
    fn push(&mut self, ev: &'a NewEvent, offset: u64, link: [u8; 32]) -> Result<()> {
        let seq = i64::try_from(offset).map_err(|_| StoreError::Corrupt(format!("offset {offset} beyond i64")))?;
        self.tenant.push(&ev.tenant_id);
        self.seq.push(seq);
        self.id.push(&ev.id);
        self.event_type.push(&ev.event_type);
        self.occurred_at.push(&ev.occurred_at);
        self.received_at.push(&ev.received_at);
        self.body.push(&ev.body);
        self.chain.push(link.to_vec());
        if ev.client_supplied_id {
            self.client_tenant.push(&ev.tenant_id);
            self.client_id.push(&ev.id);
            self.client_seq.push(seq);
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// One statement (one round trip) for the whole group: the events, their client ids, the
    /// new heads, and a `pg_notify` per tenant — delivered to every listening node only if the
    /// transaction commits, in commit order. Every data-modifying CTE runs, referenced or not.
    async fn write(&self, tx: &mut Transaction<'_, Postgres>, heads: &[(&str, i64, Vec<u8>)]) -> Result<()> {
        let head_tenants: Vec<&str> = heads.iter().map(|h| h.0).collect();
        let head_values: Vec<i64> = heads.iter().map(|h| h.1).collect();
        let head_chains: Vec<Vec<u8>> = heads.iter().map(|h| h.2.clone()).collect();
        sqlx::query(
            "WITH new_events AS (
                 INSERT INTO events (tenant_id, seq, id, type, occurred_at, received_at, body, chain)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                                      $7::text[], $14::bytea[])
             ), new_client_ids AS (
                 INSERT INTO client_ids (tenant_id, id, seq)
                 SELECT * FROM unnest($8::text[], $9::text[], $10::bigint[])
             ), new_heads AS (
                 UPDATE tenants SET head = v.head, chain = v.chain
                 FROM unnest($11::text[], $12::bigint[], $15::bytea[]) AS v(id, head, chain)
                 WHERE tenants.id = v.id
                 RETURNING tenants.id, tenants.head
             )
             SELECT pg_notify($13, new_heads.head::text || ':' || new_heads.id) FROM new_heads",
        )
        .bind(&self.tenant)
        .bind(&self.seq)
        .bind(&self.id)
        .bind(&self.event_type)
        .bind(&self.occurred_at)
        .bind(&self.received_at)
        .bind(&self.body)
        .bind(&self.client_tenant)
        .bind(&self.client_id)
        .bind(&self.client_seq)
        .bind(&head_tenants)
        .bind(&head_values)
        .bind(HEADS_CHANNEL)
        .bind(&self.chain)
        .bind(&head_chains)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::pg("inserting events"))?;
        Ok(())
    }
}
