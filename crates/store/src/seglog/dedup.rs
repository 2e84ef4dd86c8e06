//! Client-id dedup for ever, in bounded memory: a small LSM of fixed-size entries.
//!
//! An entry maps `key = SHA-256(tenant number ‖ client id)[..16]` to the tenant and the offset
//! the id was first stored at. New entries go to an in-memory table; when it is full it is
//! written, sorted, as an immutable *run* file (fsynced), and runs are merged in the background
//! when there are too many. Each run keeps only a Bloom filter and one key per block in memory,
//! so a lookup of a new id (the common case) touches no disk, and a repeated one reads one
//! block. 128-bit keys make an accidental collision less likely than a disk error
//! (~n²/2¹²⁹); nobody can aim for one, since SHA-256 is preimage-resistant.
//!
//! The table is not durable by itself: runs cover the log up to `covers_through` (recorded in
//! the manifest), and recovery re-inserts the client ids of every record after it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::files::{io, read_full_at, sync_dir};
use crate::Result;

pub(crate) type Key = [u8; 16];
const ENTRY: usize = 32;
/// Entries per block: one block (4 KiB) is read per lookup that passes the filter.
const BLOCK: usize = 128;
const MEMTABLE_MAX: usize = if cfg!(test) { 1024 } else { 256 * 1024 };
/// More runs than this start a background merge of all of them.
const MAX_RUNS: usize = 6;
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_HASHES: u64 = 7;

pub(crate) fn key(tenant: u32, client_id: &[u8]) -> Key {
    let mut h = Sha256::new();
    h.update(tenant.to_le_bytes());
    h.update(client_id);
    let digest = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// Where an id was first stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub tenant: u32,
    pub offset: u64,
}

fn encode(k: &Key, s: Seen) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..16].copy_from_slice(k);
    e[16..20].copy_from_slice(&s.tenant.to_le_bytes());
    e[24..32].copy_from_slice(&s.offset.to_le_bytes());
    e
}

fn decode(e: &[u8]) -> (Key, Seen) {
    let mut k = [0u8; 16];
    k.copy_from_slice(&e[..16]);
    let mut t = [0u8; 4];
    t.copy_from_slice(&e[16..20]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&e[24..32]);
    (
        k,
        Seen {
            tenant: u32::from_le_bytes(t),
            offset: u64::from_le_bytes(o),
        },
    )
}

