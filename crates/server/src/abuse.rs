//! Abuse limits per tenant key: a request rate (token bucket) and a cap on open streams
//! (long-polls that wait, SSE). The operator token is not limited: it is one trusted principal,
//! and the benchmark and recovery work must never be throttled by a setting meant for tenants.
//!
//! Both answer `429` with `Retry-After` and our JSON error, so a well-behaved client backs off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::config::AbuseLimits;
use crate::error::ApiError;

/// Buckets idle this long are full again; they are dropped so revoked or unused keys do not
/// keep memory.
const IDLE_BUCKET: Duration = Duration::from_secs(300);
/// How often (at most) the bucket map is swept for idle entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Requests per second per key, with a burst. `rps == 0` turns it off.
pub struct RateLimiter {
    rps: f64,
    burst: f64,
    state: Mutex<(HashMap<String, Bucket>, Instant)>,
}

impl RateLimiter {
    pub fn new(rps: u32, burst: u32) -> Self {
        RateLimiter {
            rps: f64::from(rps),
            // A burst below one request would refuse everything.
            burst: f64::from(burst.max(1)),
            state: Mutex::new((HashMap::new(), Instant::now())),
        }
    }

    /// Takes one request from `key`'s bucket, or answers 429 with the seconds until the next
    /// request would pass.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        if self.rps <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (buckets, swept) = &mut *guard;
        if now.duration_since(*swept) > SWEEP_EVERY {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE_BUCKET);
            *swept = now;
        }
        // Look up by &str first: no allocation per request for a key already seen.
        if !buckets.contains_key(key) {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: self.burst,
                    updated: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(key) else {
            return Ok(());
        };
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.rps;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rps;
        // Retry-After is whole seconds; never 0, or clients would retry in a tight loop.
        let retry_after = (wait.ceil() as u64).max(1);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key is over its rate limit of {} requests per second (burst {}); retry after {retry_after} s",
                self.rps, self.burst
            ),
        )
        .with_detail(json!({ "limit_rps": self.rps, "burst": self.burst, "retry_after": retry_after }));
        e.retry_after = Some(retry_after);
        Err(e)
    }
}

/// Open long-polls and SSE streams per key. `max == 0` turns the cap off.
pub struct StreamSlots {
    max: u32,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

/// One open stream; dropping it (the response finished or the client went away) frees the slot.
pub struct StreamSlot {
    key: String,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

impl StreamSlots {
    pub fn new(max: u32) -> Self {
        StreamSlots {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `key`, or 429 when it already holds `max` open streams.
    pub fn acquire(&self, key: &str) -> Result<Option<StreamSlot>, ApiError> {
        if self.max == 0 {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.to_owned()).or_insert(0);
        if *count >= self.max {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this key already holds {} open long-polls or SSE streams (the limit); close one first",
                    self.max
                ),
            )
            .with_detail(json!({ "max_streams_per_key": self.max }));
            e.retry_after = Some(1);
            return Err(e);
        }
        *count += 1;
        Ok(Some(StreamSlot {
            key: key.to_owned(),
            open: self.open.clone(),
        }))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Everything the handlers need to enforce the limits.
pub struct Abuse {
    pub rate: RateLimiter,
    pub streams: StreamSlots,
}

impl Abuse {
    pub fn new(limits: &AbuseLimits) -> Self {
        Abuse {
            rate: RateLimiter::new(limits.rate_limit_rps, limits.rate_limit_burst),
            streams: StreamSlots::new(limits.max_streams_per_key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_request_is_refused_with_a_retry_after() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            limiter.check("k").expect("within the burst");
        }
        let e = limiter.check("k").expect_err("over the burst");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(1));
        limiter.check("other").expect("another key has its own bucket");
    }

    #[test]
    fn zero_turns_the_rate_limit_off() {
        let limiter = RateLimiter::new(0, 0);
        for _ in 0..10_000 {
            limiter.check("k").expect("no limit");
        }
    }

    #[test]
    fn a_dropped_stream_frees_its_slot() {
        let slots = StreamSlots::new(2);
        let a = slots.acquire("k").expect("first");
        let _b = slots.acquire("k").expect("second");
        assert_eq!(slots.acquire("k").err().map(|e| e.code), Some("too_many_streams"));
        assert!(slots.acquire("other").is_ok(), "another key has its own slots");
        drop(a);
        assert!(slots.acquire("k").is_ok(), "the slot was freed");
    }
}
