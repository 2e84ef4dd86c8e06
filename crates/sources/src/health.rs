//! A running source's counters, kept in the process that runs it (they restart from zero with
//! the process; the events themselves are in the log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// What `GET /v1/sources/{id}/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceHealth {
    /// `starting`, `running`, `failed` (retrying; see `last_error`), `paused`, `standby`
    /// (another node holds its lease) or `stopped`.
    pub state: String,
    /// Messages read from the outside (frames, rows).
    pub received: u64,
    /// Events appended (durable), malformed ones included; duplicates are not counted.
    pub appended: u64,
    /// Messages that could not become events and were appended as `<kind>.malformed`.
    pub malformed: u64,
    pub last_error: Option<String>,
    /// How far behind the outside the source is, where the kind can know it (outbox rows
    /// waiting); `None` for listeners.
    pub lag: Option<u64>,
}

/// Live counters of one source, shared by its tasks.
#[derive(Debug)]
pub struct SourceStatus {
    state: Mutex<&'static str>,
    received: AtomicU64,
    appended: AtomicU64,
    malformed: AtomicU64,
    last_error: Mutex<Option<String>>,
    lag: Mutex<Option<u64>>,
}

impl Default for SourceStatus {
    fn default() -> Self {
        SourceStatus {
            state: Mutex::new("starting"),
            received: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            last_error: Mutex::new(None),
            lag: Mutex::new(None),
        }
    }
}

impl SourceStatus {
    pub fn set_state(&self, state: &'static str) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn state(&self) -> &'static str {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_error(&self, error: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.into());
    }

    pub fn set_lag(&self, lag: Option<u64>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }

    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_appended(&self, n: u64) {
        self.appended.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_malformed(&self, n: u64) {
        self.malformed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SourceHealth {
        SourceHealth {
            state: self.state().to_owned(),
            received: self.received.load(Ordering::Relaxed),
            appended: self.appended.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            lag: *self.lag.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}
