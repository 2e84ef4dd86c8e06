//! The single log writer and its group commit: take the first queued job, drain everything
//! else already waiting, encode every event of the group into one buffer, write it after the
//! end of the active segment, write the index entries, `fdatasync` once, then publish the new
//! heads and answer every request. Under load groups grow by themselves.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use auditrelay_core::NewEvent;
use tokio::sync::oneshot;

use super::dedup::{self, ClientIds, Seen};
use super::files::{io, OffsetIndex, Segment};
use super::frame::{GroupBuilder, RecordIn, GROUP_HEADER};
use super::recover::{add_tenant_line, index_path, Recovered};
use super::{write_manifest, LogOptions, Manifest, Shared, TenantLog};
use crate::GroupObserver;
use crate::{chain, AppendOutcome, Notifier, Result, StoreError};

/// Upper bound on events in one group, so a flood of big requests still commits regularly.
const MAX_GROUP_EVENTS: usize = 50_000;

type Reply<T> = oneshot::Sender<Result<T>>;

pub(crate) enum Job {
    Append {
        events: Vec<NewEvent>,
        reply: Reply<Vec<AppendOutcome>>,
    },
    Register {
        tenant: String,
        reply: Reply<()>,
    },
    Purge {
        tenant: String,
        through: u64,
        max_events: u64,
        reply: Reply<u64>,
    },
    Ping {
        reply: Reply<()>,
    },
    Import {
        batch: Import,
        reply: std::sync::mpsc::Sender<Result<u64>>,
    },
}

/// Events of one tenant from the previous log, in offset order.
pub struct Import {
    pub tenant: String,
    /// Offsets at or below this were purged in the previous log.
    pub purged: u64,
    /// The chain value after `purged` (used only when the partition starts there).
    pub chain_at_purged: [u8; 32],
    pub events: Vec<ImportedEvent>,
}

pub struct ImportedEvent {
    pub offset: u64,
    pub id: String,
    pub event_type: String,
    pub received_at: String,
    pub body: String,
    pub chain: [u8; 32],
    pub client_id: bool,
}

pub(crate) struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    by_no: Vec<Arc<TenantLog>>,
    manifest: Manifest,
    active: Arc<Segment>,
    /// Global position of the end of the last durable group.
    end: u64,
    ids: ClientIds,
    builder: GroupBuilder,
    /// Tenants whose index was written since the last index checkpoint.
    unsynced: HashSet<u32>,
    notifier: Arc<Notifier>,
    observer: Option<GroupObserver>,
    /// The last `received_at` parsed, shared by every event of a request.
    last_received: (String, i64),
    options: LogOptions,
}

/// A group that is durable: what to answer and what to publish.
struct Done {
    results: Vec<Result<Vec<AppendOutcome>>>,
    placed: Vec<Placed>,
    tails: HashMap<u32, (u64, [u8; 32])>,
}

/// One event of the group as the writer placed it.
struct Placed {
    tenant: u32,
    offset: u64,
    pos: u64,
    client_key: Option<dedup::Key>,
}

impl Writer {
    pub(crate) fn new(
        dir: PathBuf,
        recovered: Recovered,
        notifier: Arc<Notifier>,
        observer: Option<GroupObserver>,
        options: LogOptions,
    ) -> Writer {
        let active = recovered.shared.segments.active();
        Writer {
            dir,
            shared: recovered.shared,
            by_no: recovered.by_no,
            manifest: recovered.manifest,
            active,
            end: recovered.end,
            ids: recovered.ids,
            builder: GroupBuilder::new(),
            unsynced: HashSet::new(),
            notifier,
            observer,
            last_received: (String::new(), 0),
            options,
        }
    }

    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut appends = Vec::new();
            let mut pending = Some(first);
            let mut group_events = 0;
            loop {
                match pending.take() {
                    Some(Job::Append { events, reply }) => {
                        group_events += events.len();
                        appends.push((events, reply));
                    }
                    Some(other) => {
                        // Run what came before it first, so jobs keep their order.
                        if !appends.is_empty() {
                            self.commit_group(std::mem::take(&mut appends));
                            group_events = 0;
                        }
                        self.run_other(other);
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
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "could not checkpoint the log index on shutdown; recovery will re-read it");
        }
        tracing::debug!("log writer stopped");
    }

    fn run_other(&mut self, job: Job) {
        match job {
            Job::Register { tenant, reply } => {
                let _ = reply.send(self.register(&tenant));
            }
            Job::Purge {
                tenant,
                through,
                max_events,
                reply,
            } => {
                let _ = reply.send(self.purge(&tenant, through, max_events));
            }
            Job::Ping { reply } => {
                let _ = reply.send(Ok(()));
            }
            Job::Import { batch, reply } => {
                let _ = reply.send(self.import(batch));
            }
            Job::Append { .. } => unreachable!("appends are grouped by run"),
        }
    }

