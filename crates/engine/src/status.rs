//! The live status of one sink, shared by its lanes, its jobs and the health route. It is
//! rebuilt from nothing at start: counters are "since this process started"; the delivery log
//! in the store keeps the durable history.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Notify;

use crate::breaker::{Breaker, BreakerState, Permit};
use crate::spec::BreakerPolicy;

/// Successful-attempt latencies kept for the percentiles on `/health`.
const LATENCY_WINDOW: usize = 1024;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = SinkLastError)]
pub struct LastError {
    pub at: String,
    pub tenant: String,
    pub status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counters {
    pub delivered_events: u64,
    pub delivered_batches: u64,
    pub failed_attempts: u64,
    pub retried_attempts: u64,
    pub dead_lettered_batches: u64,
    pub dead_lettered_events: u64,
    /// Events the filter said no to (the cursor passed them).
    pub filtered_events: u64,
    /// Events the filter could not be evaluated on (counted as no).
    pub filter_errors: u64,
}

/// What `/health` says a sink is doing (`state`), in the order it is decided: a paused sink is
/// `paused` whatever its breaker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkState {
    Active,
    BackingOff,
    CircuitOpen,
    Paused,
}

impl SinkState {
    pub fn of(paused: bool, status: &StatusSnapshot) -> SinkState {
        if paused {
            SinkState::Paused
        } else if status.circuit_open {
            SinkState::CircuitOpen
        } else if status.backing_off {
            SinkState::BackingOff
        } else {
            SinkState::Active
        }
    }
}

pub struct SinkStatus {
    inner: Mutex<Inner>,
    /// Fired whenever the breaker may have changed (a verdict, a new policy), so callers waiting
    /// for a permit wake on the change instead of polling the breaker.
    breaker_changed: Notify,
}

struct Inner {
    breaker: Breaker,
    backing_off: usize,
    last_error: Option<LastError>,
    last_success_at: Option<String>,
    /// Batches in a row that exhausted their attempts (reset by any delivery).
    consecutive_exhausted: u32,
    counters: Counters,
    /// Grows as attempts succeed, up to `LATENCY_WINDOW`: an idle sink carries no window.
    latencies_ms: VecDeque<f64>,
    /// Events still to deliver per tenant, kept by the lanes as cursors and heads move; their
    /// sum is the sink's lag gauge.
    lags: HashMap<String, u64>,
    lag_total: u64,
}

/// A snapshot for `/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSnapshot {
    pub circuit_open: bool,
    pub backing_off: bool,
    pub consecutive_failures: u32,
    pub consecutive_exhausted: u32,
    pub last_error: Option<LastError>,
    pub last_success_at: Option<String>,
    pub counters: Counters,
    /// p50, p90, p99 of recent successful attempts, in ms.
    pub latency_ms: Option<(f64, f64, f64)>,
}

impl SinkStatus {
    pub fn new(policy: BreakerPolicy) -> Self {
        SinkStatus {
            inner: Mutex::new(Inner {
                breaker: Breaker::new(policy),
                backing_off: 0,
                last_error: None,
                last_success_at: None,
                consecutive_exhausted: 0,
                counters: Counters::default(),
                latencies_ms: VecDeque::new(),
                lags: HashMap::new(),
                lag_total: 0,
            }),
            breaker_changed: Notify::new(),
        }
    }

    /// Waiters for a permit subscribe here (before asking) and are woken on any verdict.
    pub fn breaker_changed(&self) -> &Notify {
        &self.breaker_changed
    }

    /// Sets what `tenant` still owes and returns the sink's total (the lag gauge's value).
    pub fn set_lag(&self, tenant: &str, lag: u64) -> u64 {
        let mut s = self.lock();
        let old = match s.lags.get_mut(tenant) {
            Some(v) => std::mem::replace(v, lag),
            None => {
                s.lags.insert(tenant.to_owned(), lag);
                0
            }
        };
        s.lag_total = s.lag_total - old + lag;
        s.lag_total
    }

