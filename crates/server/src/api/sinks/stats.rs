//! `GET /v1/sinks/{id}/stats?window=`: deliveries, failures and latency per minute over the last
//! hour or day, for the console's charts. Derived from the durable delivery log (one row per
//! attempt, kept `--delivery-log-retention-hours`), so the numbers survive a restart and agree
//! with `GET /v1/sinks/{id}/deliveries`; nothing extra is recorded on the delivery path.

use auditrelay_engine::LatencyPercentiles;
use auditrelay_store::DeliveryAttempt;
use axum::extract::{Path, State};
use axum::Json;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::visible_sink;
use crate::api::doc;
use crate::api::extract::ApiQuery;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const BUCKET_SECS: i64 = 60;
const PAGE: usize = 1000;
/// Attempts read at most per answer: a sink retrying furiously for a day cannot make one
/// request scan without bound; the answer then says `truncated`.
const MAX_SCANNED: usize = 200_000;

#[derive(Deserialize)]
pub struct StatsQuery {
    window: Option<String>,
}

/// One minute of a sink's delivery log.
#[derive(Serialize, ToSchema)]
pub struct StatsBucket {
    /// The bucket's first instant (a whole minute, UTC).
    #[schema(format = DateTime)]
    start: String,
    /// Events in attempts the receiver accepted.
    #[schema(minimum = 0)]
    delivered_events: u64,
    #[schema(minimum = 0)]
    delivered_batches: u64,
    /// Attempts that did not deliver (`retry`, `rejected`, `misconfigured`).
    #[schema(minimum = 0)]
    failed_attempts: u64,
    /// Latency percentiles of the bucket's attempts (ms); `null` when it has none.
    latency_p50_ms: Option<f64>,
    latency_p90_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
}

/// A sink's delivery statistics over a window, per minute.
#[derive(Serialize, ToSchema)]
pub struct SinkStats {
    sink_id: String,
    /// `1h` or `24h`.
    window: String,
    #[schema(minimum = 60, maximum = 60)]
    bucket_seconds: i64,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    /// Oldest first; every minute of the window is present (60 or 1440 buckets).
    buckets: Vec<StatsBucket>,
    #[schema(minimum = 0)]
    delivered_events: u64,
    #[schema(minimum = 0)]
    failed_attempts: u64,
    /// Over the whole window; `null` when there was no attempt.
    latency_ms: Option<LatencyPercentiles>,
    /// The scan stopped at its bound before the window's start: the oldest buckets are partial.
    truncated: bool,
}

/// Per-minute delivery statistics of a sink over the last hour or day (test deliveries excluded).
#[utoipa::path(
    get,
    path = "/v1/sinks/{id}/stats",
    operation_id = "getSinkStats",
    tag = "sinks",
    params(
        ("id" = String, Path, description = "The sink id (`snk_…`)."),
        ("window" = Option<String>, Query, pattern = "^(1h|24h)$", description = "`1h` (default) or `24h`."),
    ),
    responses(
        (status = 200, description = "The statistics, one bucket per minute.", body = SinkStats),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["manage"])),
)]
pub async fn sink_stats(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    query: Result<ApiQuery<StatsQuery>, ApiError>,
) -> ApiResult<Json<SinkStats>> {
    let row = visible_sink(&state, &principal, &id).await?;
    let ApiQuery(query) = query?;
    let window = query.window.unwrap_or_else(|| "1h".to_owned());
    let minutes: i64 = match window.as_str() {
        "1h" => 60,
        "24h" => 1440,
        _ => return Err(ApiError::invalid_param("window", "`window` is `1h` or `24h`")),
    };
    let now = state.clock.now();
    // The window ends at the end of the current minute, so the newest bucket is the one in progress.
    let end_secs = (now.as_second().div_euclid(BUCKET_SECS) + 1) * BUCKET_SECS;
    let start_secs = end_secs - minutes * BUCKET_SECS;
    let mut buckets: Vec<Acc> = (0..minutes).map(|_| Acc::default()).collect();
    let mut all = Vec::new();
    let mut before = None;
    let mut scanned = 0usize;
    let mut truncated = false;
    'pages: loop {
        let page = state.store.list_attempts(&row.id, before, PAGE).await?;
        for (seq, attempt) in &page {
            scanned += 1;
            before = Some(*seq);
            let Some(at) = attempt_second(attempt) else { continue };
            if at < start_secs {
                break 'pages;
            }
            if attempt.purpose == "test" || at >= end_secs {
                continue;
            }
            let Ok(i) = usize::try_from((at - start_secs) / BUCKET_SECS) else {
                continue;
            };
            if let Some(b) = buckets.get_mut(i) {
                b.add(attempt);
                all.push(attempt.latency_ms);
            }
        }
        if page.len() < PAGE {
            break;
        }
        if scanned >= MAX_SCANNED {
            truncated = true;
            break;
        }
    }
    let stamp = |secs: i64| {
        Timestamp::UNIX_EPOCH
            .checked_add(SignedDuration::from_secs(secs))
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let delivered_events = buckets.iter().map(|b| b.delivered_events).sum();
    let failed_attempts = buckets.iter().map(|b| b.failed_attempts).sum();
    let latency_ms = percentiles(&mut all).map(|(p50, p90, p99)| LatencyPercentiles { p50, p90, p99 });
    let buckets = buckets
        .into_iter()
        .enumerate()
        .map(|(i, mut b)| {
            let p = percentiles(&mut b.latencies);
            StatsBucket {
                start: stamp(start_secs + i as i64 * BUCKET_SECS),
                delivered_events: b.delivered_events,
                delivered_batches: b.delivered_batches,
                failed_attempts: b.failed_attempts,
                latency_p50_ms: p.map(|p| p.0),
                latency_p90_ms: p.map(|p| p.1),
                latency_p99_ms: p.map(|p| p.2),
            }
        })
        .collect();
    Ok(Json(SinkStats {
        sink_id: row.id,
        window,
        bucket_seconds: BUCKET_SECS,
        from: stamp(start_secs),
        to: stamp(end_secs),
        buckets,
        delivered_events,
        failed_attempts,
        latency_ms,
        truncated,
    }))
}

#[derive(Default)]
struct Acc {
    delivered_events: u64,
    delivered_batches: u64,
    failed_attempts: u64,
    latencies: Vec<f64>,
}

impl Acc {
    fn add(&mut self, a: &DeliveryAttempt) {
        if a.outcome == "delivered" {
            self.delivered_events += a.event_count;
            self.delivered_batches += 1;
        } else {
            self.failed_attempts += 1;
        }
        self.latencies.push(a.latency_ms);
    }
}

/// Seconds since the epoch of an attempt's `at` (RFC 3339 as the store renders it).
fn attempt_second(a: &DeliveryAttempt) -> Option<i64> {
    a.at.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// Nearest-rank p50, p90 and p99.
fn percentiles(v: &mut [f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    Some((rank(0.50), rank(0.90), rank(0.99)))
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut v), Some((50.0, 90.0, 99.0)));
        assert_eq!(percentiles(&mut []), None);
        assert_eq!(percentiles(&mut [7.0]), Some((7.0, 7.0, 7.0)));
    }
}
