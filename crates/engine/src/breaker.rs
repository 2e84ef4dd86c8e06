//! The circuit breaker of one sink, shared by all its tenant lanes: after `failure_threshold`
//! consecutive failed attempts it opens, and nothing is sent for `cooldown`; then it lets one
//! trial attempt through (half-open): success closes it, failure re-opens it. Pure: callers pass
//! `now`, so tests step time by hand.

use std::time::{Duration, Instant};

use crate::spec::BreakerPolicy;

/// How long a caller waits before asking again while a trial attempt is out.
pub const HALF_OPEN_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open {
        until: Instant,
    },
    /// A trial attempt is out; others wait for its verdict.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    consecutive_failures: u32,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Go,
    /// Wait at least this long and ask again.
    Wait(Duration),
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: BreakerState::Closed,
            consecutive_failures: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Go,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Permit::Go
            }
            BreakerState::Open { until } => Permit::Wait(until - now),
            // One trial at a time. Its verdict wakes the waiters (`SinkStatus::breaker_changed`);
            // this only bounds the wait should a trial end without one.
            BreakerState::HalfOpen => Permit::Wait(HALF_OPEN_RECHECK),
        }
    }

    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.state = BreakerState::Closed;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trip =
            matches!(self.state, BreakerState::HalfOpen) || self.consecutive_failures >= self.policy.failure_threshold;
        if trip {
            self.state = BreakerState::Open {
                until: now + Duration::from_millis(self.policy.cooldown_ms),
            };
        }
    }

    /// An attempt that ended without a verdict (shutdown mid-trial) must not leave the breaker
    /// half-open forever.
    pub fn on_abandoned(&mut self, now: Instant) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_half_opens_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerPolicy {
            failure_threshold: 3,
            cooldown_ms: 1000,
        });
        for _ in 0..2 {
            assert_eq!(b.permit(t0), Permit::Go);
            b.on_failure(t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(
            b.permit(t0 + Duration::from_millis(400)),
            Permit::Wait(Duration::from_millis(600))
        );
        // Cooldown over: exactly one trial goes.
        assert_eq!(b.permit(t0 + Duration::from_millis(1000)), Permit::Go);
        assert!(matches!(b.permit(t0 + Duration::from_millis(1001)), Permit::Wait(_)));
        // The trial fails: open again for a full cooldown.
        b.on_failure(t0 + Duration::from_millis(1100));
        assert_eq!(
            b.permit(t0 + Duration::from_millis(1500)),
            Permit::Wait(Duration::from_millis(600))
        );
        assert_eq!(b.permit(t0 + Duration::from_millis(2100)), Permit::Go);
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }
}
