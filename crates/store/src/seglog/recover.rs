//! Opening the log: read the manifest and the tenants, trim each index to what the last index
//! checkpoint made durable, then read the log from the older of the two checkpoints to its end,
//! re-indexing records and re-adding client ids, and truncate at the first group that is
//! incomplete or damaged (a write a crash or power cut interrupted, never acknowledged).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use super::dedup::{self, ClientIds, Seen};
use super::files::{io, read_full_at, sync_dir, OffsetIndex, Segments};
use super::frame::{self, GROUP_HEADER};
use super::{read_manifest, Manifest, Shared, TenantLog};
use crate::{chain, Result, StoreError};

pub(crate) struct Recovered {
    pub shared: Arc<Shared>,
    pub manifest: Manifest,
    /// The end of the last whole group: where the next one goes.
    pub end: u64,
    pub ids: ClientIds,
    /// Tenants by number.
    pub by_no: Vec<Arc<TenantLog>>,
}

pub(crate) fn tenants_path(dir: &Path) -> PathBuf {
    dir.join("tenants")
}

pub(crate) fn index_path(dir: &Path, no: u32) -> PathBuf {
    dir.join("index").join(format!("{no}.idx"))
}

/// Appends a tenant to the `tenants` file durably.
pub(crate) fn add_tenant_line(dir: &Path, no: u32, name: &str) -> Result<()> {
    let path = tenants_path(dir);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    f.write_all(format!("{no} {name}\n").as_bytes())
        .map_err(io(format!("writing {}", path.display())))?;
    f.sync_all().map_err(io(format!("syncing {}", path.display())))?;
    sync_dir(dir)
}

