//! Prometheus names the engine records (documented in the README).

pub const DELIVERED_EVENTS: &str = "auditrelay_sink_delivered_events_total";
pub const DELIVERED_BATCHES: &str = "auditrelay_sink_delivered_batches_total";
pub const ATTEMPTS: &str = "auditrelay_sink_attempts_total";
pub const FAILED_ATTEMPTS: &str = "auditrelay_sink_failed_attempts_total";
pub const RETRIES: &str = "auditrelay_sink_retries_total";
pub const DEAD_LETTERED_BATCHES: &str = "auditrelay_sink_dead_lettered_batches_total";
pub const DEAD_LETTERED_EVENTS: &str = "auditrelay_sink_dead_lettered_events_total";
pub const FILTERED_EVENTS: &str = "auditrelay_sink_filtered_events_total";
pub const FILTER_ERRORS: &str = "auditrelay_sink_filter_errors_total";
pub const LAG: &str = "auditrelay_sink_lag_events";
pub const DELIVERY_LATENCY: &str = "auditrelay_sink_delivery_latency_seconds";
/// Histogram buckets for [`DELIVERY_LATENCY`] (seconds).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
