//! RFC 3339 timestamps: strict parsing and one canonical rendering (UTC, millisecond or finer).

use jiff::Timestamp;

/// Parses a strict RFC 3339 date-time (`2026-06-01T10:13:20.000Z`, `…+02:00`). jiff alone also
/// accepts ISO 8601 variants RFC 3339 forbids (week dates, missing offsets, bracketed zones), so
/// the shape is checked first.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    if !looks_like_rfc3339(s.as_bytes()) {
        return None;
    }
    s.parse::<Timestamp>().ok()
}

fn looks_like_rfc3339(b: &[u8]) -> bool {
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Canonical rendering: UTC, `Z`, 3, 6 or 9 fractional digits — the fewest that keep the value.
pub fn format_timestamp(ts: Timestamp) -> String {
    let nanos = ts.subsec_nanosecond();
    if nanos % 1_000_000 == 0 {
        format!("{ts:.3}")
    } else if nanos % 1_000 == 0 {
        format!("{ts:.6}")
    } else {
        format!("{ts:.9}")
    }
}

/// Now, rendered canonically, at microsecond precision.
pub fn now_rfc3339() -> String {
    render_micros(Timestamp::now())
}

/// A timestamp rendered canonically at microsecond precision (what `received_at` holds).
pub fn render_micros(ts: Timestamp) -> String {
    format_timestamp(Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts))
}

/// Where "now" comes from for decisions that depend on elapsed days (retention) and for the
/// `received_at` those decisions read, so tests can move time by months in a millisecond.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;

    /// `now`, rendered like `received_at`.
    fn now_rfc3339(&self) -> String {
        render_micros(self.now())
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that reads the wall clock plus an offset the test moves forward (never backwards,
/// so `received_at` stays monotonic within a tenant's log).
#[derive(Debug, Default)]
pub struct FakeClock {
    ahead: std::sync::Mutex<jiff::SignedDuration>,
}

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        *ahead = ahead.saturating_add(jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        let ahead = *self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        Timestamp::now().saturating_add(ahead).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rfc3339() {
        for ok in [
            "2026-06-01T10:13:20.000Z",
            "2026-06-01T10:13:20Z",
            "2026-06-01T12:13:20+02:00",
            "2026-06-01T10:13:20.123456789Z",
        ] {
            assert!(parse_rfc3339(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "2026-06-01",
            "2026-06-01 10:13:20Z",
            "2026-06-01T10:13:20",
            "2026-13-01T10:13:20Z",
            "2026-06-01T10:13:20+0200",
            "2026-06-01T10:13:20Z[UTC]",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn canonical_rendering_is_utc_with_millis() {
        let ts = parse_rfc3339("2026-06-01T12:13:20+02:00").unwrap();
        assert_eq!(format_timestamp(ts), "2026-06-01T10:13:20.000Z");
        let ts = parse_rfc3339("2026-06-01T10:13:20.1234Z").unwrap();
        assert_eq!(format_timestamp(ts), "2026-06-01T10:13:20.123400Z");
        assert_eq!(now_rfc3339().len(), "2026-06-01T10:13:20.123400Z".len());
    }
}