fn read_tenants(dir: &Path) -> Result<Vec<String>> {
    let path = tenants_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    let mut names = Vec::new();
    // Only whole lines count: a line torn by a crash was never acknowledged.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let (no, name) = line
            .trim_end()
            .split_once(' ')
            .ok_or_else(|| StoreError::Corrupt(format!("{}: bad line `{line}`", path.display())))?;
        if no.parse::<usize>().ok() != Some(names.len()) {
            return Err(StoreError::Corrupt(format!(
                "{}: tenant numbers are not consecutive at `{line}`",
                path.display()
            )));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// The number of leading index entries that point below `synced` (and so are durable).
fn trusted_entries(index: &OffsetIndex, synced: u64) -> Result<u64> {
    let mut n = index.entries()?;
    const CHUNK: u64 = 4096;
    while n > 0 {
        let from = n.saturating_sub(CHUNK) + 1;
        let entries = index.read(from, n - from + 1)?;
        match entries.iter().rposition(|e| matches!(e, Some(p) if *p < synced)) {
            Some(i) => return Ok(from + i as u64),
            None => n = from - 1,
        }
    }
    Ok(0)
}

pub(crate) fn open(dir: &Path) -> Result<Recovered> {
    std::fs::create_dir_all(dir.join("index")).map_err(io(format!("creating {}", dir.display())))?;
    let manifest = read_manifest(dir)?;
    let segments = Segments::open(dir)?;
    let names = read_tenants(dir)?;
    let mut by_no = Vec::with_capacity(names.len());
    for (no, name) in names.into_iter().enumerate() {
        let no = no as u32;
        let index = OffsetIndex::open(index_path(dir, no))?;
        let purged = manifest.purged.get(&no).copied().unwrap_or(0);
        // A partition imported after a purged prefix has no entries below it (holes).
        let head = trusted_entries(&index, manifest.index_synced_through)?.max(purged);
        index.truncate(head)?;
        by_no.push(TenantLog {
            no,
            name,
            index,
            head: AtomicU64::new(head),
            purged: AtomicU64::new(manifest.purged.get(&no).copied().unwrap_or(0)),
            chain: Mutex::new(chain::GENESIS),
        });
    }
    let mut ids = ClientIds::open(&dir.join("dedup"), &manifest.dedup_runs, manifest.dedup_covers_through)?;

    // Read the log from the older checkpoint on.
    let all = segments.all();
    let first_base = all.first().map(|s| s.base).unwrap_or(0);
    let from = manifest
        .index_synced_through
        .min(manifest.dedup_covers_through)
        .max(first_base);
    let mut end = from;
    let mut pending: HashMap<u32, (u64, Vec<u64>)> = HashMap::new();
    'segments: for seg in &all {
        let len = seg_len(seg)?;
        if seg.base + len <= from && seg.base < from {
            continue; // wholly before the checkpoint
        }
        if seg.base > end {
            // A segment that starts past the last whole group: the rest of the log is a tail a
            // crash left (`drop_after` below removes it).
            break;
        }
        let mut at = from.saturating_sub(seg.base);
        while at < len {
            let mut header = [0u8; GROUP_HEADER];
            let got =
                read_full_at(&seg.file, &mut header, at).map_err(io(format!("reading {}", seg.path.display())))?;
            let Some(h) = (got == GROUP_HEADER)
                .then(|| frame::decode_group_header(&header))
                .flatten()
            else {
                torn_tail_or_damage(&all, seg, at, len)?;
                truncate_tail(seg, at, len)?;
                end = seg.base + at;
                break 'segments;
            };
            let mut payload = vec![0u8; h.payload_len];
            let got = read_full_at(&seg.file, &mut payload, at + GROUP_HEADER as u64)
                .map_err(io(format!("reading {}", seg.path.display())))?;
            let whole = got == h.payload_len && crc32fast::hash(&payload) == h.crc;
            let Some(records) = whole.then(|| frame::records(&payload, h.count)).flatten() else {
                torn_tail_or_damage(&all, seg, at, len)?;
                truncate_tail(seg, at, len)?;
                end = seg.base + at;
                break 'segments;
            };
            let group_pos = seg.base + at + GROUP_HEADER as u64;
            for (rel, r) in records {
                let pos = group_pos + rel as u64;
                let tenant = by_no.get(r.tenant as usize).ok_or_else(|| {
                    StoreError::Corrupt(format!("a record at {pos} names unknown tenant number {}", r.tenant))
                })?;
                let head = tenant.head() + pending.get(&r.tenant).map(|p| p.1.len() as u64).unwrap_or(0);
                if r.offset == head + 1 {
                    pending
                        .entry(r.tenant)
                        .or_insert_with(|| (head + 1, Vec::new()))
                        .1
                        .push(pos);
                } else if r.offset > head + 1 {
                    return Err(StoreError::Corrupt(format!(
                        "tenant `{}` jumps from offset {head} to {} at log position {pos}",
                        tenant.name, r.offset
                    )));
                }
                if r.flags & frame::FLAG_CLIENT_ID != 0 && pos >= manifest.dedup_covers_through {
                    ids.insert(
                        dedup::key(r.tenant, r.id),
                        Seen {
                            tenant: r.tenant,
                            offset: r.offset,
                        },
                    );
                }
            }
            at += (GROUP_HEADER + h.payload_len) as u64;
            end = seg.base + at;
            if pending.values().map(|p| p.1.len()).sum::<usize>() > 1 << 16 {
                flush_pending(&by_no, &mut pending)?;
            }
        }
    }
    flush_pending(&by_no, &mut pending)?;
    segments.drop_after(end)?;

    // Each tenant's chain continues from its last record.
    for t in &by_no {
        let head = t.head();
        if head == 0 {
            continue;
        }
        if let Some((offset, hex_chain)) = manifest.imported_chains.get(&t.no) {
            if *offset == head {
                let bytes = hex::decode(hex_chain).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
                let chain =
                    bytes.ok_or_else(|| StoreError::Corrupt(format!("a bad imported chain for `{}`", t.name)))?;
                *t.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
                continue;
            }
        }
        let pos = t.index.read(head, 1)?.first().copied().flatten().ok_or_else(|| {
            StoreError::Corrupt(format!("tenant `{}` has no index entry for its head {head}", t.name))
        })?;
        let mut chain = None;
        super::read::for_each_record(&segments, &[pos], |pos, r| {
            super::read::check_identity(t, head, pos, &r)?;
            chain = Some(r.chain);
            Ok(())
        })?;
        if let Some(chain) = chain {
            *t.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        }
    }

    let by_no: Vec<Arc<TenantLog>> = by_no.into_iter().map(Arc::new).collect();
    let tenants = by_no.iter().map(|t| (t.name.clone(), t.clone())).collect();
    Ok(Recovered {
        shared: Arc::new(Shared {
            segments,
            tenants: RwLock::new(tenants),
        }),
        manifest,
        end,
        ids,
        by_no,
    })
}

fn seg_len(seg: &super::files::Segment) -> Result<u64> {
    Ok(seg
        .file
        .metadata()
        .map_err(io(format!("reading the size of {}", seg.path.display())))?
        .len())
}

/// A group that does not check out is a torn write only if it is the last thing in the log:
/// every group is synced before the next is written, so a crash can interrupt only the last
/// one. A bad group with a whole group after it (or a later segment with data) is damage to
/// acknowledged events — a failing disk or tampering — and the log refuses to open rather than
/// truncate it away (invariant *never drop acknowledged events silently*, tested in
/// `conformance/seglog.rs`).
fn torn_tail_or_damage(
    all: &[Arc<super::files::Segment>],
    seg: &super::files::Segment,
    at: u64,
    len: u64,
) -> Result<()> {
    let later_data = all
        .iter()
        .filter(|s| s.base > seg.base)
        .map(|s| seg_len(s))
        .collect::<Result<Vec<u64>>>()?
        .into_iter()
        .any(|l| l > 0);
    let mut rest = vec![0u8; (len - at) as usize];
    let got = read_full_at(&seg.file, &mut rest, at).map_err(io(format!("reading {}", seg.path.display())))?;
    rest.truncate(got);
    let magic = frame::GROUP_MAGIC.to_le_bytes();
    let whole_group_after = memchr::memmem::find_iter(&rest, &magic)
        .skip_while(|&i| i == 0)
        .any(|i| {
            frame::decode_group_header(&rest[i..]).is_some_and(|h| {
                let start = i + GROUP_HEADER;
                rest.get(start..start + h.payload_len)
                    .is_some_and(|p| crc32fast::hash(p) == h.crc && frame::records(p, h.count).is_some())
            })
        });
    if later_data || whole_group_after {
        return Err(StoreError::Corrupt(format!(
            "{}: the group at byte {at} is damaged but acknowledged events follow it; refusing to \
             open the log rather than drop them (restore the data dir from a backup, or move \
             this segment aside to keep only what precedes it)",
            seg.path.display()
        )));
    }
    Ok(())
}

/// Drops an incomplete or damaged tail: it was never acknowledged.
fn truncate_tail(seg: &super::files::Segment, at: u64, len: u64) -> Result<()> {
    if at < len {
        tracing::warn!(
            segment = %seg.path.display(),
            at,
            dropped = len - at,
            "dropping an incomplete group at the end of the log (a write a crash interrupted)"
        );
        seg.file
            .set_len(at)
            .map_err(io(format!("truncating {}", seg.path.display())))?;
        seg.file
            .sync_all()
            .map_err(io(format!("syncing {}", seg.path.display())))?;
    }
    Ok(())
}

fn flush_pending(by_no: &[TenantLog], pending: &mut HashMap<u32, (u64, Vec<u64>)>) -> Result<()> {
    for (no, (first, positions)) in pending.drain() {
        let t = &by_no[no as usize];
        t.index.write(first, &positions)?;
        t.head
            .store(first + positions.len() as u64 - 1, std::sync::atomic::Ordering::Release);
    }
    Ok(())
}
