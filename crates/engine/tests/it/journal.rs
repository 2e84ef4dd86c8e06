//! A store wrapper that writes down, in one ordered journal shared with the scripted sinks,
//! every cursor move and dead letter the engine makes. Because the sink writes its answer into
//! the same journal before the engine sees it, the journal's order is causal, and invariant
//! *a cursor never passes an event its receiver did not accept* can be checked after the fact
//! for every single commit, without racing the engine.
//!
//! It can also stand in for PostgreSQL's sink leases (`LeaseMode::Exclusive`): the embedded
//! store grants every lease to every caller (one process per data dir), so hand-off between two
//! engines on one store needs leases that are actually exclusive.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auditrelay_core::{NewEvent, StoredEvent};
use auditrelay_sinks::Outcome;
use auditrelay_store::{
    ApiKey, AppendOutcome, Catalog, Checkpoint, Checkpoints, Cursors, DeadLetter, DeadLetters, DeliveryAttempt,
    DeliveryLog, EventLog, LeaseGrant, NewApiKey, ReadQuery, Result, Retention, SinkLeases, SinkRow, SinkStore,
    SourceRow, SourceStore, Store, Tenant,
};
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A sink answered an attempt (written before the engine receives the answer).
    Answered {
        sink: String,
        tenant: String,
        offsets: Vec<u64>,
        outcome: Outcome,
    },
    DeadLettered {
        sink: String,
        tenant: String,
        first: u64,
        last: u64,
    },
    /// `commit_cursor` was called (written before the store runs it).
    Committed { sink: String, tenant: String, offset: u64 },
    /// `reset_cursor` was called (the lane pins its start position).
    Reset { sink: String, tenant: String, offset: u64 },
}

#[derive(Default)]
pub struct Journal(Mutex<Vec<Entry>>);

impl Journal {
    pub fn push(&self, entry: Entry) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every offset of the range `(start, commit]` that the receiver accepted or the engine
    /// dead-lettered before each commit; panics naming the first commit that passed an event
    /// neither accepted nor dead-lettered. Returns the commits seen, in order. The tests use
    /// no type filter, so every offset in a committed range is an event that had to go.
    pub fn assert_commits_never_pass_unaccepted(&self, sink: &str, tenant: &str) -> Vec<u64> {
        let mut done: BTreeSet<u64> = BTreeSet::new();
        let mut start: Option<u64> = None;
        let mut commits = Vec::new();
        let ours = |s: &str, t: &str| s == sink && t == tenant;
        for (i, entry) in self.entries().into_iter().enumerate() {
            match entry {
                Entry::Answered {
                    sink: s,
                    tenant: t,
                    offsets,
                    outcome,
                } if ours(&s, &t) => match outcome {
                    Outcome::Delivered => done.extend(offsets),
                    Outcome::Partial { retry, rejected, .. } => {
                        // Rejected events count once their dead letter is written.
                        let pending: BTreeSet<usize> =
                            retry.into_iter().chain(rejected.into_iter().map(|r| r.0)).collect();
                        done.extend(
                            offsets
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| !pending.contains(i))
                                .map(|(_, o)| *o),
                        );
                    }
                    _ => {}
                },
                Entry::DeadLettered {
                    sink: s,
                    tenant: t,
                    first,
                    last,
                } if ours(&s, &t) => done.extend(first..=last),
                Entry::Reset {
                    sink: s,
                    tenant: t,
                    offset,
                } if ours(&s, &t) => {
                    // Only the first pin is the start; later resets would be operator rewinds.
                    start.get_or_insert(offset);
                }
                Entry::Committed {
                    sink: s,
                    tenant: t,
                    offset,
                } if ours(&s, &t) => {
                    let from = start.unwrap_or(0);
                    if let Some(missing) = (from + 1..=offset).find(|o| !done.contains(o)) {
                        panic!(
                            "journal entry {i}: the cursor of {sink}/{tenant} was committed to {offset} \
                             although offset {missing} was neither accepted nor dead-lettered"
                        );
                    }
                    commits.push(offset);
                }
                _ => {}
            }
        }
        commits
    }
}

/// Sink leases as PostgreSQL grants them (store/src/postgres/leases.rs): a lease is held by one
/// node until released or expired; each heartbeat renews the node's leases and claims free ones
/// up to its fair share (sinks over live nodes, rounded up).
#[derive(Default)]
struct LeaseTable {
    /// Node → alive until.
    nodes: HashMap<String, Instant>,
    /// Sink → (node, until).
    leases: HashMap<String, (String, Instant)>,
}