/// The bits of `k` in a filter of `m` bits (double hashing over the key's two halves).
fn probes(m: u64, k: &Key) -> impl Iterator<Item = usize> {
    let mut a = [0u8; 8];
    a.copy_from_slice(&k[..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[8..]);
    let (h1, h2) = (u64::from_le_bytes(a), u64::from_le_bytes(b) | 1);
    (0..BLOOM_HASHES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
}

struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    fn new(keys: usize) -> Bloom {
        let words = (keys * BLOOM_BITS_PER_KEY).div_ceil(64).max(1);
        Bloom { bits: vec![0; words] }
    }
    fn probes(&self, k: &Key) -> impl Iterator<Item = usize> {
        probes((self.bits.len() * 64) as u64, k)
    }
    fn add(&mut self, k: &Key) {
        for bit in probes((self.bits.len() * 64) as u64, k) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }
    fn may_contain(&self, k: &Key) -> bool {
        self.probes(k).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// What a run keeps in memory: the first key of every block, and a Bloom filter of all keys.
struct Summary {
    fences: Vec<Key>,
    bloom: Bloom,
    keys: usize,
}

impl Summary {
    fn with_capacity(keys: usize) -> Summary {
        Summary {
            fences: Vec::with_capacity(keys / BLOCK + 1),
            bloom: Bloom::new(keys.max(1)),
            keys: 0,
        }
    }

    /// Takes the next key, in sorted order.
    fn add(&mut self, k: &Key) {
        if self.keys.is_multiple_of(BLOCK) {
            self.fences.push(*k);
        }
        self.bloom.add(k);
        self.keys += 1;
    }
}

/// One immutable sorted run on disk.
pub(crate) struct Run {
    pub id: u64,
    file: File,
    path: PathBuf,
    entries: usize,
    summary: Summary,
}

fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.run"))
}

/// Writes sorted entries as run `id`, fsynced, and returns it loaded.
fn write_run(dir: &Path, id: u64, sorted: impl Iterator<Item = (Key, Seen)>, hint: usize) -> Result<Run> {
    let path = run_path(dir, id);
    let file = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut summary = Summary::with_capacity(hint);
    for (k, s) in sorted {
        summary.add(&k);
        out.write_all(&encode(&k, s))
            .map_err(io(format!("writing {}", path.display())))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| io(format!("writing {}", path.display()))(e.into_error()))?;
    file.sync_all().map_err(io(format!("syncing {}", path.display())))?;
    sync_dir(dir)?;
    let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
    Ok(Run {
        id,
        file,
        path,
        entries: summary.keys,
        summary,
    })
}

impl Run {
    /// Opens a run written earlier, rebuilding its filter and fences with one sequential read.
    fn load(dir: &Path, id: u64) -> Result<Run> {
        let path = run_path(dir, id);
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(io(format!("reading the size of {}", path.display())))?
            .len() as usize;
        let entries = len / ENTRY;
        let mut run = Run {
            id,
            file,
            path,
            entries,
            summary: Summary::with_capacity(0),
        };
        let mut summary = Summary::with_capacity(entries);
        let mut cursor = RunCursor::new(&run)?;
        while let Some((k, _)) = cursor.head {
            summary.add(&k);
            cursor.advance()?;
        }
        if summary.keys != entries {
            return Err(crate::StoreError::Corrupt(format!(
                "{} is shorter than its entries",
                run.path.display()
            )));
        }
        run.summary = summary;
        Ok(run)
    }

    fn lookup(&self, k: &Key) -> Result<Option<Seen>> {
        if self.entries == 0 || !self.summary.bloom.may_contain(k) {
            return Ok(None);
        }
        let block = self.summary.fences.partition_point(|f| f <= k);
        if block == 0 {
            return Ok(None);
        }
        let first = (block - 1) * BLOCK;
        let count = BLOCK.min(self.entries - first);
        let mut buf = vec![0u8; count * ENTRY];
        let n = read_full_at(&self.file, &mut buf, (first * ENTRY) as u64)
            .map_err(io(format!("reading {}", self.path.display())))?;
        let found = buf[..n - n % ENTRY]
            .chunks_exact(ENTRY)
            .map(decode)
            .find(|(key, _)| key == k)
            .map(|(_, s)| s);
        Ok(found)
    }
}

/// What a background merge hands back: the runs it replaced and the one replacing them.
struct Merged {
    replaced: Vec<u64>,
    run: Result<Run>,
}

pub(crate) struct ClientIds {
    dir: PathBuf,
    memtable: HashMap<Key, Seen>,
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    next_run: u64,
    /// Every client id of a record before this log position is in `runs`.
    pub covers_through: u64,
    merging: Option<Receiver<Merged>>,
    /// Runs a merge replaced, deleted once the manifest stops naming them.
    obsolete: Vec<u64>,
}

impl ClientIds {
    /// Opens the runs the manifest names; files it does not name are leftovers of an
    /// interrupted flush or merge and are deleted.
    pub(crate) fn open(dir: &Path, runs: &[u64], covers_through: u64) -> Result<ClientIds> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut loaded = Vec::new();
        for &id in runs {
            loaded.push(Arc::new(Run::load(dir, id)?));
        }
        let next_run = runs.iter().max().map(|m| m + 1).unwrap_or(1);
        for entry in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            let named = name
                .to_str()
                .and_then(|n| n.strip_suffix(".run"))
                .and_then(|n| n.parse::<u64>().ok())
                .map(|id| runs.contains(&id))
                .unwrap_or(false);
            if !named {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ClientIds {
            dir: dir.to_owned(),
            memtable: HashMap::new(),
            runs: loaded,
            next_run,
            covers_through,
            merging: None,
            obsolete: Vec::new(),
        })
    }

    pub(crate) fn run_ids(&self) -> Vec<u64> {
        self.runs.iter().map(|r| r.id).collect()
    }

    pub(crate) fn lookup(&self, k: &Key) -> Result<Option<Seen>> {
        if let Some(s) = self.memtable.get(k) {
            return Ok(Some(*s));
        }
        for run in self.runs.iter().rev() {
            if let Some(s) = run.lookup(k)? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    pub(crate) fn insert(&mut self, k: Key, seen: Seen) {
        self.memtable.insert(k, seen);
    }

    /// Writes the in-memory table as a run when it is full; `log_end` is the end of the log,
    /// every record before which has its client id in the table or a run. Returns whether the
    /// manifest must be rewritten.
    pub(crate) fn maybe_flush(&mut self, log_end: u64, purged: impl FnOnce() -> HashMap<u32, u64>) -> Result<bool> {
        self.flush(log_end, false, purged)
    }

    /// Writes whatever the in-memory table holds (at a checkpoint or on close), so that
    /// `covers_through` reaches `log_end` and recovery need not read the log before it.
    pub(crate) fn flush_all(&mut self, log_end: u64, purged: impl FnOnce() -> HashMap<u32, u64>) -> Result<bool> {
        self.flush(log_end, true, purged)
    }

    fn flush(&mut self, log_end: u64, force: bool, purged: impl FnOnce() -> HashMap<u32, u64>) -> Result<bool> {
        let mut changed = self.collect_merge()?;
        if force && self.memtable.is_empty() && self.covers_through < log_end {
            self.covers_through = log_end;
            changed = true;
        }
        if self.memtable.len() >= MEMTABLE_MAX || (force && !self.memtable.is_empty()) {
            // The table is cleared only once its run is durable: a failed write (a full disk)
            // keeps every entry, and the next group tries again.
            let mut entries: Vec<(Key, Seen)> = self.memtable.iter().map(|(k, s)| (*k, *s)).collect();
            entries.sort_unstable_by_key(|e| e.0);
            let id = self.next_run;
            self.next_run += 1;
            let n = entries.len();
            let run = write_run(&self.dir, id, entries.into_iter(), n)?;
            self.memtable.clear();
            self.runs.push(Arc::new(run));
            self.covers_through = log_end;
            changed = true;
        }
        if self.runs.len() > MAX_RUNS && self.merging.is_none() {
            self.start_merge(purged());
        }
        Ok(changed)
    }

    /// Merges every current run into one on a background thread, dropping entries retention
    /// purged (`purged[tenant]` at or above their offset).
    fn start_merge(&mut self, purged: HashMap<u32, u64>) {
        let inputs: Vec<Arc<Run>> = self.runs.clone();
        let id = self.next_run;
        self.next_run += 1;
        let dir = self.dir.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.merging = Some(rx);
        let spawned = std::thread::Builder::new().name("dedup-merge".into()).spawn(move || {
            let replaced = inputs.iter().map(|r| r.id).collect();
            let run = merge_runs(&dir, id, &inputs, &purged);
            let _ = tx.send(Merged { replaced, run });
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a dedup merge; will try again later");
            self.merging = None;
        }
    }

    /// Takes a finished merge in: swaps the runs it replaced for the merged one. Returns
    /// whether the manifest must be rewritten (the caller then deletes `obsolete`).
    fn collect_merge(&mut self) -> Result<bool> {
        let Some(rx) = &self.merging else {
            return Ok(false);
        };
        let merged = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => return Ok(false),
            Err(TryRecvError::Disconnected) => {
                self.merging = None;
                return Ok(false);
            }
        };
        self.merging = None;
        let run = match merged.run {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(error = %e, "a dedup merge failed; the runs stay as they are");
                return Ok(false);
            }
        };
        let first = self
            .runs
            .iter()
            .position(|r| merged.replaced.contains(&r.id))
            .unwrap_or(0);
        self.runs.retain(|r| !merged.replaced.contains(&r.id));
        self.runs.insert(first.min(self.runs.len()), Arc::new(run));
        self.obsolete.extend(merged.replaced);
        Ok(true)
    }

    /// Deletes run files a merge replaced, once the manifest no longer names them.
    pub(crate) fn delete_obsolete(&mut self) {
        for id in self.obsolete.drain(..) {
            let _ = std::fs::remove_file(run_path(&self.dir, id));
        }
    }
}

fn merge_runs(dir: &Path, id: u64, inputs: &[Arc<Run>], purged: &HashMap<u32, u64>) -> Result<Run> {
    let mut cursors = Vec::with_capacity(inputs.len());
    for run in inputs {
        cursors.push(RunCursor::new(run)?);
    }
    let hint: usize = inputs.iter().map(|r| r.entries).sum();
    let mut failed = None;
    let merged = std::iter::from_fn(|| loop {
        // The smallest head among the cursors; equal keys (rare) keep the earliest offset.
        let mut best: Option<(Key, Seen)> = None;
        for c in &cursors {
            if let Some((k, s)) = c.head {
                let better = match best {
                    None => true,
                    Some((bk, bs)) => k < bk || (k == bk && s.offset < bs.offset),
                };
                if better {
                    best = Some((k, s));
                }
            }
        }
        let (k, s) = best?;
        for c in cursors.iter_mut() {
            while c.head.map(|(hk, _)| hk == k).unwrap_or(false) {
                if let Err(e) = c.advance() {
                    failed.get_or_insert(e);
                    return None;
                }
            }
        }
        if s.offset > purged.get(&s.tenant).copied().unwrap_or(0) {
            return Some((k, s));
        }
    });
    let run = write_run(dir, id, merged, hint)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

/// Reads one run in key order, a few blocks at a time.
struct RunCursor<'a> {
    run: &'a Run,
    buf: Vec<u8>,
    at_in_buf: usize,
    next_file_at: u64,
    head: Option<(Key, Seen)>,
}

impl RunCursor<'_> {
    fn new(run: &Run) -> Result<RunCursor<'_>> {
        let mut c = RunCursor {
            run,
            buf: Vec::new(),
            at_in_buf: 0,
            next_file_at: 0,
            head: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<()> {
        if self.at_in_buf + ENTRY > self.buf.len() {
            let total = (self.run.entries * ENTRY) as u64;
            if self.next_file_at >= total {
                self.head = None;
                return Ok(());
            }
            let want = ((ENTRY * BLOCK * 16) as u64).min(total - self.next_file_at) as usize;
            self.buf.resize(want, 0);
            let n = read_full_at(&self.run.file, &mut self.buf, self.next_file_at)
                .map_err(io(format!("reading {}", self.run.path.display())))?;
            self.buf.truncate(n - n % ENTRY);
            if self.buf.is_empty() {
                self.head = None;
                return Ok(());
            }
            self.next_file_at += self.buf.len() as u64;
            self.at_in_buf = 0;
        }
        self.head = Some(decode(&self.buf[self.at_in_buf..self.at_in_buf + ENTRY]));
        self.at_in_buf += ENTRY;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(tenant: u32, offset: u64) -> Seen {
        Seen { tenant, offset }
    }

    #[test]
    fn ids_are_found_in_the_table_in_runs_and_after_merges_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ClientIds::open(dir.path(), &[], 0).unwrap();
        let total = MEMTABLE_MAX as u64 * (MAX_RUNS as u64 + 2);
        for i in 1..=total {
            ids.insert(key(1, format!("evt-{i}").as_bytes()), seen(1, i));
            ids.maybe_flush(i, || HashMap::from([(1, 10)])).unwrap();
        }
        // Wait for the background merge to be taken in (a condition, not a sleep).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while ids.merging.is_some() {
            assert!(std::time::Instant::now() < deadline, "merge never finished");
            std::thread::yield_now();
            ids.maybe_flush(total, HashMap::new).unwrap();
        }
        assert!(ids.runs.len() <= MAX_RUNS, "{} runs", ids.runs.len());
        for i in [11, 12, MEMTABLE_MAX as u64, total / 2, total] {
            assert_eq!(
                ids.lookup(&key(1, format!("evt-{i}").as_bytes())).unwrap(),
                Some(seen(1, i)),
                "{i}"
            );
        }
        // The merge dropped what retention purged (offsets <= 10), the other tenant is unknown.
        assert_eq!(ids.lookup(&key(1, b"evt-3")).unwrap(), None);
        assert_eq!(ids.lookup(&key(2, b"evt-20")).unwrap(), None);
        assert_eq!(ids.lookup(&key(1, b"evt-0")).unwrap(), None);
        let runs = ids.run_ids();
        ids.delete_obsolete();
        let reopened = ClientIds::open(dir.path(), &runs, ids.covers_through).unwrap();
        assert_eq!(reopened.lookup(&key(1, b"evt-5000")).unwrap(), Some(seen(1, 5000)));
    }
}
