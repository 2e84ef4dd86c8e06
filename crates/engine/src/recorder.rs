//! The delivery log's writer: attempts are buffered and flushed to the store together (one
//! transaction every `FLUSH_EVERY`), so recording an attempt never costs a commit of its own.
//! Rows older than the retention window are pruned.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_store::{DeliveryAttempt, Store};
use tokio_util::sync::CancellationToken;

const FLUSH_EVERY: Duration = Duration::from_millis(500);
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Buffered rows beyond this are dropped (counted in the log) rather than growing memory while
/// the store is unavailable; the status counters and metrics still see every attempt.
const MAX_BUFFERED: usize = 100_000;

pub struct Recorder {
    buffer: Mutex<Vec<DeliveryAttempt>>,
    retention: Duration,
}

impl Recorder {
    pub fn new(retention: Duration) -> Arc<Self> {
        Arc::new(Recorder {
            buffer: Mutex::new(Vec::new()),
            retention,
        })
    }

    pub fn record(&self, attempt: DeliveryAttempt) {
        let mut buf = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() < MAX_BUFFERED {
            buf.push(attempt);
        }
    }

    pub async fn flush(&self, store: &dyn Store) {
        let rows = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        if rows.is_empty() {
            return;
        }
        let n = rows.len();
        if let Err(e) = store.record_attempts(rows).await {
            tracing::warn!(error = %e, rows = n, "could not write the delivery log; these rows are lost");
        }
    }

    /// Flushes every `FLUSH_EVERY` and prunes every `PRUNE_EVERY` until `stop`, then flushes once
    /// more.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = flush.tick() => self.flush(store.as_ref()).await,
                _ = prune.tick() => {
                    let cutoff = jiff::Timestamp::now()
                        .checked_sub(jiff::SignedDuration::try_from(self.retention).unwrap_or(jiff::SignedDuration::ZERO))
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                    match store.prune_attempts(&auditrelay_core::time::format_timestamp(cutoff)).await {
                        Ok(n) if n > 0 => tracing::debug!(rows = n, "pruned the delivery log"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not prune the delivery log"),
                    }
                }
            }
        }
        self.flush(store.as_ref()).await;
    }
}
