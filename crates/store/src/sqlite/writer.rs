//! The single SQLite writer thread: catalog writes (tenants, keys, sinks, cursors, dead
//! letters, the delivery log) run here in order, on one long-lived connection. Events do not
//! come here: the event log is `crate::seglog`, with its own writer and group commit.

use std::sync::mpsc::Receiver;

use rusqlite::Connection;

/// A catalog write, run in order on the writer's connection.
pub(crate) type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) struct Writer {
    conn: Connection,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Self {
        Writer { conn }
    }

    /// Runs until every sender is gone, finishing the jobs already queued.
    pub(crate) fn run(mut self, jobs: Receiver<WriteFn>) {
        while let Ok(f) = jobs.recv() {
            f(&mut self.conn);
        }
        tracing::debug!("catalog writer stopped");
    }
}
