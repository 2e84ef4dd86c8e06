//! Repeated ingest runs (`--runs`) against auditrelay and the ceilings, and their medians.

use serde_json::{json, Value};

use crate::load::{round1, round3, LoadResult};
use crate::stats::ms;

/// Median, min and max of a figure over the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. The median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// All of the runs, or `None` if any run lacks the figure.
    fn of_all(results: &[LoadResult], f: impl Fn(&LoadResult) -> Option<f64>) -> Option<Spread> {
        let v: Option<Vec<f64>> = results.iter().map(f).collect();
        Spread::of(&v?)
    }

    pub fn to_json(self, round: fn(f64) -> f64) -> Value {
        json!({"median": round(self.median), "min": round(self.min), "max": round(self.max)})
    }
}

/// One target's runs of one ingest scenario, summarised.
#[derive(Debug, Clone)]
pub struct Agg {
    pub runs: usize,
    pub events_per_s: Spread,
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    pub cpu_pct: Option<Spread>,
    pub cpu_us_per_event: Option<Spread>,
    pub events_per_cpu_s: Option<Spread>,
    pub max_rss_bytes: Option<Spread>,
    /// The load generator's CPU, percent of one core.
    pub client_cpu_pct: Option<Spread>,
    pub errors: u64,
}

impl Agg {
    pub fn of(results: &[LoadResult]) -> Option<Agg> {
        Some(Agg {
            runs: results.len(),
            events_per_s: Spread::of_all(results, |r| Some(r.events_per_sec))?,
            p50_ms: Spread::of_all(results, |r| Some(ms(r.latency.p50)))?,
            p99_ms: Spread::of_all(results, |r| Some(ms(r.latency.p99)))?,
            cpu_pct: Spread::of_all(results, |r| r.server_cpu_percent),
            cpu_us_per_event: Spread::of_all(results, LoadResult::cpu_us_per_event),
            events_per_cpu_s: Spread::of_all(results, LoadResult::events_per_cpu_sec),
            max_rss_bytes: Spread::of_all(results, |r| r.server_max_rss_bytes.map(|b| b as f64)),
            client_cpu_pct: Spread::of_all(results, |r| r.client_cpu_percent),
            errors: results.iter().map(LoadResult::error_count).sum(),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "runs": self.runs,
            "events_per_s": self.events_per_s.to_json(round1),
            "p50_ms": self.p50_ms.to_json(round3),
            "p99_ms": self.p99_ms.to_json(round3),
            "cpu_pct": self.cpu_pct.map(|s| s.to_json(round1)),
            "cpu_us_per_event": self.cpu_us_per_event.map(|s| s.to_json(round3)),
            "events_per_cpu_s": self.events_per_cpu_s.map(|s| s.to_json(round1)),
            "max_rss_bytes": self.max_rss_bytes.map(|s| s.to_json(f64::round)),
            "client_cpu_pct": self.client_cpu_pct.map(|s| s.to_json(round1)),
            "errors": self.errors,
        })
    }
}

/// Who an ingest run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    NoopHttp,
    Durable,
    Auditrelay,
}

impl Subject {
    pub fn label(self) -> &'static str {
        match self {
            Subject::NoopHttp => "do-nothing HTTP",
            Subject::Durable => "durable appender",
            Subject::Auditrelay => "auditrelay",
        }
    }
}

/// Every run of one ingest scenario.
#[derive(Debug, Clone)]
pub struct IngestSet {
    pub batch: usize,
    pub auditrelay: Vec<LoadResult>,
    pub noop_http: Vec<LoadResult>,
    pub durable: Vec<LoadResult>,
}

impl IngestSet {
    pub fn new(batch: usize) -> Self {
        Self {
            batch,
            auditrelay: Vec::new(),
            noop_http: Vec::new(),
            durable: Vec::new(),
        }
    }

    pub fn push(&mut self, who: Subject, r: LoadResult) {
        match who {
            Subject::NoopHttp => self.noop_http.push(r),
            Subject::Durable => self.durable.push(r),
            Subject::Auditrelay => self.auditrelay.push(r),
        }
    }

    pub fn results(&self, who: Subject) -> &[LoadResult] {
        match who {
            Subject::NoopHttp => &self.noop_http,
            Subject::Durable => &self.durable,
            Subject::Auditrelay => &self.auditrelay,
        }
    }

    pub fn agg(&self, who: Subject) -> Option<Agg> {
        Agg::of(self.results(who))
    }

    /// auditrelay's median events/s over the ceiling's median events/s.
    pub fn ratio_to(&self, ceiling: Subject) -> Option<f64> {
        let a = self.agg(Subject::Auditrelay)?.events_per_s.median;
        let c = self.agg(ceiling)?.events_per_s.median;
        (c > 0.0).then(|| a / c)
    }

    /// Events auditrelay acknowledged over every run, warm-ups included.
    pub fn auditrelay_events(&self) -> u64 {
        self.auditrelay.iter().map(|r| r.total_events).sum()
    }

    pub fn to_json(&self) -> Value {
        let side = |who: Subject| {
            let runs = self.results(who);
            (!runs.is_empty()).then(|| {
                json!({
                    "median": self.agg(who).map(|a| a.to_json()),
                    "per_run": runs.iter().map(LoadResult::to_json).collect::<Vec<_>>(),
                })
            })
        };
        json!({
            "events_per_request": self.batch,
            "auditrelay": side(Subject::Auditrelay),
            "noop_http": side(Subject::NoopHttp),
            "durable_appender": side(Subject::Durable),
            "ratio_to_noop_http": self.ratio_to(Subject::NoopHttp).map(round3),
            "ratio_to_durable_appender": self.ratio_to(Subject::Durable).map(round3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).map(|s| s.median), Some(5.0));
    }
}