impl LeaseTable {
    fn heartbeat(&mut self, node: &str, sinks: &[String], ttl: Duration) -> LeaseGrant {
        let now = Instant::now();
        self.nodes.insert(node.to_owned(), now + ttl);
        self.nodes.retain(|_, until| *until > now);
        let fair_share = sinks.len().div_ceil(self.nodes.len().max(1));
        let mut held = Vec::new();
        for sink in sinks {
            if let Some((owner, until)) = self.leases.get_mut(sink) {
                if owner == node && *until > now {
                    *until = now + ttl;
                    held.push(sink.clone());
                }
            }
        }
        for sink in sinks {
            if held.len() >= fair_share {
                break;
            }
            let free = self.leases.get(sink).is_none_or(|(_, until)| *until <= now);
            if free {
                self.leases.insert(sink.clone(), (node.to_owned(), now + ttl));
                held.push(sink.clone());
            }
        }
        LeaseGrant { held, fair_share }
    }

    fn release(&mut self, node: &str, sinks: &[String]) {
        for sink in sinks {
            if self.leases.get(sink).is_some_and(|(owner, _)| owner == node) {
                self.leases.remove(sink);
            }
        }
    }
}

pub enum LeaseMode {
    /// What the wrapped store does (SQLite: every lease to every caller).
    Inner,
    Exclusive,
}

pub struct JournalStore {
    inner: Arc<dyn Store>,
    journal: Arc<Journal>,
    leases: Option<Mutex<LeaseTable>>,
    /// Who holds which sink after each heartbeat, for the lease tests.
    pub lease_changes: watch::Sender<HashMap<String, String>>,
}

impl JournalStore {
    pub fn new(inner: Arc<dyn Store>, journal: Arc<Journal>, mode: LeaseMode) -> Self {
        JournalStore {
            inner,
            journal,
            leases: match mode {
                LeaseMode::Inner => None,
                LeaseMode::Exclusive => Some(Mutex::new(LeaseTable::default())),
            },
            lease_changes: watch::Sender::new(HashMap::new()),
        }
    }

    fn publish_leases(&self, table: &LeaseTable) {
        let holders = table
            .leases
            .iter()
            .map(|(sink, (node, _))| (sink.clone(), node.clone()))
            .collect();
        self.lease_changes.send_replace(holders);
    }
}

#[async_trait]
impl EventLog for JournalStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.inner.append(events).await
    }
    async fn read(&self, query: ReadQuery) -> Result<Vec<StoredEvent>> {
        self.inner.read(query).await
    }
    async fn head(&self, tenant: &str) -> Result<u64> {
        self.inner.head(tenant).await
    }
    fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        self.inner.subscribe(tenant)
    }
    async fn offset_at_time(&self, tenant: &str, time: &str) -> Result<u64> {
        self.inner.offset_at_time(tenant, time).await
    }
}

#[async_trait]
impl Cursors for JournalStore {
    async fn cursor(&self, consumer: &str, tenant: &str) -> Result<Option<u64>> {
        self.inner.cursor(consumer, tenant).await
    }
    async fn commit_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        self.journal.push(Entry::Committed {
            sink: consumer.to_owned(),
            tenant: tenant.to_owned(),
            offset,
        });
        self.inner.commit_cursor(consumer, tenant, offset).await
    }
    async fn reset_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        self.journal.push(Entry::Reset {
            sink: consumer.to_owned(),
            tenant: tenant.to_owned(),
            offset,
        });
        self.inner.reset_cursor(consumer, tenant, offset).await
    }
    async fn cursors_of(&self, consumer: &str) -> Result<Vec<(String, u64)>> {
        self.inner.cursors_of(consumer).await
    }
}

