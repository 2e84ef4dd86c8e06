//! End-to-end delivery: ingest → sink → a loopback webhook receiver ([`crate::receiver`]).
//!
//! Every scenario uses its own tenant (so counts never mix), creates a `webhook` sink on it with
//! the operator token (`start_at: now`, `flush_interval_ms: 0`), waits until the sink's lane has
//! pinned its start cursor, ingests, then waits (up to `--drain-timeout`, 60 s by default) until
//! the receiver holds every event the tenant's log gained, and deletes the sink.
//!
//! - **Throughput** (`deliver-100`, `deliver-1000`: `batch.max_events` 100 / 1,000,
//!   `max_in_flight` = `--deliver-in-flight`): the closed-loop ingest load of [`crate::load`]
//!   (`--connections`, `--batch-size` events per request) for `--duration` seconds, no warm-up.
//!   The delivered rate is distinct events received divided by the time from the first receipt
//!   to the last receipt of a new event. Also: what was delivered while ingest ran, the lag
//!   (events) when ingest stopped, and how long the sink took to drain after that.
//! - **Latency** (`deliver-latency`: `max_events` 100, `max_in_flight` 1): one connection sends
//!   `--latency-rate` events/s for `--warmup` + `--duration` seconds, in ticks of 10 ms
//!   (`rate / 100` events per request, e.g. 10 events every 10 ms at 1,000/s; below 100/s one
//!   event per tick and a longer tick). Each event carries `metadata.sent_ns`, the wall-clock
//!   time (ns since the UNIX epoch) just before its request was written; the receiver subtracts
//!   it from the time the batch body was fully read. Ticks use
//!   `MissedTickBehavior::Burst`: a request that overruns its tick is followed at once by the
//!   missed ones, so the offered rate holds; `sent_ns` is the actual send time, so a send that
//!   runs late is reported (late ticks, worst lag behind schedule) rather than folded into the
//!   delivery latency. Only events sent after the warm-up are summarised; all are checked for
//!   completeness.
//!
//! Missing events (offsets of the tenant's log that never arrived) are failures; duplicates
//! (the same offset delivered twice: allowed by at-least-once, but worth knowing) are reported.
//!
//! - **Backlog** (`backlog`, see `backlog.rs`): the sink is paused while `--backlog-events` are
//!   ingested, then resumed; the server's RSS while the backlog builds and the drain rate.
//!
//! This module holds what the scenarios share: the sink under test ([`SinkSettings`], created and
//! deleted through the public API), draining the receiver, and the completeness check
//! ([`Completeness`]). The scenarios themselves are in `throughput` and `latency`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{Auth, Conn, Target};
use crate::load::{round1, round3};
use crate::receiver::{Gaps, Receiver};

mod backlog;
mod latency;
mod throughput;

pub use backlog::{run_backlog, BacklogConfig, BacklogResult};
pub use latency::{pacing, run_latency, LatencyConfig, LatencyResult};
pub use throughput::{run_throughput, ThroughputConfig, ThroughputResult};

/// How long to wait for a new sink's lane to pin its start cursor.
const LANE_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait, after the receiver has everything, for the committed cursor to catch up
/// (so the final health shows lag 0).
const CURSOR_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Receiver polling period while draining (local, no server calls).
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// The sink under test.
#[derive(Debug, Clone, Copy)]
pub struct SinkSettings {
    pub max_events: usize,
    pub max_in_flight: usize,
}

