//! In-process wake-ups: one `watch` channel per tenant carrying its head offset. Appenders
//! publish after commit; long-polls, SSE streams and sink workers wait on it instead of polling
//! the database. Across nodes, PostgreSQL LISTEN/NOTIFY feeds the same notifier
//! (`postgres/listen.rs`), so a head may be published twice or out of order: it only moves forward.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Default)]
pub struct Notifier {
    heads: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Notifier {
    pub fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads
            .entry(tenant.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Publishes a new head; wakes every receiver of that tenant. A head at or below the one
    /// already published (the same commit seen by this node's writer and by its listener) is
    /// ignored, so receivers never see the head go back.
    pub fn publish(&self, tenant: &str, head: u64) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let sender = heads.entry(tenant.to_owned()).or_insert_with(|| watch::channel(0).0);
        // send_if_modified updates the value even when nobody listens yet.
        sender.send_if_modified(|current| {
            if head > *current {
                *current = head;
                true
            } else {
                false
            }
        });
    }

    /// Every tenant someone subscribed to or that was published (to catch up after missed
    /// cross-node notifications).
    pub fn tenants(&self) -> Vec<String> {
        let heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads.keys().cloned().collect()
    }
}
