//! In-process wake-ups: one `watch` channel per tenant carrying its head offset. Appenders
//! publish after commit; long-polls, SSE streams and sink workers wait on it instead of polling
//! the database. (Across nodes, PostgreSQL LISTEN/NOTIFY will feed the same notifier.)

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

    /// Publishes a new head; wakes every receiver of that tenant.
    pub fn publish(&self, tenant: &str, head: u64) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let sender = heads.entry(tenant.to_owned()).or_insert_with(|| watch::channel(0).0);
        // send_replace updates the value even when nobody listens yet.
        sender.send_replace(head);
    }
}
