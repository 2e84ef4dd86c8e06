//! The embedded event log (`auditrelay_store::seglog`) under the SQLite catalog: recovery after
//! a restart, a power cut that tore the tail of the log, a full disk, and retention deleting
//! whole segments. These are the invariants the backend-neutral checks cannot reach, because
//! they need the files.

use std::path::{Path, PathBuf};
use std::process::Command;

use auditrelay_store::seglog::LogOptions;
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::{Catalog, Checkpoints, EventLog, Retention, Store, StoreError};

use crate::{events, query};

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 64 * 1024,
        checkpoint_bytes: 16 * 1024,
    }
}

/// Everything in one segment and no checkpoint but on close: tests that edit the segment file.
fn one_segment() -> LogOptions {
    LogOptions {
        segment_bytes: 1 << 30,
        checkpoint_bytes: 1 << 30,
    }
}

/// Opens the store in `dir`, creates tenant `a` if `create`, appends one group per batch
/// `(first, n)` with client ids, and closes it.
async fn write_groups(dir: &Path, opts: LogOptions, create: bool, batches: &[(u64, u64)]) {
    let store = SqliteStore::open_with(dir, None, opts).unwrap();
    if create {
        store.create_tenant("a", "A").await.unwrap();
    }
    for &(first, n) in batches {
        store.append(events("a", &batch(first, n, true))).await.unwrap();
    }
    store.close().await;
}

fn batch(first: u64, n: u64, with_ids: bool) -> String {
    let items: Vec<String> = (first..first + n)
        .map(|i| {
            let id = if with_ids { format!(r#""id":"evt-{i}","#) } else { String::new() };
            format!(
                r#"{{{id}"type":"doc.updated","actor":{{"id":"usr_{i}","email":"u{i}@example.com"}},"action":"update","target":{{"type":"doc","id":"d{i}"}},"metadata":{{"n":{i},"pad":"{}"}}}}"#,
                "x".repeat(200)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn log_dir(data: &Path) -> PathBuf {
    data.join("log")
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(log_dir(data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map(|e| e == "seg").unwrap_or(false))
        .collect();
    s.sort();
    s
}

async fn offsets(store: &SqliteStore, tenant: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read(query(tenant, after, 500, "")).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.offset;
        out.extend(page.iter().map(|e| e.offset));
    }
    out
}

#[tokio::test]
async fn a_restart_keeps_every_event_the_chain_and_client_id_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let chain_before = {
        let store = SqliteStore::open_with(dir.path(), None, small()).unwrap();
        store.create_tenant("a", "A").await.unwrap();
        store.create_tenant("b", "B").await.unwrap();
        for i in 0..20 {
            store.append(events("a", &batch(i * 10, 10, true))).await.unwrap();
            store.append(events("b", &batch(i * 10, 10, false))).await.unwrap();
        }
        assert!(segments(dir.path()).len() > 1, "small segments roll over");
        let chain = store.chain_head("a").await.unwrap();
        store.close().await;
        chain
    };
    let store = SqliteStore::open_with(dir.path(), None, small()).unwrap();
    assert_eq!(store.head("a").await.unwrap(), 200);
    assert_eq!(store.head("b").await.unwrap(), 200);
    assert_eq!(offsets(&store, "a").await, (1..=200).collect::<Vec<_>>());
    assert_eq!(store.chain_head("a").await.unwrap(), chain_before);
    // A client id from before the restart is still a duplicate, with its original offset.
    let again = store.append(events("a", &batch(15, 1, true))).await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].offset, 16);
    // New events continue the partition without a gap.
    let next = store.append(events("a", &batch(1000, 1, true))).await.unwrap();
    assert_eq!((next[0].offset, next[0].duplicate), (201, false));
    store.close().await;
}

#[tokio::test]
async fn a_torn_tail_loses_only_the_unacknowledged_group_never_part_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let opts = one_segment();
    write_groups(dir.path(), opts, true, &[(0, 30)]).await;
    let manifest = log_dir(dir.path()).join("manifest.json");
    let acked = std::fs::read(&manifest).unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let acked_len = std::fs::metadata(&seg).unwrap().len();
    let chain_after_acked;
    {
        let store = SqliteStore::open_with(dir.path(), None, opts).unwrap();
        chain_after_acked = store.chain_head("a").await.unwrap();
        // The group a power cut interrupts: five events, written but never synced.
        store.append(events("a", &batch(30, 5, true))).await.unwrap();
        store.close().await;
    }
    // The power cut: the group's tail never reached the disk (cut mid-record), and the
    // manifest is the one the disk last synced.
    let full_len = std::fs::metadata(&seg).unwrap().len();
    assert!(full_len > acked_len + 100);
    let cut = acked_len + (full_len - acked_len) * 3 / 5;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    std::fs::write(&manifest, &acked).unwrap();

    let store = SqliteStore::open_with(dir.path(), None, opts).unwrap();
    assert_eq!(store.head("a").await.unwrap(), 30, "the torn group is gone whole");
    assert_eq!(offsets(&store, "a").await, (1..=30).collect::<Vec<_>>());
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        acked_len,
        "the tail was truncated"
    );
    assert_eq!(store.chain_head("a").await.unwrap(), chain_after_acked);
    // The torn group's client ids are not remembered: sending them again stores them.
    let resent = store.append(events("a", &batch(30, 5, true))).await.unwrap();
    assert_eq!(
        resent.iter().map(|o| (o.offset, o.duplicate)).collect::<Vec<_>>(),
        (31..=35).map(|o| (o, false)).collect::<Vec<_>>()
    );
    store.close().await;

    // Garbage after the last group (blocks allocated but never written) is dropped too.
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len + 4096).unwrap();
    drop(f);
    let store = SqliteStore::open_with(dir.path(), None, opts).unwrap();
    assert_eq!(store.head("a").await.unwrap(), 35);
    let next = store.append(events("a", &batch(99, 1, true))).await.unwrap();
    assert_eq!(next[0].offset, 36);
    store.close().await;
}

