//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
//! Jitter"): the delay before retry `n` is uniform in `[0, min(max, initial · 2^(n-1))]`, which
//! spreads a fleet of retrying workers instead of having them hit a recovering receiver in step.
//! Pure: the random draw is an argument, so tests pin it.

use std::time::Duration;

use crate::spec::RetryPolicy;

/// The ceiling for the delay after failed attempt `attempt` (1-based).
pub fn ceiling(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let ms = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_backoff_ms);
    Duration::from_millis(ms)
}

/// The delay before the next attempt. `unit` is a uniform draw from [0, 1). A receiver's
/// `Retry-After` is honoured as a floor: we never come back sooner than it asked.
pub fn delay(policy: &RetryPolicy, attempt: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
    let jittered = ceiling(policy, attempt).mul_f64(unit.clamp(0.0, 1.0));
    match retry_after {
        Some(after) => jittered.max(after),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 8,
        initial_backoff_ms: 1000,
        max_backoff_ms: 60_000,
    };

    #[test]
    fn ceiling_doubles_then_caps() {
        let got: Vec<u64> = (1..=9).map(|a| ceiling(&P, a).as_millis() as u64).collect();
        assert_eq!(got, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
        assert_eq!(ceiling(&P, 200), Duration::from_millis(60_000), "no overflow");
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling_and_retry_after_is_a_floor() {
        assert_eq!(delay(&P, 3, 0.0, None), Duration::ZERO);
        assert_eq!(delay(&P, 3, 0.5, None), Duration::from_millis(2000));
        assert_eq!(delay(&P, 3, 0.999_999, None).as_millis(), 3999);
        assert_eq!(delay(&P, 1, 0.1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(delay(&P, 7, 1.0, Some(Duration::from_secs(7))), Duration::from_secs(60));
    }
}
