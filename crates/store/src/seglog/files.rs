//! The files of the segmented log: segments (the groups, in commit order, across all tenants),
//! one dense offset index per tenant, and small helpers for durable metadata files.
//!
//! Positions are global byte positions: a segment is named after the position of its first
//! byte, so a position names one byte of one segment forever, and deleting old segments never
//! renumbers anything.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::{Result, StoreError};

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// One segment file.
pub(crate) struct Segment {
    pub base: u64,
    pub file: File,
    pub path: PathBuf,
}

/// Every segment, oldest first. Readers take an `Arc` of the segment they read, so a segment
/// deleted by retention meanwhile stays readable to them until they drop it.
pub(crate) struct Segments {
    dir: PathBuf,
    list: RwLock<Vec<Arc<Segment>>>,
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// Reads exactly `buf.len()` bytes at `at`, or fewer only at the end of the file; returns how
/// many were read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Opens a log file for reading and writing (creating it, never truncating it, if `create`).
fn open_rw(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// Makes a directory entry change (a created, renamed or deleted file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing directory {}", dir.display())))
}

/// Replaces a small file atomically and durably: write a temporary, fsync, rename, fsync dir.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    f.write_all(bytes).map_err(io(format!("writing {}", tmp.display())))?;
    f.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming {} into place", tmp.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

impl Segments {
    /// Opens every segment in `dir` (creating the first when there is none).
    pub(crate) fn open(dir: &Path) -> Result<Segments> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let segments = Segments {
            dir: dir.to_owned(),
            list: RwLock::new(Vec::new()),
        };
        if bases.is_empty() {
            segments.create(0)?;
        }
        for base in bases {
            let path = dir.join(segment_name(base));
            let file = open_rw(&path, false)?;
            segments.list_mut().push(Arc::new(Segment { base, file, path }));
        }
        Ok(segments)
    }

    fn list_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Segment>>> {
        self.list.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn all(&self) -> Vec<Arc<Segment>> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn active(&self) -> Arc<Segment> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        list.last().cloned().expect("the log always has a segment")
    }

    /// The segment holding `pos`, if it still exists.
    pub(crate) fn holding(&self, pos: u64) -> Option<Arc<Segment>> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        let i = list.partition_point(|s| s.base <= pos);
        (i > 0).then(|| list[i - 1].clone())
    }

    /// The base of the segment after the one at `base`, if there is one.
    pub(crate) fn next_base(&self, base: u64) -> Option<u64> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        let i = list.partition_point(|s| s.base <= base);
        list.get(i).map(|s| s.base)
    }

    /// Starts a new segment at `base` (the end of the log) and makes its name durable.
    pub(crate) fn create(&self, base: u64) -> Result<Arc<Segment>> {
        let path = self.dir.join(segment_name(base));
        let file = open_rw(&path, true)?;
        sync_dir(&self.dir)?;
        let seg = Arc::new(Segment { base, file, path });
        self.list_mut().push(seg.clone());
        Ok(seg)
    }

    /// Deletes a segment retention no longer needs (never the active one).
    pub(crate) fn remove(&self, base: u64) -> Result<()> {
        let removed = {
            let mut list = self.list_mut();
            if list.last().map(|s| s.base) == Some(base) {
                return Ok(());
            }
            let Some(i) = list.iter().position(|s| s.base == base) else {
                return Ok(());
            };
            list.remove(i)
        };
        std::fs::remove_file(&removed.path).map_err(io(format!("deleting {}", removed.path.display())))?;
        sync_dir(&self.dir)
    }

    /// Drops the newest segments that start after `end` (left by a crash during a roll).
    pub(crate) fn drop_after(&self, end: u64) -> Result<()> {
        loop {
            let last = {
                let list = self.list.read().unwrap_or_else(|p| p.into_inner());
                if list.len() <= 1 || list.last().map(|s| s.base <= end).unwrap_or(true) {
                    return Ok(());
                }
                list.last().cloned()
            };
            if let Some(seg) = last {
                self.list_mut().pop();
                std::fs::remove_file(&seg.path).map_err(io(format!("deleting {}", seg.path.display())))?;
                sync_dir(&self.dir)?;
            }
        }
    }

    /// Reads `len` bytes at global position `pos` (fewer at the end of a segment).
    pub(crate) fn read(&self, pos: u64, len: usize) -> Result<Option<Vec<u8>>> {
        let Some(seg) = self.holding(pos) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; len];
        let n =
            read_full_at(&seg.file, &mut buf, pos - seg.base).map_err(io(format!("reading {}", seg.path.display())))?;
        buf.truncate(n);
        Ok(Some(buf))
    }
}

/// A tenant's dense offset index: entry `o - 1` holds `position + 1` of the record with offset
/// `o` (0 marks a hole a crash left). Written before the group's fsync and never fsynced on its
/// own path: recovery rebuilds every entry after the last index checkpoint from the log.
pub(crate) struct OffsetIndex {
    pub file: File,
    pub path: PathBuf,
}

pub(crate) const INDEX_ENTRY: u64 = 8;

impl OffsetIndex {
    pub(crate) fn open(path: PathBuf) -> Result<OffsetIndex> {
        let file = open_rw(&path, true)?;
        Ok(OffsetIndex { file, path })
    }

    /// Writes the positions of offsets `first`, `first + 1`, …
    pub(crate) fn write(&self, first: u64, positions: &[u64]) -> Result<()> {
        let mut buf = Vec::with_capacity(positions.len() * 8);
        for p in positions {
            buf.extend_from_slice(&(p + 1).to_le_bytes());
        }
        self.file
            .write_all_at(&buf, (first - 1) * INDEX_ENTRY)
            .map_err(io(format!("writing {}", self.path.display())))
    }

    /// The positions of offsets `first .. first + count` (0-based gaps become `None`).
    pub(crate) fn read(&self, first: u64, count: u64) -> Result<Vec<Option<u64>>> {
        let mut buf = vec![0u8; (count * INDEX_ENTRY) as usize];
        let n = read_full_at(&self.file, &mut buf, (first - 1) * INDEX_ENTRY)
            .map_err(io(format!("reading {}", self.path.display())))?;
        buf.truncate(n - n % 8);
        Ok(buf
            .chunks_exact(8)
            .map(|c| {
                let mut x = [0u8; 8];
                x.copy_from_slice(c);
                u64::from_le_bytes(x).checked_sub(1)
            })
            .collect())
    }

    pub(crate) fn entries(&self) -> Result<u64> {
        let len = self
            .file
            .metadata()
            .map_err(io(format!("reading the size of {}", self.path.display())))?
            .len();
        Ok(len / INDEX_ENTRY)
    }

    pub(crate) fn truncate(&self, entries: u64) -> Result<()> {
        self.file
            .set_len(entries * INDEX_ENTRY)
            .map_err(io(format!("truncating {}", self.path.display())))
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(io(format!("syncing {}", self.path.display())))
    }
}
