//! Copies the WAL back into the database file off the writer's path.
//!
//! A PASSIVE checkpoint never blocks the writer or readers; it copies what it can. Running it
//! here every 200 ms keeps the WAL small without a checkpoint ever landing inside a group commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::{Result, StoreError};

const INTERVAL: Duration = Duration::from_millis(200);

pub(crate) fn spawn(path: PathBuf, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let conn = Connection::open(&path).map_err(StoreError::sqlite("opening the checkpoint connection"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(StoreError::sqlite("setting busy timeout"))?;
    std::thread::Builder::new()
        .name("wal-checkpointer".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(INTERVAL);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
            // A last full pass so a clean shutdown leaves a small WAL.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|source| StoreError::Io {
            context: "starting the WAL checkpointer thread".into(),
            source,
        })
}
