//! Latency samples and percentiles.
//!
//! Samples are durations in microseconds. Percentiles use the nearest-rank
//! method on the sorted samples: the p-th percentile is the smallest sample
//! such that at least p% of the samples are less than or equal to it. That
//! keeps every reported figure an observed value (no interpolation).

use std::time::Duration;

/// A collection of latency samples, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            micros: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.micros.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    #[cfg(test)]
    pub fn record_micros(&mut self, us: u64) {
        self.micros.push(us);
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        Summary::from_sorted(&sorted)
    }
}

/// Summary statistics of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub count: usize,
    pub min: u64,
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    /// Summarise samples that are already sorted ascending. An empty slice
    /// gives an all-zero summary with `count == 0`.
    pub fn from_sorted(sorted: &[u64]) -> Self {
        debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
        if sorted.is_empty() {
            return Summary::default();
        }
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        let mean = u64::try_from(sum / sorted.len() as u128).unwrap_or(u64::MAX);
        Summary {
            count: sorted.len(),
            min: sorted[0],
            mean,
            p50: percentile_sorted(sorted, 50.0),
            p90: percentile_sorted(sorted, 90.0),
            p99: percentile_sorted(sorted, 99.0),
            p999: percentile_sorted(sorted, 99.9),
            max: sorted[sorted.len() - 1],
        }
    }

    /// A JSON object with the figures in milliseconds (3 decimals).
    pub fn to_json_ms(self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "min_ms": ms(self.min),
            "mean_ms": ms(self.mean),
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "p999_ms": ms(self.p999),
            "max_ms": ms(self.max),
        })
    }
}

/// Microseconds to milliseconds (microsecond resolution, so 3 decimals).
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Nearest-rank percentile of an ascending slice. `p` is in (0, 100].
/// Returns 0 for an empty slice.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let p = p.clamp(0.0, 100.0);
    // rank = ceil(p/100 * n), 1-based, at least 1.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let idx = rank.clamp(1, n) - 1;
    sorted[idx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(percentile_sorted(&[], 50.0), 0);
        let s = Samples::default().summary();
        assert_eq!(s, Summary::default());
        assert_eq!(s.count, 0);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let s = Summary::from_sorted(&[42]);
        assert_eq!(s.count, 1);
        assert_eq!((s.min, s.p50, s.p99, s.max, s.mean), (42, 42, 42, 42, 42));
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 50);
        assert_eq!(percentile_sorted(&v, 90.0), 90);
        assert_eq!(percentile_sorted(&v, 99.0), 99);
        assert_eq!(percentile_sorted(&v, 99.9), 100);
        assert_eq!(percentile_sorted(&v, 100.0), 100);
        assert_eq!(percentile_sorted(&v, 0.0), 1);
        assert_eq!(percentile_sorted(&v, 1.0), 1);
        assert_eq!(percentile_sorted(&v, 1.5), 2);
    }

    #[test]
    fn nearest_rank_small_sets() {
        // Classic nearest-rank example: 15, 20, 35, 40, 50.
        let v = [15, 20, 35, 40, 50];
        assert_eq!(percentile_sorted(&v, 5.0), 15);
        assert_eq!(percentile_sorted(&v, 30.0), 20);
        assert_eq!(percentile_sorted(&v, 40.0), 20);
        assert_eq!(percentile_sorted(&v, 50.0), 35);
        assert_eq!(percentile_sorted(&v, 100.0), 50);
        // p99 of 5 samples is the max.
        assert_eq!(percentile_sorted(&v, 99.0), 50);
    }

    #[test]
    fn p99_picks_the_tail_outlier() {
        // 1000 samples of 1ms and 11 of 500ms: p99 must see the outliers
        // (rank ceil(0.99 * 1011) = 1001 > 1000).
        let mut s = Samples::default();
        for _ in 0..1000 {
            s.record(Duration::from_millis(1));
        }
        for _ in 0..11 {
            s.record(Duration::from_millis(500));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 1011);
        assert_eq!(sum.p50, 1000);
        assert_eq!(sum.p99, 500_000);
        assert_eq!(sum.max, 500_000);
    }

    #[test]
    fn summary_sorts_unsorted_input_and_merges() {
        let mut a = Samples::default();
        for us in [9, 3, 7] {
            a.record_micros(us);
        }
        let mut b = Samples::with_capacity(2);
        for us in [1, 5] {
            b.record_micros(us);
        }
        a.merge(b);
        assert_eq!(a.len(), 5);
        let s = a.summary();
        assert_eq!((s.min, s.p50, s.max, s.mean), (1, 5, 9, 5));
    }

    #[test]
    fn mean_rounds_down_and_ms_converts() {
        let s = Summary::from_sorted(&[1, 2]);
        assert_eq!(s.mean, 1);
        assert_eq!(ms(1500), 1.5);
        assert_eq!(ms(1234), 1.234);
        let j = Summary::from_sorted(&[1000, 2000]).to_json_ms();
        assert_eq!(j["p50_ms"], serde_json::json!(1.0));
        assert_eq!(j["max_ms"], serde_json::json!(2.0));
        assert_eq!(j["count"], serde_json::json!(2));
    }
}