    pub(crate) fn register(&mut self, tenant: &str) -> Result<()> {
        if self.shared.tenant(tenant).is_some() {
            return Ok(());
        }
        let no = self.by_no.len() as u32;
        let index = OffsetIndex::open(index_path(&self.dir, no))?;
        index.truncate(0)?;
        add_tenant_line(&self.dir, no, tenant)?;
        let log = Arc::new(TenantLog {
            no,
            name: tenant.to_owned(),
            index,
            head: 0.into(),
            purged: 0.into(),
            chain: Mutex::new(chain::GENESIS),
        });
        self.by_no.push(log.clone());
        self.shared
            .tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), log);
        Ok(())
    }

    fn received_ns(&mut self, received_at: &str) -> i64 {
        if self.last_received.0 != received_at {
            let ns = crate::time_search::instant(received_at).unwrap_or(0);
            self.last_received = (received_at.to_owned(), ns as i64);
        }
        self.last_received.1
    }

    fn commit_group(&mut self, group: Vec<(Vec<NewEvent>, Reply<Vec<AppendOutcome>>)>) {
        let requests = group.len();
        let events: usize = group.iter().map(|(e, _)| e.len()).sum();
        match self.append_all(&group) {
            Ok(done) => {
                let mut touched: HashMap<String, u64> = HashMap::with_capacity(done.tails.len());
                for (no, (head, chain)) in &done.tails {
                    let t = &self.by_no[*no as usize];
                    // Head and chain move together, under the chain's lock (`chain_head`).
                    let mut current = t.chain.lock().unwrap_or_else(|p| p.into_inner());
                    *current = *chain;
                    t.head.store(*head, Ordering::Release);
                    drop(current);
                    touched.insert(t.name.clone(), *head);
                }
                for p in &done.placed {
                    if let Some(k) = p.client_key {
                        self.ids.insert(
                            k,
                            Seen {
                                tenant: p.tenant,
                                offset: p.offset,
                            },
                        );
                    }
                }
                for ((_, reply), result) in group.into_iter().zip(done.results) {
                    let _ = reply.send(result);
                }
                for (tenant, head) in &touched {
                    self.notifier.publish(tenant, *head);
                }
                if let Some(observe) = &self.observer {
                    observe(requests, events, &touched);
                }
                self.after_commit();
            }
            Err(e) => {
                tracing::error!(error = %e, requests, events, "group commit failed; nothing of it was stored");
                let msg = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Unavailable(format!("appending events: {msg}"))));
                }
            }
        }
    }

    /// Encodes, writes and syncs the group. Nothing shared changes here: the caller publishes
    /// the new heads and chains once this returned.
    fn append_all(&mut self, group: &[(Vec<NewEvent>, Reply<Vec<AppendOutcome>>)]) -> Result<Done> {
        self.builder.clear();
        let mut placed: Vec<Placed> = Vec::new();
        // The head and chain each touched tenant has after this group.
        let mut tails: HashMap<u32, (u64, [u8; 32])> = HashMap::new();
        let mut group_ids: HashMap<dedup::Key, u64> = HashMap::new();
        let mut results = Vec::with_capacity(group.len());
        'requests: for (events, _) in group {
            let mut tenants: Vec<Arc<TenantLog>> = Vec::with_capacity(1);
            for ev in events {
                if tenants.iter().any(|t| t.name == ev.tenant_id) {
                    continue;
                }
                match self.shared.tenant(&ev.tenant_id) {
                    Some(t) => tenants.push(t),
                    None => {
                        results.push(Err(StoreError::UnknownTenant(ev.tenant_id.clone())));
                        continue 'requests;
                    }
                }
            }
            let mut outcomes = Vec::with_capacity(events.len());
            for ev in events {
                let Some(t) = tenants.iter().find(|t| t.name == ev.tenant_id) else {
                    return Err(StoreError::Corrupt(format!(
                        "tenant {} vanished mid-group",
                        ev.tenant_id
                    )));
                };
                let client_key = ev.client_supplied_id.then(|| dedup::key(t.no, ev.id.as_bytes()));
                if let Some(k) = &client_key {
                    let existing = match group_ids.get(k) {
                        Some(&o) => Some(o),
                        None => self
                            .ids
                            .lookup(k)?
                            .filter(|s| s.tenant == t.no && s.offset > t.purged())
                            .map(|s| s.offset),
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
                let tail = tails
                    .entry(t.no)
                    .or_insert_with(|| (t.head(), *t.chain.lock().unwrap_or_else(|p| p.into_inner())));
                let offset = tail.0 + 1;
                let next = chain::link_new(&tail.1, offset, ev)?;
                *tail = (offset, next);
                let received_at_ns = self.received_ns(&ev.received_at);
                let pos = self.end + self.builder.next_record_at() as u64;
                self.builder.push(&RecordIn {
                    tenant: t.no,
                    offset,
                    received_at_ns,
                    client_id: client_key.is_some(),
                    chain: &next,
                    id: &ev.id,
                    event_type: &ev.event_type,
                    body: ev.body.as_bytes(),
                });
                if let Some(k) = client_key {
                    group_ids.insert(k, offset);
                }
                placed.push(Placed {
                    tenant: t.no,
                    offset,
                    pos,
                    client_key,
                });
                outcomes.push(AppendOutcome {
                    id: ev.id.clone(),
                    offset,
                    duplicate: false,
                });
            }
            results.push(Ok(outcomes));
        }
        self.write_built(&placed)?;
        Ok(Done { results, placed, tails })
    }

    /// Writes the group in the builder after the end of the log, its index entries, and syncs.
    /// On failure the segment is put back as it was, so the next group starts where this did.
    fn write_built(&mut self, placed: &[Placed]) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        // Start a new segment when the active one is full (between groups, never inside one).
        if self.end - self.active.base >= self.options.segment_bytes {
            self.roll()?;
        }
        let at = self.end - self.active.base;
        let bytes = self.builder.finish();
        let len = bytes.len() as u64;
        let written = std::os::unix::fs::FileExt::write_all_at(&self.active.file, bytes, at);
        let result = written
            .map_err(io(format!("appending to {}", self.active.path.display())))
            .and_then(|()| self.write_index(placed))
            .and_then(|()| {
                self.active
                    .file
                    .sync_data()
                    .map_err(io(format!("syncing {}", self.active.path.display())))
            });
        if let Err(e) = result {
            if let Err(t) = self.active.file.set_len(at) {
                tracing::error!(error = %t, "could not truncate a failed group off the log");
            }
            // Index entries written for the group point where other records will go: drop
            // them, so no entry ever names another tenant's record (recovery would trust an
            // entry below a later checkpoint).
            let mut firsts: HashMap<u32, u64> = HashMap::new();
            for p in placed {
                firsts.entry(p.tenant).or_insert(p.offset);
            }
            for (no, first) in firsts {
                if let Err(t) = self.by_no[no as usize].index.truncate(first - 1) {
                    tracing::error!(error = %t, "could not drop a failed group's index entries");
                }
            }
            return Err(e);
        }
        debug_assert!(GROUP_HEADER as u64 <= len);
        self.end += len;
        Ok(())
    }

    /// Copies events of the previous (SQLite) log in, with their offsets and chain values.
    /// Offsets at or below the head are skipped, so an interrupted import resumes.
    pub(crate) fn import(&mut self, batch: Import) -> Result<u64> {
        let t = self
            .shared
            .tenant(&batch.tenant)
            .ok_or_else(|| StoreError::UnknownTenant(batch.tenant.clone()))?;
        if t.head() == 0 && batch.purged > 0 {
            // The old log purged a prefix: the partition starts after it, and the chain value
            // there is kept in the manifest (no record holds it).
            self.manifest.purged.insert(t.no, batch.purged);
            self.manifest
                .imported_chains
                .insert(t.no, (batch.purged, hex::encode(batch.chain_at_purged)));
            self.save_manifest()?;
            t.index.truncate(batch.purged)?;
            t.purged.store(batch.purged, Ordering::Release);
            *t.chain.lock().unwrap_or_else(|p| p.into_inner()) = batch.chain_at_purged;
            t.head.store(batch.purged, Ordering::Release);
        }
        self.builder.clear();
        let mut placed = Vec::new();
        let mut head = t.head();
        let mut chain = *t.chain.lock().unwrap_or_else(|p| p.into_inner());
        for ev in &batch.events {
            if ev.offset <= head {
                continue;
            }
            if ev.offset != head + 1 {
                return Err(StoreError::Corrupt(format!(
                    "importing tenant `{}`: offset {} follows {head}",
                    batch.tenant, ev.offset
                )));
            }
            let received_at_ns = self.received_ns(&ev.received_at);
            let pos = self.end + self.builder.next_record_at() as u64;
            self.builder.push(&RecordIn {
                tenant: t.no,
                offset: ev.offset,
                received_at_ns,
                client_id: ev.client_id,
                chain: &ev.chain,
                id: &ev.id,
                event_type: &ev.event_type,
                body: ev.body.as_bytes(),
            });
            placed.push(Placed {
                tenant: t.no,
                offset: ev.offset,
                pos,
                client_key: ev.client_id.then(|| dedup::key(t.no, ev.id.as_bytes())),
            });
            head = ev.offset;
            chain = ev.chain;
        }
        self.write_built(&placed)?;
        for p in &placed {
            if let Some(k) = p.client_key {
                self.ids.insert(
                    k,
                    Seen {
                        tenant: p.tenant,
                        offset: p.offset,
                    },
                );
            }
        }
        *t.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        t.head.store(head, Ordering::Release);
        self.after_commit();
        Ok(head)
    }

    fn write_index(&mut self, placed: &[Placed]) -> Result<()> {
        // Consecutive entries of one tenant go in one write.
        let mut runs: HashMap<u32, (u64, Vec<u64>)> = HashMap::new();
        for p in placed {
            let run = runs.entry(p.tenant).or_insert_with(|| (p.offset, Vec::new()));
            run.1.push(p.pos);
        }
        for (no, (first, positions)) in runs {
            self.by_no[no as usize].index.write(first, &positions)?;
            self.unsynced.insert(no);
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        self.checkpoint()?;
        self.active = self.shared.segments.create(self.end)?;
        Ok(())
    }

    /// Syncs the index files written since the last checkpoint and records that the log is
    /// indexed durably up to its end.
    fn checkpoint(&mut self) -> Result<()> {
        for no in self.unsynced.drain() {
            self.by_no[no as usize].index.sync()?;
        }
        let by_no = &self.by_no;
        self.ids
            .flush_all(self.end, || by_no.iter().map(|t| (t.no, t.purged())).collect())?;
        self.manifest.index_synced_through = self.end;
        self.save_manifest()
    }

    fn save_manifest(&mut self) -> Result<()> {
        self.manifest.dedup_covers_through = self.ids.covers_through;
        self.manifest.dedup_runs = self.ids.run_ids();
        write_manifest(&self.dir, &self.manifest)?;
        self.ids.delete_obsolete();
        Ok(())
    }

    /// Housekeeping after a durable group: client-id runs, index checkpoints. Failures here
    /// lose nothing (recovery re-reads the log), so they are logged, not returned.
    fn after_commit(&mut self) {
        let by_no = &self.by_no;
        let purged = || by_no.iter().map(|t| (t.no, t.purged())).collect();
        match self.ids.maybe_flush(self.end, purged) {
            Ok(true) => {
                if let Err(e) = self.save_manifest() {
                    tracing::warn!(error = %e, "could not record the client-id runs; will retry");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not write a client-id run; will retry"),
        }
        if self.end - self.manifest.index_synced_through >= self.options.checkpoint_bytes {
            if let Err(e) = self.checkpoint() {
                tracing::warn!(error = %e, "could not checkpoint the log index; will retry");
            }
        }
    }

    fn purge(&mut self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        let t = self
            .shared
            .tenant(tenant)
            .ok_or_else(|| StoreError::UnknownTenant(tenant.to_owned()))?;
        let from = t.purged();
        let to = through.min(t.head()).min(from.saturating_add(max_events));
        if to <= from {
            return Ok(from);
        }
        self.manifest.purged.insert(t.no, to);
        if let Err(e) = self.save_manifest() {
            self.manifest.purged.insert(t.no, from);
            return Err(e);
        }
        t.purged.store(to, Ordering::Release);
        if let Err(e) = self.drop_dead_segments() {
            tracing::warn!(error = %e, "could not delete purged log segments; will retry after the next purge");
        }
        Ok(to)
    }

    /// Deletes the oldest segments that hold no event a reader may still see. Each tenant's
    /// first unpurged event — or its head event, whose chain value the log continues from —
    /// must stay.
    fn drop_dead_segments(&mut self) -> Result<()> {
        let mut keep_from = self.end;
        for t in &self.by_no {
            let head = t.head();
            if head == 0 {
                continue;
            }
            let first_needed = (t.purged() + 1).min(head);
            if let Some(Some(pos)) = t.index.read(first_needed, 1)?.first() {
                keep_from = keep_from.min(*pos);
            }
        }
        let segments = self.shared.segments.all();
        for pair in segments.windows(2) {
            if pair[1].base <= keep_from {
                self.shared.segments.remove(pair[0].base)?;
            }
        }
        Ok(())
    }
}
