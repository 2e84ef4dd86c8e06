//! The single SQLite writer thread: catalog writes (tenants, keys, sinks, cursors, dead
//! letters, the delivery log) run here in order, on one long-lived connection. Events do not
//! come here: the event log is `crate::seglog`, with its own writer and group commit.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use rusqlite::Connection;

pub(crate) type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) enum Job {
    /// A catalog write, run in order on the writer's connection.
    Write(WriteFn),
}

/// Observes each group commit of the event log (for metrics): requests and events in the
/// group, and the new head of every tenant it touched (published in commit order, so a gauge
/// never goes back).
pub type GroupObserver = Arc<dyn Fn(usize, usize, &HashMap<String, u64>) + Send + Sync>;

pub(crate) struct Writer {
    conn: Connection,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Self {
        Writer { conn }
    }

    /// Runs until every sender is gone, finishing the jobs already queued.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        while let Ok(Job::Write(f)) = jobs.recv() {
            f(&mut self.conn);
        }
        tracing::debug!("catalog writer stopped");
    }
}
