//! The event log of the embedded backend: an append-only, segmented log of our own, built for
//! what the log does — sequential appends with one `fdatasync` per group of concurrent
//! requests, and sequential reads by offset. SQLite keeps the catalog beside it.
//!
//! Layout under `<data dir>/log/`:
//!
//! * `NNNN….seg`: segments, the groups of every tenant in commit order (`frame.rs`);
//! * `index/<tenant number>.idx`: one dense offset → position index per tenant (`files.rs`);
//! * `dedup/*.run`: the client-id index (`dedup.rs`);
//! * `tenants`: tenant number → tenant id, one line each, fsynced when a tenant is added;
//! * `manifest.json`: what recovery may trust without reading the log (below).
//!
//! **Durability.** A group is written after the end of the active segment, its index entries are
//! written, then the segment is `fdatasync`ed; only then are the heads published and the
//! requests answered (invariant *202 ⇒ durable*). Index files and the client-id table are not
//! synced on that path: the manifest records how far the log is covered by synced index files
//! (`index_synced_through`) and by client-id runs (`dedup_covers_through`), and recovery reads
//! the log from there on, truncating at the first incomplete or damaged group (invariant *only
//! whole groups survive*). A failed write or sync truncates the segment back to where the group
//! began and fails every request of the group with 503; nothing earlier is touched (invariant
//! *a full disk damages nothing*), and the next group tries again, so ingest resumes by itself.

mod dedup;
mod files;
mod frame;
mod read;
mod recover;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use auditrelay_core::{NewEvent, StoredEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::GroupObserver;
use crate::{AppendOutcome, Notifier, ReadQuery, Result, StoreError};
use files::{OffsetIndex, Segments};
use writer::Job;
pub use writer::{Import, ImportedEvent};

/// The directory of the log inside the data dir.
pub const LOG_DIR: &str = "log";

/// What recovery may trust without reading the log, replaced atomically.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Every index entry of a record before this position is on disk (index files synced).
    index_synced_through: u64,
    /// Every client id of a record before this position is in one of `dedup_runs`.
    dedup_covers_through: u64,
    dedup_runs: Vec<u64>,
    /// Tenant number → every offset at or below this was purged by retention.
    purged: HashMap<u32, u64>,
    /// Tenant number → (offset, chain hex) for partitions imported from the previous log that
    /// start after a purged prefix: no record holds that chain value.
    #[serde(default)]
    imported_chains: HashMap<u32, (u64, String)>,
}

/// One tenant's partition: its number in the records, its index and its published head.
pub(crate) struct TenantLog {
    pub no: u32,
    pub name: String,
    pub index: OffsetIndex,
    /// The highest durable offset. Readers never look past it.
    pub head: AtomicU64,
    pub purged: AtomicU64,
    /// The chain value after `head`.
    pub chain: Mutex<[u8; 32]>,
}

impl TenantLog {
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }
    pub(crate) fn purged(&self) -> u64 {
        self.purged.load(Ordering::Acquire)
    }
}

/// What readers and the writer share.
pub(crate) struct Shared {
    pub segments: Segments,
    pub tenants: RwLock<HashMap<String, Arc<TenantLog>>>,
}

impl Shared {
    pub(crate) fn tenant(&self, name: &str) -> Option<Arc<TenantLog>> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// Sizes that tests shrink; the defaults suit production.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// A segment that reached this size is closed and a new one started.
    pub segment_bytes: u64,
    /// The index files are synced and the manifest rewritten after this much log, which bounds
    /// what recovery reads.
    pub checkpoint_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 128 << 20,
            checkpoint_bytes: 64 << 20,
        }
    }
}

pub struct SegLog {
    shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SegLog {
    /// Opens (creating, or recovering after a crash) the log in `dir`. `known_tenants` are the
    /// catalog's tenants: any the log does not know yet are registered.
    pub fn open(
        dir: &Path,
        known_tenants: &[String],
        notifier: Arc<Notifier>,
        observer: Option<GroupObserver>,
        options: LogOptions,
    ) -> Result<SegLog> {
        let recovered = recover::open(dir)?;
        let shared = recovered.shared.clone();
        let mut writer = writer::Writer::new(dir.to_path_buf(), recovered, notifier, observer, options);
        for tenant in known_tenants {
            writer.register(tenant)?;
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(files::io("starting the log writer thread"))?;
        Ok(SegLog {
            shared,
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| StoreError::ShuttingDown),
            None => Err(StoreError::ShuttingDown),
        }
    }

    async fn ask<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(job(reply))?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Appends a request's events; returns once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.ask(|reply| Job::Append { events, reply }).await
    }

    /// Imports a batch of the previous log's events (blocking; see `writer::Import`). Returns
    /// the tenant's head after it.
    pub fn import_blocking(&self, batch: Import) -> Result<u64> {
        let (reply, rx) = mpsc::channel();
        self.send(Job::Import { batch, reply })?;
        rx.recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Makes a tenant known to the log (idempotent).
    pub async fn register(&self, tenant: &str) -> Result<()> {
        let tenant = tenant.to_owned();
        self.ask(|reply| Job::Register { tenant, reply }).await
    }

    /// Purges the tenant's oldest events through `through` (never past the head), at most
    /// `max_events` more; returns the new purged offset.
    pub async fn purge(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        let tenant = tenant.to_owned();
        self.ask(|reply| Job::Purge {
            tenant,
            through,
            max_events,
            reply,
        })
        .await
    }

    /// Answers once every job queued before it has run (the writer is alive).
    pub async fn ping(&self) -> Result<()> {
        self.ask(|reply| Job::Ping { reply }).await
    }

    pub fn head(&self, tenant: &str) -> u64 {
        self.shared.tenant(tenant).map(|t| t.head()).unwrap_or(0)
    }

    pub fn purged_through(&self, tenant: &str) -> u64 {
        self.shared.tenant(tenant).map(|t| t.purged()).unwrap_or(0)
    }

    pub fn chain_head(&self, tenant: &str) -> Option<(u64, [u8; 32])> {
        let t = self.shared.tenant(tenant)?;
        // Read the chain and the head under the chain lock: the writer updates both under it.
        let chain = t.chain.lock().unwrap_or_else(|p| p.into_inner());
        let head = t.head();
        (head > 0).then_some((head, *chain))
    }

    /// Reads (blocking: call from a blocking thread).
    pub fn read(&self, q: &ReadQuery) -> Result<Vec<StoredEvent>> {
        read::read(&self.shared, q)
    }

    pub fn offset_at_time(&self, tenant: &str, time: &str) -> Result<u64> {
        read::offset_at_time(&self.shared, tenant, time)
    }

    /// Finishes queued work, writes a checkpoint and stops the writer.
    pub fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(handle) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = manifest_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(files::io(format!("reading {}", path.display()))(e)),
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| StoreError::Corrupt(format!("serialising the log manifest: {e}")))?;
    files::replace_file(&manifest_path(dir), &bytes)
}
