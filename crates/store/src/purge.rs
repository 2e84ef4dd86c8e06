//! Paced purging: how a retention pass deletes a long prefix without holding up appends.
//!
//! A chunk is one short transaction; after each, the purge rests as long as the chunk took
//! (at least [`MIN_REST`]), so it uses at most about half of the writer's time: on SQLite
//! appends share one writer thread, on PostgreSQL the disk. Measured with
//! `scripts/bench-retention` (docs/retention.md).

use std::time::{Duration, Instant};

use crate::{Result, Store};

/// Events deleted per transaction.
pub const CHUNK: u64 = 1_000;
/// The shortest rest between chunks.
pub const MIN_REST: Duration = Duration::from_millis(5);

/// Purges `tenant` from `purged_through` (the caller has just read it) through `through`
/// (never past its head), chunk by chunk, until done or `stopped()` says to stop. Returns the
/// new `purged_through`.
pub async fn purge_paced(
    store: &dyn Store,
    tenant: &str,
    purged_through: u64,
    through: u64,
    stopped: impl Fn() -> bool,
) -> Result<u64> {
    let mut done = purged_through;
    while done < through && !stopped() {
        let started = Instant::now();
        let next = store.purge_events(tenant, through, CHUNK).await?;
        if next == done {
            break; // the head: nothing more to delete
        }
        done = next;
        tokio::time::sleep(started.elapsed().max(MIN_REST)).await;
    }
    Ok(done)
}
