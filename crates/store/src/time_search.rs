//! Times in the store, shared by the backends: RFC 3339 instants, and the search behind
//! `EventLog::offset_at_time`.

use crate::{Result, StoreError};

/// An RFC 3339 timestamp as nanoseconds since the epoch, for exact comparisons: `time` may carry
/// an offset (`+02:00`), and stored timestamps use 3, 6 or 9 fractional digits, which do not
/// sort as text.
pub(crate) fn instant(rfc3339: &str) -> Option<i128> {
    auditrelay_core::time::parse_rfc3339(rfc3339).map(|t| t.as_nanosecond())
}

/// A caller passed a time that is not RFC 3339. Callers validate user input first, so this is a
/// bug on their side; there is no "invalid argument" error kind, hence `Unavailable`.
pub(crate) fn not_a_timestamp(operation: &str, value: &str) -> StoreError {
    StoreError::Unavailable(format!("{operation}: `{value}` is not an RFC 3339 timestamp"))
}

/// Binary search over a tenant's offsets first..=head (first = 1 unless a prefix was purged) for the first event received at or after a
/// time. `received_at` has no index (it would cost every append a second B-tree insert), so a
/// backend answers each [`probe`](Self::probe) with one primary-key point lookup: ~log2(head)
/// reads. `received_at` is taken before the group commit, so concurrent requests can commit
/// slightly out of time order; the answer is then off by a few events received within
/// milliseconds of the time, which is fine for a start position.
pub(crate) struct TimeSearch {
    tenant: String,
    head: u64,
    target: i128,
    /// Every offset < lo is before the time; every offset >= hi is at or after it.
    lo: u64,
    hi: u64,
}

impl TimeSearch {
    pub(crate) fn new(tenant: &str, first: u64, head: u64, time: &str) -> Result<TimeSearch> {
        let target = instant(time).ok_or_else(|| not_a_timestamp("offset_at_time", time))?;
        Ok(TimeSearch {
            tenant: tenant.to_owned(),
            head,
            target,
            lo: first.min(head.saturating_add(1)),
            hi: head.saturating_add(1),
        })
    }

    /// The offset whose `received_at` the search needs next, or `None` when it is done.
    pub(crate) fn probe(&self) -> Option<u64> {
        (self.lo < self.hi).then(|| self.lo + (self.hi - self.lo) / 2)
    }

    /// The `received_at` of the event at `offset` (the last probe); `None` if there is no such
    /// event, which below the head means the store is damaged.
    pub(crate) fn answer(&mut self, offset: u64, received_at: Option<&str>) -> Result<()> {
        let at = received_at.ok_or_else(|| self.missing(offset))?;
        let at_instant = instant(at).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event {offset} of tenant `{}` has an invalid received_at `{at}`",
                self.tenant
            ))
        })?;
        self.answer_instant(offset, Some(at_instant))
    }

    /// [`answer`](Self::answer) with the time as nanoseconds since the epoch.
    pub(crate) fn answer_instant(&mut self, offset: u64, received_at: Option<i128>) -> Result<()> {
        let at_instant = received_at.ok_or_else(|| self.missing(offset))?;
        if at_instant >= self.target {
            self.hi = offset;
        } else {
            self.lo = offset + 1;
        }
        Ok(())
    }

    fn missing(&self, offset: u64) -> StoreError {
        StoreError::Corrupt(format!(
            "tenant `{}` has head {} but no event at offset {offset}",
            self.tenant, self.head
        ))
    }

    /// The cursor from which a reader sees the events at or after the time: one before the
    /// first of them (the head if there is none).
    pub(crate) fn cursor(&self) -> u64 {
        self.lo - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_compare_across_precisions_and_offsets() {
        assert!(instant("2026-01-01T00:00:03.123Z") < instant("2026-01-01T00:00:03.1234Z"));
        assert_eq!(
            instant("2026-01-01T01:00:00+01:00"),
            instant("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(instant("not a time"), None);
    }

    #[test]
    fn the_search_finds_the_first_event_at_or_after_the_time() {
        let times = [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:02.5Z",
            "2026-01-01T00:00:02.500001Z",
        ];
        let run = |time: &str| {
            let mut s = TimeSearch::new("t", 1, times.len() as u64, time).unwrap();
            while let Some(offset) = s.probe() {
                s.answer(offset, Some(times[offset as usize - 1])).unwrap();
            }
            s.cursor()
        };
        assert_eq!(run("2026-01-01T00:00:00Z"), 0);
        assert_eq!(run("2026-01-01T00:00:02.5Z"), 1);
        assert_eq!(run("2026-01-01T00:00:02.5000001Z"), 2);
        assert_eq!(run("2026-01-01T00:00:03Z"), 3, "none after: the head");
        let mut s = TimeSearch::new("t", 1, 3, "2026-01-01T00:00:00Z").unwrap();
        let probe = s.probe().unwrap();
        assert!(matches!(s.answer(probe, None), Err(StoreError::Corrupt(_))));
    }
}