/// A tmpfs of its own, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs (the test needs root)");
        SmallFs { dir }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_appends_damages_nothing_and_recovers_by_itself() {
    let fs = SmallFs::mount("3m");
    let data = fs.dir.path().join("data");
    let store = SqliteStore::open_with(&data, None, small()).unwrap();
    store.create_tenant("a", "A").await.unwrap();
    store.create_tenant("b", "B").await.unwrap();
    let mut acked = 0u64;
    let mut refused = None;
    for i in 0..10_000u64 {
        match store.append(events("a", &batch(i * 20, 20, true))).await {
            Ok(outcomes) => {
                assert_eq!(outcomes.last().unwrap().offset, acked + 20);
                acked += 20;
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the filesystem filled up");
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused}");
    assert!(acked > 0);
    // Nothing already stored is damaged, and readers keep working while the disk is full.
    assert_eq!(store.head("a").await.unwrap(), acked);
    assert_eq!(offsets(&store, "a").await, (1..=acked).collect::<Vec<_>>());
    // Still full: still refused, still nothing half-written.
    assert!(store.append(events("a", &batch(900_000, 20, true))).await.is_err());
    assert_eq!(store.head("a").await.unwrap(), acked);

    // Space returns: the very next append succeeds. Another tenant's events now sit where the
    // refused groups would have gone; after a checkpoint and a restart, `a` must still end at
    // its last acknowledged event, never at records of `b`.
    fs.resize("32m");
    for i in 0..3 {
        let b = store.append(events("b", &batch(i * 20, 20, true))).await.unwrap();
        assert_eq!(b[0].offset, i * 20 + 1);
    }
    store.close().await;
    let store = SqliteStore::open_with(&data, None, small()).unwrap();
    assert_eq!(store.head("a").await.unwrap(), acked);
    assert_eq!(offsets(&store, "a").await, (1..=acked).collect::<Vec<_>>());
    assert_eq!(offsets(&store, "b").await, (1..=60).collect::<Vec<_>>());
    let next = store.append(events("a", &batch(500_000, 20, true))).await.unwrap();
    assert_eq!(next[0].offset, acked + 1, "no gap after the refused groups");
    store.close().await;
}

#[tokio::test]
async fn a_purge_deletes_whole_segments_and_keeps_the_chain_going() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), None, small()).unwrap();
    store.create_tenant("a", "A").await.unwrap();
    for i in 0..40 {
        store.append(events("a", &batch(i * 25, 25, true))).await.unwrap();
    }
    let before = segments(dir.path()).len();
    let mut purged = 0;
    while purged < 900 {
        purged = store.purge_events("a", 900, 100).await.unwrap();
    }
    let after = segments(dir.path()).len();
    assert!(after < before, "{before} segments before the purge, {after} after");
    assert_eq!(offsets(&store, "a").await, (901..=1000).collect::<Vec<_>>());
    // Purge everything: the head's record stays, so the chain continues after a restart.
    while purged < 1000 {
        purged = store.purge_events("a", 1000, 1000).await.unwrap();
    }
    let chain = store.chain_head("a").await.unwrap();
    store.close().await;
    let store = SqliteStore::open_with(dir.path(), None, small()).unwrap();
    assert_eq!(store.purged_through("a").await.unwrap(), 1000);
    assert_eq!(store.chain_head("a").await.unwrap(), chain);
    assert!(offsets(&store, "a").await.is_empty());
    // A purged client id is forgotten, like the event: it is stored anew.
    let again = store.append(events("a", &batch(3, 1, true))).await.unwrap();
    assert_eq!((again[0].offset, again[0].duplicate), (1001, false));
    store.close().await;
}

#[tokio::test]
async fn damage_before_acknowledged_groups_refuses_to_open_instead_of_truncating() {
    let dir = tempfile::tempdir().unwrap();
    let opts = one_segment();
    write_groups(dir.path(), opts, true, &[(0, 10), (10, 10)]).await;
    // Recovery must read the whole log (no manifest), and a byte of the FIRST group flips.
    std::fs::remove_file(log_dir(dir.path()).join("manifest.json")).unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len();
    bytes[100] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    let refused = SqliteStore::open_with(dir.path(), None, opts)
        .err()
        .expect("the damaged log is refused");
    assert!(matches!(refused, StoreError::Corrupt(_)), "{refused}");
    assert!(refused.to_string().contains("acknowledged events follow"), "{refused}");
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len() as usize,
        len,
        "nothing was truncated"
    );
    // Repaired, it opens with every event.
    bytes[100] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    let store = SqliteStore::open_with(dir.path(), None, opts).unwrap();
    assert_eq!(offsets(&store, "a").await, (1..=20).collect::<Vec<_>>());
    store.close().await;
}