impl SinkSettings {
    fn body(&self, name: &str, tenant: &str, url: &str) -> Value {
        json!({
            "name": name,
            "kind": "webhook",
            "tenant": tenant,
            "config": {"url": url},
            "start_at": "now",
            "batch": {"max_events": self.max_events, "max_bytes": 8 * 1024 * 1024, "flush_interval_ms": 0},
            "max_in_flight": self.max_in_flight,
            "timeout_ms": 10_000,
        })
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// A sink created for one scenario; deleted with [`SinkHandle::delete`].
struct SinkHandle {
    id: String,
    tenant: String,
    conn: Conn,
    target: Arc<Target>,
    operator: Auth,
}

impl SinkHandle {
    async fn create(
        target: &Arc<Target>,
        operator: &Auth,
        tenant: &str,
        settings: SinkSettings,
        url: &str,
    ) -> Result<Self> {
        let mut conn = Conn::connect(target.clone()).await?;
        let body = settings.body(&format!("bench-{tenant}"), tenant, url);
        let resp = conn
            .post_json("/v1/sinks", operator, Bytes::from(body.to_string()))
            .await?;
        if resp.status != StatusCode::CREATED {
            bail!(
                "POST /v1/sinks answered {}: {} (a server started elsewhere needs --allow-private-networks to deliver to loopback)",
                resp.status,
                resp.body_snippet()
            );
        }
        let created: Created = resp.json()?;
        Ok(Self {
            id: created.id,
            tenant: tenant.to_string(),
            conn,
            target: target.clone(),
            operator: operator.clone(),
        })
    }

    async fn reconnect_if_closed(&mut self) -> Result<()> {
        if self.conn.is_closed() {
            self.conn = Conn::connect(self.target.clone()).await?;
        }
        Ok(())
    }

    async fn health(&mut self) -> Result<Value> {
        self.reconnect_if_closed().await?;
        let path = format!("/v1/sinks/{}/health", self.id);
        let resp = self.conn.get(&path, Some(&self.operator)).await?;
        if resp.status != StatusCode::OK {
            bail!("GET {path} answered {}: {}", resp.status, resp.body_snippet());
        }
        resp.json()
    }

    /// This tenant's `(cursor, head)` in a health answer.
    fn position(&self, health: &Value) -> Option<(Option<u64>, u64)> {
        health["tenants"]
            .as_array()?
            .iter()
            .find(|t| t["tenant"].as_str() == Some(self.tenant.as_str()))
            .and_then(|t| Some((t["cursor"].as_u64(), t["head"].as_u64()?)))
    }

    /// Waits until the lane has pinned its start cursor; the tenant's head then.
    async fn wait_started(&mut self) -> Result<u64> {
        let start = Instant::now();
        loop {
            let h = self.health().await?;
            match self.position(&h) {
                Some((Some(_), head)) => return Ok(head),
                Some((None, head)) if start.elapsed() > LANE_START_TIMEOUT => {
                    eprintln!(
                        "warning: sink {} has no cursor after {LANE_START_TIMEOUT:?}; going on",
                        self.id
                    );
                    return Ok(head);
                }
                None if start.elapsed() > LANE_START_TIMEOUT => {
                    bail!("sink {} health does not list tenant {}: {h}", self.id, self.tenant)
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn head(&mut self) -> Result<u64> {
        let h = self.health().await?;
        self.position(&h)
            .map(|(_, head)| head)
            .with_context(|| format!("sink {} health does not list tenant {}: {h}", self.id, self.tenant))
    }

    /// The health answer once its lag is 0 (or the last one after the timeout).
    async fn settled_health(&mut self) -> Result<Value> {
        let start = Instant::now();
        loop {
            let h = self.health().await?;
            if h["lag"].as_u64() == Some(0) || start.elapsed() > CURSOR_CATCH_UP_TIMEOUT {
                return Ok(h);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /v1/sinks/{id}/pause` or `/resume`.
    async fn set_paused(&mut self, paused: bool) -> Result<()> {
        self.reconnect_if_closed().await?;
        let path = format!("/v1/sinks/{}/{}", self.id, if paused { "pause" } else { "resume" });
        let resp = self
            .conn
            .post_json(&path, &self.operator, Bytes::from_static(b"{}"))
            .await?;
        if resp.status != StatusCode::OK {
            bail!("POST {path} answered {}: {}", resp.status, resp.body_snippet());
        }
        Ok(())
    }

    async fn delete(mut self) -> Result<()> {
        self.reconnect_if_closed().await?;
        let path = format!("/v1/sinks/{}", self.id);
        let resp = self
            .conn
            .send(Method::DELETE, &path, Some(&self.operator), None)
            .await?;
        if resp.status != StatusCode::NO_CONTENT {
            bail!("DELETE {path} answered {}: {}", resp.status, resp.body_snippet());
        }
        Ok(())
    }
}

/// The sum of every series of metric `name` in a Prometheus text exposition (`name value` or
/// `name{labels} value` lines), or `None` if there is none.
pub fn prom_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            match labelled.find('}') {
                Some(i) => &labelled[i + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            continue; // another metric sharing the prefix
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The server's group commits so far (`auditrelay_commit_group_events_count`); `None` if
/// `/metrics` could not be read, `Some(None)` if it has no such series (yet: the histogram
/// appears with the first group commit).
async fn commit_groups(target: &Arc<Target>) -> Option<Option<u64>> {
    let mut conn = Conn::connect(target.clone()).await.ok()?;
    let resp = conn.get("/metrics", None).await.ok()?;
    if resp.status != StatusCode::OK {
        return None;
    }
    let text = String::from_utf8_lossy(&resp.body);
    Some(prom_value(&text, "auditrelay_commit_group_events_count").map(|v| v as u64))
}

/// Group commits between two [`commit_groups`] readings (a missing series before = 0).
fn groups_between(before: Option<Option<u64>>, after: Option<Option<u64>>) -> Option<u64> {
    let (before, after) = (before?, after??);
    Some(after.saturating_sub(before.unwrap_or(0)))
}

/// Receiver-side figures common to both scenarios.
#[derive(Debug, Clone, Default)]
pub struct Completeness {
    /// The tenant's log range the sink owes: `(first, last)` offsets, inclusive.
    pub range: (u64, u64),
    pub expected: u64,
    /// Distinct offsets of the range received.
    pub delivered: u64,
    pub duplicates: u64,
    /// Distinct offsets received outside the range.
    pub unexpected: u64,
    /// The highest offset received for the tenant.
    pub max_offset_received: u64,
    pub gaps: Gaps,
    /// From the end of ingest until the receiver held every event; `None` = not within the
    /// drain timeout.
    pub drain_secs: Option<f64>,
    /// Webhook requests received and their body bytes.
    pub requests: u64,
    pub body_bytes: u64,
    /// Bad requests (wrong path, missing Standard Webhooks headers, unreadable body).
    pub receiver_errors: u64,
    pub receiver_first_error: Option<String>,
    pub scan_fallbacks: u64,
    /// `GET /v1/sinks/{id}/health` after the drain.
    pub health: Option<Value>,
    /// The sink could not be deleted (message).
    pub delete_error: Option<String>,
}

impl Completeness {
    pub fn missing(&self) -> u64 {
        self.gaps.missing
    }

    fn to_json(&self) -> Value {
        json!({
            "offsets": [self.range.0, self.range.1],
            "expected": self.expected,
            "delivered": self.delivered,
            "missing": self.missing(),
            "missing_runs": self.gaps.runs,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "max_offset_received": self.max_offset_received,
            "drain_s": self.drain_secs.map(round3),
            "webhook_requests": self.requests,
            "webhook_body_bytes": self.body_bytes,
            "mean_events_per_request": (self.requests > 0)
                .then(|| round1((self.delivered + self.duplicates) as f64 / self.requests as f64)),
            "receiver_errors": self.receiver_errors,
            "receiver_first_error": self.receiver_first_error,
            "scan_fallbacks": self.scan_fallbacks,
            "sink_health": self.health,
            "sink_delete_error": self.delete_error,
        })
    }

    /// Problems worth failing the run for.
    pub fn failures(&self, scenario: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing() > 0 {
            out.push(format!(
                "{scenario}: {} of {} events never reached the receiver (first missing runs {:?}){}",
                self.missing(),
                self.expected,
                self.gaps.runs,
                if self.drain_secs.is_none() {
                    " — not drained within the timeout"
                } else {
                    ""
                }
            ));
        }
        if self.unexpected > 0 {
            out.push(format!(
                "{scenario}: {} offsets received outside the tenant's range {:?}",
                self.unexpected, self.range
            ));
        }
        if self.receiver_errors > 0 {
            out.push(format!(
                "{scenario}: {} bad webhook requests (first: {})",
                self.receiver_errors,
                self.receiver_first_error.as_deref().unwrap_or("?")
            ));
        }
        if let Some(e) = &self.delete_error {
            out.push(format!("{scenario}: deleting the sink: {e}"));
        }
        out
    }
}

/// Waits until the receiver holds all of `lo..=hi` for `tenant`, or `timeout` passes from
/// `since`. Returns the drain time measured from `since` to the last new receipt.
async fn drain(receiver: &Receiver, tenant: &str, lo: u64, hi: u64, since: Instant, timeout: Duration) -> Option<f64> {
    let expected = hi.saturating_sub(lo) + u64::from(hi >= lo);
    loop {
        {
            let books = receiver.books();
            if books.count_in(tenant, lo, hi) >= expected {
                let last = books.last_new.unwrap_or(since);
                return Some(last.saturating_duration_since(since).as_secs_f64());
            }
        }
        if since.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn completeness(receiver: &Receiver, tenant: &str, lo: u64, hi: u64, drain_secs: Option<f64>) -> Completeness {
    let books = receiver.books();
    let expected = hi.saturating_sub(lo) + u64::from(hi >= lo);
    let (delivered, duplicates, distinct, max, gaps) = match books.offsets(tenant) {
        Some(set) => (
            set.count_in(lo, hi),
            set.duplicates(),
            set.distinct(),
            set.max(),
            set.gaps(lo, hi),
        ),
        None => (
            0,
            0,
            0,
            0,
            Gaps {
                missing: expected,
                runs: if expected > 0 { vec![(lo, hi)] } else { vec![] },
            },
        ),
    };
    let other_tenants: u64 = books
        .tenants
        .iter()
        .filter(|(t, _)| t.as_str() != tenant)
        .map(|(_, s)| s.distinct())
        .sum();
    Completeness {
        range: (lo, hi),
        expected,
        delivered,
        duplicates,
        unexpected: distinct - delivered + other_tenants,
        max_offset_received: max,
        gaps,
        drain_secs,
        requests: books.requests,
        body_bytes: books.body_bytes,
        receiver_errors: books.bad_requests,
        receiver_first_error: books.first_error.clone(),
        scan_fallbacks: books.scan_fallbacks,
        health: None,
        delete_error: None,
    }
}

/// Final health, deletion, and the receiver's verdict.
async fn finish(mut sink: SinkHandle, receiver: &Receiver, lo: u64, hi: u64, drain_secs: Option<f64>) -> Completeness {
    let health = match sink.settled_health().await {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("warning: sink health: {e:#}");
            None
        }
    };
    let tenant = sink.tenant.clone();
    let delete_error = sink.delete().await.err().map(|e| format!("{e:#}"));
    let mut c = completeness(receiver, &tenant, lo, hi, drain_secs);
    c.health = health;
    c.delete_error = delete_error;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_body_is_a_webhook_with_start_now_and_no_flush_wait() {
        let b = SinkSettings {
            max_events: 1000,
            max_in_flight: 4,
        }
        .body("n", "t", "http://127.0.0.1:1/hook");
        assert_eq!(b["kind"], "webhook");
        assert_eq!(b["start_at"], "now");
        assert_eq!(b["batch"]["max_events"], 1000);
        assert_eq!(b["batch"]["flush_interval_ms"], 0);
        assert_eq!(b["max_in_flight"], 4);
        assert_eq!(b["config"]["url"], "http://127.0.0.1:1/hook");
    }

    #[test]
    fn reads_prometheus_values() {
        let text = "# TYPE auditrelay_commit_group_events summary\n\
                    auditrelay_commit_group_events{quantile=\"0.5\"} 3300\n\
                    auditrelay_commit_group_events_sum 782100\n\
                    auditrelay_commit_group_events_count 238\n\
                    auditrelay_sink_delivered_batches_total{sink=\"a\"} 10\n\
                    auditrelay_sink_delivered_batches_total{sink=\"b\"} 5\n";
        assert_eq!(prom_value(text, "auditrelay_commit_group_events_count"), Some(238.0));
        assert_eq!(prom_value(text, "auditrelay_commit_group_events_sum"), Some(782100.0));
        assert_eq!(prom_value(text, "auditrelay_sink_delivered_batches_total"), Some(15.0));
        // A prefix of another metric's name is not that metric.
        assert_eq!(prom_value(text, "auditrelay_commit_group"), None);
        assert_eq!(prom_value(text, "missing"), None);
        assert_eq!(groups_between(Some(Some(10)), Some(Some(25))), Some(15));
        assert_eq!(groups_between(Some(None), Some(Some(25))), Some(25));
        assert_eq!(groups_between(None, Some(Some(25))), None);
        assert_eq!(groups_between(Some(Some(1)), Some(None)), None);
    }

    #[test]
    fn completeness_flags_missing_and_unexpected() {
        let c = Completeness {
            range: (1, 10),
            expected: 10,
            delivered: 8,
            unexpected: 1,
            gaps: Gaps {
                missing: 2,
                runs: vec![(4, 5)],
            },
            drain_secs: None,
            ..Completeness::default()
        };
        let f = c.failures("deliver-100");
        assert_eq!(f.len(), 2);
        assert!(f[0].contains("2 of 10 events") && f[0].contains("not drained"));
        assert!(Completeness::default().failures("x").is_empty());
    }
}