    /// Forgets every tenant's lag (the sink was reconfigured: its tenants may have changed).
    pub fn clear_lags(&self) {
        let mut s = self.lock();
        s.lags.clear();
        s.lag_total = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new policy (PATCH) takes effect with a fresh breaker; counters carry on.
    pub fn set_breaker_policy(&self, policy: BreakerPolicy) {
        self.lock().breaker = Breaker::new(policy);
        self.breaker_changed.notify_waiters();
    }

    pub fn permit(&self, now: Instant) -> Permit {
        self.lock().breaker.permit(now)
    }

    pub fn on_delivered(&self, events: u64, latency_ms: f64, at: String) {
        let mut s = self.lock();
        s.breaker.on_success();
        s.consecutive_exhausted = 0;
        s.counters.delivered_events += events;
        s.counters.delivered_batches += 1;
        s.last_success_at = Some(at);
        if s.latencies_ms.len() == LATENCY_WINDOW {
            s.latencies_ms.pop_front();
        }
        s.latencies_ms.push_back(latency_ms);
        drop(s);
        self.breaker_changed.notify_waiters();
    }

    /// A note from a receiver that accepted the batch (records it dropped): shown as the last
    /// error, without touching the breaker or the state.
    pub fn on_receiver_note(&self, note: LastError) {
        self.lock().last_error = Some(note);
    }

    /// A transient failure: counts toward the breaker.
    pub fn on_transient_failure(&self, now: Instant, error: LastError, will_retry: bool) {
        let mut s = self.lock();
        s.breaker.on_failure(now);
        s.counters.failed_attempts += 1;
        if will_retry {
            s.counters.retried_attempts += 1;
        }
        s.last_error = Some(error);
        drop(s);
        self.breaker_changed.notify_waiters();
    }

    /// A definitive answer about the batch or the sink (4xx): the receiver is up, so the breaker
    /// closes, but the attempt failed.
    pub fn on_refused(&self, error: LastError) {
        let mut s = self.lock();
        s.breaker.on_success();
        s.counters.failed_attempts += 1;
        s.last_error = Some(error);
        drop(s);
        self.breaker_changed.notify_waiters();
    }

    pub fn on_abandoned(&self, now: Instant) {
        self.lock().breaker.on_abandoned(now);
        self.breaker_changed.notify_waiters();
    }

    /// Returns how many batches in a row have now been dead-lettered.
    pub fn on_dead_lettered(&self, events: u64) -> u32 {
        // (Metrics are counted where the dead letter is written.)
        let mut s = self.lock();
        s.counters.dead_lettered_batches += 1;
        s.counters.dead_lettered_events += events;
        s.consecutive_exhausted += 1;
        s.consecutive_exhausted
    }

    /// Single events refused inside an accepted batch (not a failed batch: the streak of
    /// exhausted batches is not touched).
    pub fn on_events_dead_lettered(&self, events: u64) {
        self.lock().counters.dead_lettered_events += events;
    }

    /// Events the sink's stage kept back: `filtered` said no, `errors` could not be evaluated.
    pub fn on_staged(&self, filtered: u64, errors: u64) {
        let mut s = self.lock();
        s.counters.filtered_events += filtered;
        s.counters.filter_errors += errors;
    }

    pub fn backoff_started(&self) {
        self.lock().backing_off += 1;
    }

    pub fn backoff_ended(&self) {
        let mut s = self.lock();
        s.backing_off = s.backing_off.saturating_sub(1);
    }

    /// A resume starts with a clean slate for the "N exhausted in a row" rule.
    pub fn reset_exhausted(&self) {
        self.lock().consecutive_exhausted = 0;
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let s = self.lock();
        let latency_ms = if s.latencies_ms.is_empty() {
            None
        } else {
            let mut v: Vec<f64> = s.latencies_ms.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
            Some((at(0.5), at(0.9), at(0.99)))
        };
        StatusSnapshot {
            circuit_open: matches!(s.breaker.state(), BreakerState::Open { .. } | BreakerState::HalfOpen),
            backing_off: s.backing_off > 0,
            consecutive_failures: s.breaker.consecutive_failures(),
            consecutive_exhausted: s.consecutive_exhausted,
            last_error: s.last_error.clone(),
            last_success_at: s.last_success_at.clone(),
            counters: s.counters,
            latency_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_BREAKER;

    #[test]
    fn the_lag_total_follows_each_tenant_and_forgets_them_on_clear() {
        let s = SinkStatus::new(DEFAULT_BREAKER);
        assert_eq!(s.set_lag("a", 5), 5);
        assert_eq!(s.set_lag("b", 7), 12);
        // A tenant's new value replaces its old one instead of adding to it.
        assert_eq!(s.set_lag("a", 1), 8);
        assert_eq!(s.set_lag("b", 0), 1);
        s.clear_lags();
        assert_eq!(s.set_lag("b", 3), 3);
    }

    #[test]
    fn state_is_decided_in_order_and_spelled_as_before() {
        let s = SinkStatus::new(DEFAULT_BREAKER);
        let mut snap = s.snapshot();
        assert_eq!(SinkState::of(false, &snap), SinkState::Active);
        snap.backing_off = true;
        assert_eq!(SinkState::of(false, &snap), SinkState::BackingOff);
        snap.circuit_open = true;
        assert_eq!(SinkState::of(false, &snap), SinkState::CircuitOpen);
        assert_eq!(SinkState::of(true, &snap), SinkState::Paused);
        let spelled: Vec<String> = [
            SinkState::Active,
            SinkState::BackingOff,
            SinkState::CircuitOpen,
            SinkState::Paused,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        assert_eq!(
            spelled,
            [r#""active""#, r#""backing_off""#, r#""circuit_open""#, r#""paused""#]
        );
    }

    #[test]
    fn an_idle_sink_carries_no_latency_window() {
        let s = SinkStatus::new(DEFAULT_BREAKER);
        assert_eq!(s.lock().latencies_ms.capacity(), 0);
        s.on_delivered(1, 2.0, "t".into());
        assert!(s.lock().latencies_ms.capacity() < LATENCY_WINDOW);
    }

    #[tokio::test]
    async fn a_verdict_wakes_whoever_waits_for_the_breaker() {
        let s = SinkStatus::new(DEFAULT_BREAKER);
        let changed = s.breaker_changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        s.on_refused(LastError {
            at: "t".into(),
            tenant: "a".into(),
            status: Some(400),
            message: "no".into(),
        });
        // Already notified: this completes at once instead of waiting for a timer.
        tokio::time::timeout(std::time::Duration::from_secs(5), changed)
            .await
            .expect("the verdict woke the waiter");
    }
}
