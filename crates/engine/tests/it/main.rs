//! The delivery engine driven through its public API (`Engine`) against the real embedded store
//! in a temporary directory, with scripted in-memory sinks injected through
//! `EngineConfig::sink_factory`: no server binary, no sockets.
//!
//! * [`harness`]: the store, sinks stored as the server stores them, engines, waiting helpers;
//! * [`scripted`]: the scripted sink (answers per call, gates to hold attempts, recorded calls);
//! * [`journal`]: a store wrapper that journals commits and dead letters next to the sinks'
//!   answers, so invariant *a cursor never passes an event its receiver did not accept* is
//!   checked for every commit; it also provides exclusive leases for the hand-off test.
//!
//! Time is real: the engine measures batches and the breaker with `std::time::Instant` and the
//! store answers from its own threads, so tokio's paused clock cannot drive it. The specs use
//! millisecond backoffs and cooldowns instead, and tests wait for conditions with a deadline.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;
mod journal;
mod scripted;

mod batching;
mod handoff;
mod jobs;
mod ordering;
mod retries;
mod verdicts;

/// The offsets of each call, for comparing batches at a glance.
pub fn offsets(calls: &[scripted::Call]) -> Vec<Vec<u64>> {
    calls.iter().map(|c| c.offsets.clone()).collect()
}
