//! Bytes on disk per event: the server's data dir after the ingest scenarios, against the
//! events it holds and against the size of an event as the server stores and serves it
//! (canonical JSON, read back with `GET /v1/events`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::http::{Auth, Conn, Target};
use crate::load::{round1, round3};

/// Sizes of the regular files under a directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirUsage {
    /// Sum of file lengths.
    pub apparent: u64,
    /// Sum of allocated blocks (`st_blocks * 512`).
    pub allocated: u64,
    pub files: u64,
}

pub fn dir_usage(dir: &Path) -> DirUsage {
    let mut u = DirUsage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                u.apparent += meta.len();
                u.allocated += meta.blocks() * 512;
                u.files += 1;
            }
        }
    }
    u
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// `GET /v1/events?after=0&limit=100` with the tenant key: (events read, their mean JSON
/// length in bytes).
pub async fn canonical_sample(target: &Arc<Target>, key: &Auth) -> Result<(usize, f64)> {
    let mut conn = Conn::connect(target.clone()).await?;
    let resp = conn.get("/v1/events?after=0&limit=100", Some(key)).await?;
    if resp.status != StatusCode::OK {
        bail!("GET /v1/events answered {}: {}", resp.status, resp.body_snippet());
    }
    let page: Page<'_> = serde_json::from_slice(&resp.body)?;
    let n = page.events.len();
    if n == 0 {
        bail!("GET /v1/events?after=0 returned no events");
    }
    let total: usize = page.events.iter().map(|e| e.get().len()).sum();
    Ok((n, total as f64 / n as f64))
}

/// The data dir against the events stored.
#[derive(Debug, Clone)]
pub struct DiskReport {
    pub usage: DirUsage,
    /// Events acknowledged by the ingest scenarios (warm-ups included).
    pub events: u64,
    /// Mean size of an event as sent.
    pub sent_bytes: usize,
    /// Events read back and their mean canonical JSON length; `None` if the read failed.
    pub canonical: Option<(usize, f64)>,
    pub canonical_error: Option<String>,
}

impl DiskReport {
    pub fn apparent_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.usage.apparent as f64 / self.events as f64)
    }

    pub fn allocated_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.usage.allocated as f64 / self.events as f64)
    }

    /// Bytes on disk (apparent) per event over the canonical event size.
    pub fn ratio_to_canonical(&self) -> Option<f64> {
        let (_, c) = self.canonical?;
        self.apparent_per_event().filter(|_| c > 0.0).map(|b| b / c)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "data_dir_bytes": self.usage.apparent,
            "data_dir_allocated_bytes": self.usage.allocated,
            "data_dir_files": self.usage.files,
            "events_stored": self.events,
            "bytes_on_disk_per_event": self.apparent_per_event().map(round1),
            "allocated_bytes_per_event": self.allocated_per_event().map(round1),
            "sent_event_bytes": self.sent_bytes,
            "canonical_event_bytes": self.canonical.map(|c| round1(c.1)),
            "canonical_events_sampled": self.canonical.map(|c| c.0),
            "canonical_error": self.canonical_error,
            "disk_to_canonical_ratio": self.ratio_to_canonical().map(round3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_apparent_and_allocated_sizes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), [1u8; 10])?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub/b"), [1u8; 5000])?;
        let u = dir_usage(dir.path());
        assert_eq!((u.apparent, u.files), (5010, 2));
        assert!(u.allocated >= 5000 || u.allocated == 0);
        assert_eq!(dir_usage(&dir.path().join("missing")), DirUsage::default());
        let r = DiskReport {
            usage: DirUsage {
                apparent: 1000,
                allocated: 4096,
                files: 1,
            },
            events: 2,
            sent_bytes: 500,
            canonical: Some((2, 250.0)),
            canonical_error: None,
        };
        assert_eq!(r.apparent_per_event(), Some(500.0));
        assert_eq!(r.ratio_to_canonical(), Some(2.0));
        Ok(())
    }
}