#[async_trait]
impl SinkStore for JournalStore {
    async fn create_sink(&self, sink: SinkRow) -> Result<()> {
        self.inner.create_sink(sink).await
    }
    async fn sink(&self, id: &str) -> Result<Option<SinkRow>> {
        self.inner.sink(id).await
    }
    async fn list_sinks(&self, owner: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<SinkRow>> {
        self.inner.list_sinks(owner, after, limit).await
    }
    async fn update_sink(&self, sink: SinkRow) -> Result<Option<SinkRow>> {
        self.inner.update_sink(sink).await
    }
    async fn set_sink_paused(&self, id: &str, paused: bool, reason: Option<&str>) -> Result<Option<SinkRow>> {
        self.inner.set_sink_paused(id, paused, reason).await
    }
    async fn delete_sink(&self, id: &str) -> Result<bool> {
        self.inner.delete_sink(id).await
    }
}

#[async_trait]
impl SourceStore for JournalStore {
    async fn create_source(&self, source: SourceRow) -> Result<()> {
        self.inner.create_source(source).await
    }
    async fn source(&self, id: &str) -> Result<Option<SourceRow>> {
        self.inner.source(id).await
    }
    async fn list_sources(&self, after: Option<&str>, limit: usize) -> Result<Vec<SourceRow>> {
        self.inner.list_sources(after, limit).await
    }
    async fn update_source(&self, source: SourceRow) -> Result<Option<SourceRow>> {
        self.inner.update_source(source).await
    }
    async fn set_source_paused(&self, id: &str, paused: bool) -> Result<Option<SourceRow>> {
        self.inner.set_source_paused(id, paused).await
    }
    async fn delete_source(&self, id: &str) -> Result<bool> {
        self.inner.delete_source(id).await
    }
}

#[async_trait]
impl DeadLetters for JournalStore {
    async fn add_dead_letter(&self, dead_letter: DeadLetter) -> Result<()> {
        let entry = Entry::DeadLettered {
            sink: dead_letter.sink_id.clone(),
            tenant: dead_letter.tenant_id.clone(),
            first: dead_letter.first_offset,
            last: dead_letter.last_offset,
        };
        let result = self.inner.add_dead_letter(dead_letter).await;
        // Journaled once stored: only a written dead letter lets the cursor pass its events.
        if result.is_ok() {
            self.journal.push(entry);
        }
        result
    }
    async fn list_dead_letters(&self, sink_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner.list_dead_letters(sink_id, after, limit).await
    }
    async fn dead_letter(&self, sink_id: &str, id: &str) -> Result<Option<DeadLetter>> {
        self.inner.dead_letter(sink_id, id).await
    }
    async fn update_dead_letter_attempts(&self, sink_id: &str, id: &str, attempts: &str) -> Result<bool> {
        self.inner.update_dead_letter_attempts(sink_id, id, attempts).await
    }
    async fn delete_dead_letter(&self, sink_id: &str, id: &str) -> Result<bool> {
        self.inner.delete_dead_letter(sink_id, id).await
    }
    async fn count_dead_letters(&self, sink_id: &str) -> Result<u64> {
        self.inner.count_dead_letters(sink_id).await
    }
}

#[async_trait]
impl DeliveryLog for JournalStore {
    async fn record_attempts(&self, attempts: Vec<DeliveryAttempt>) -> Result<()> {
        self.inner.record_attempts(attempts).await
    }
    async fn list_attempts(
        &self,
        sink_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryAttempt)>> {
        self.inner.list_attempts(sink_id, before, limit).await
    }
    async fn prune_attempts(&self, older_than: &str) -> Result<u64> {
        self.inner.prune_attempts(older_than).await
    }
}

#[async_trait]
impl Catalog for JournalStore {
    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        self.inner.create_tenant(id, name).await
    }
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.inner.tenant(id).await
    }
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<Tenant>> {
        self.inner.list_tenants(after, limit).await
    }
    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey> {
        self.inner.create_key(key).await
    }
    async fn key_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.inner.key_by_hash(hash).await
    }
    async fn list_keys(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>> {
        self.inner.list_keys(tenant, after, limit).await
    }
    async fn revoke_key(&self, tenant: &str, key_id: &str) -> Result<bool> {
        self.inner.revoke_key(tenant, key_id).await
    }
    async fn touch_key(&self, key_id: &str, at: &str) -> Result<()> {
        self.inner.touch_key(key_id, at).await
    }
}

#[async_trait]
impl SinkLeases for JournalStore {
    async fn heartbeat_leases(&self, node: &str, sinks: &[String], ttl: Duration) -> Result<LeaseGrant> {
        match &self.leases {
            None => self.inner.heartbeat_leases(node, sinks, ttl).await,
            Some(table) => {
                let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
                let grant = table.heartbeat(node, sinks, ttl);
                self.publish_leases(&table);
                Ok(grant)
            }
        }
    }
    async fn release_leases(&self, node: &str, sinks: &[String]) -> Result<()> {
        match &self.leases {
            None => self.inner.release_leases(node, sinks).await,
            Some(table) => {
                let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
                table.release(node, sinks);
                self.publish_leases(&table);
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Checkpoints for JournalStore {
    async fn chain_head(&self, tenant: &str) -> Result<Option<(u64, [u8; 32])>> {
        self.inner.chain_head(tenant).await
    }
    async fn add_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        self.inner.add_checkpoint(checkpoint).await
    }
    async fn list_checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<Checkpoint>> {
        self.inner.list_checkpoints(tenant, after, limit).await
    }
    async fn latest_checkpoints(&self) -> Result<Vec<(String, u64)>> {
        self.inner.latest_checkpoints().await
    }
}

#[async_trait]
impl Retention for JournalStore {
    async fn retention_policy(&self, tenant: &str) -> Result<Option<String>> {
        self.inner.retention_policy(tenant).await
    }
    async fn set_retention_policy(&self, tenant: &str, policy: Option<&str>) -> Result<()> {
        self.inner.set_retention_policy(tenant, policy).await
    }
    async fn purged_through(&self, tenant: &str) -> Result<u64> {
        self.inner.purged_through(tenant).await
    }
    async fn purge_events(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        self.inner.purge_events(tenant, through, max_events).await
    }
}

#[async_trait]
impl Store for JournalStore {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
