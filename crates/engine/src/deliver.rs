//! One batch, from first attempt to verdict: the retry loop. The sink classifies each attempt;
//! this decides what follows (invariant *sinks classify, the engine decides*): wait for the breaker, bound the attempt by the
//! sink's timeout, back off with full jitter (never sooner than `Retry-After`), and stop at the
//! attempt limit. What a verdict means for cursors, dead letters and pausing is the caller's.

use std::time::{Duration, Instant};

use auditrelay_core::StoredEvent;
use auditrelay_sinks::{AttemptReport, Batch, Outcome};
use auditrelay_store::DeliveryAttempt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::breaker::Permit;
use crate::shared::DeliveryCtx;
use crate::status::LastError;

/// A contiguous piece of one tenant's log, prepared for delivery.
pub struct BatchJob {
    pub tenant: String,
    /// The matching events, in offset order (may be empty: a pure cursor advance past events
    /// the sink's filter skips).
    pub events: Vec<StoredEvent>,
    /// Where the cursor goes once this job is done.
    pub commit_to: u64,
    /// Set for deliveries beside the cursor (a replay): it makes their batch ids differ from
    /// the live delivery of the same range, so a receiver that dedupes on `webhook-id` does
    /// not drop a replay the operator asked for.
    pub id_salt: Option<String>,
}

impl BatchJob {
    pub fn first_offset(&self) -> u64 {
        self.events.first().map_or(self.commit_to, |e| e.offset)
    }
    pub fn last_offset(&self) -> u64 {
        self.events.last().map_or(self.commit_to, |e| e.offset)
    }
    /// Stable for the same range, so a receiver can drop a re-delivery (webhook-id).
    pub fn batch_id(&self, sink_id: &str) -> String {
        let base = format!(
            "{sink_id}_{}_{}-{}",
            self.tenant,
            self.first_offset(),
            self.last_offset()
        );
        match &self.id_salt {
            Some(salt) => format!("{base}_{salt}"),
            None => base,
        }
    }
}

/// Events of a batch that end in a dead letter: the range, how many, why, and every attempt.
#[derive(Debug)]
pub struct DeadEvents {
    pub first_offset: u64,
    pub last_offset: u64,
    pub count: u64,
    pub reason: String,
    /// JSON array of the attempts.
    pub attempts: Value,
}

impl DeadEvents {
    pub fn into_dead_letter(self, sink_id: &str, tenant: &str, reason_prefix: &str) -> auditrelay_store::DeadLetter {
        auditrelay_store::DeadLetter {
            id: auditrelay_core::ids::new_prefixed_id("dl"),
            sink_id: sink_id.to_owned(),
            tenant_id: tenant.to_owned(),
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            event_count: self.count,
            reason: format!("{reason_prefix}{}", self.reason),
            attempts: self.attempts.to_string(),
            created_at: auditrelay_core::time::now_rfc3339(),
        }
    }
}

#[derive(Debug)]
pub enum Verdict {
    /// Accepted; `rejected` lists single events the receiver refused for good inside an
    /// otherwise accepted batch (Elastic item errors), each to become its own dead letter.
    Delivered { rejected: Vec<DeadEvents> },
    /// Every attempt failed, or the receiver refused the batch for good: the events still
    /// outstanding become one dead letter.
    Exhausted(DeadEvents),
    /// The receiver says the sink itself is wrong (401/403/404/410): pause, keep the batch.
    Misconfigured { reason: String },
    /// Stopped (shutdown, pause, reconfiguration) before a verdict.
    Abandoned,
}

/// The report of one attempt plus its timing.
pub struct TimedAttempt {
    pub report: AttemptReport,
    pub latency: Duration,
}

/// Makes one attempt bounded by the sink's timeout.
pub async fn attempt_once(ctx: &DeliveryCtx, job: &BatchJob) -> TimedAttempt {
    let batch_id = job.batch_id(&ctx.sink_id);
    let batch = Batch {
        sink_id: &ctx.sink_id,
        tenant_id: &job.tenant,
        batch_id: &batch_id,
        events: &job.events,
    };
    let started = Instant::now();
    let timeout = Duration::from_millis(ctx.spec.timeout_ms);
    let report = match tokio::time::timeout(timeout, ctx.sink.deliver(&batch)).await {
        Ok(report) => report,
        Err(_) => AttemptReport {
            outcome: Outcome::Retry { after: None },
            status: None,
            error: Some(format!("timed out after {} ms", ctx.spec.timeout_ms)),
        },
    };
    TimedAttempt {
        report,
        latency: started.elapsed(),
    }
}

pub(crate) fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Delivered => "delivered",
        Outcome::Partial { .. } => "partial",
        Outcome::Retry { .. } => "retry",
        Outcome::Reject => "rejected",
        Outcome::Misconfigured => "misconfigured",
    }
}

fn error_text(report: &AttemptReport) -> String {
    report.error.clone().unwrap_or_else(|| match report.status {
        Some(s) => format!("HTTP {s}"),
        None => "failed".into(),
    })
}

/// Records an attempt in the delivery log, the status and the metrics. Returns the attempt as
/// the JSON a dead letter keeps.
pub fn observe(
    ctx: &DeliveryCtx,
    job: &BatchJob,
    purpose: &str,
    attempt_no: u32,
    timed: &TimedAttempt,
    will_retry: bool,
) -> Value {
    let at = auditrelay_core::time::now_rfc3339();
    let latency_ms = timed.latency.as_secs_f64() * 1000.0;
    let report = &timed.report;
    let outcome = outcome_name(&report.outcome);
    let sink = ctx.sink_id.clone();
    metrics::counter!(crate::metrics::ATTEMPTS, "sink" => sink.clone(), "outcome" => outcome).increment(1);
    let events = match &report.outcome {
        Outcome::Partial { retry, rejected, .. } => {
            job.events.len().saturating_sub(retry.len() + rejected.len()) as u64
        }
        _ => job.events.len() as u64,
    };
    match &report.outcome {
        Outcome::Delivered | Outcome::Partial { .. } => {
            ctx.status.on_delivered(events, latency_ms, at.clone());
            // Accepted, yet the receiver said something was wrong (an OTLP `partial_success`:
            // records it dropped for good and asked us not to resend): health shows it.
            if let Some(note) = &report.error {
                ctx.status.on_receiver_note(LastError {
                    at: at.clone(),
                    tenant: job.tenant.clone(),
                    status: report.status,
                    message: note.clone(),
                });
            }
            metrics::counter!(crate::metrics::DELIVERED_EVENTS, "sink" => sink.clone()).increment(events);
            metrics::counter!(crate::metrics::DELIVERED_BATCHES, "sink" => sink.clone()).increment(1);
            metrics::histogram!(crate::metrics::DELIVERY_LATENCY, "sink" => sink).record(timed.latency.as_secs_f64());
        }
        other => {
            let last = LastError {
                at: at.clone(),
                tenant: job.tenant.clone(),
                status: report.status,
                message: error_text(report),
            };
            metrics::counter!(crate::metrics::FAILED_ATTEMPTS, "sink" => sink.clone()).increment(1);
            if matches!(other, Outcome::Retry { .. }) {
                if will_retry {
                    metrics::counter!(crate::metrics::RETRIES, "sink" => sink).increment(1);
                }
                ctx.status.on_transient_failure(Instant::now(), last, will_retry);
            } else {
                ctx.status.on_refused(last);
            }
        }
    }
    ctx.recorder.record(DeliveryAttempt {
        sink_id: ctx.sink_id.clone(),
        tenant_id: job.tenant.clone(),
        first_offset: job.first_offset(),
        last_offset: job.last_offset(),
        event_count: events,
        purpose: purpose.to_owned(),
        attempt: attempt_no,
        outcome: outcome.to_owned(),
        status: report.status,
        latency_ms,
        error: report.error.clone(),
        at: at.clone(),
    });
    json!({
        "attempt": attempt_no,
        "at": at,
        "outcome": outcome,
        "status": report.status,
        "error": report.error,
        "latency_ms": round_ms(latency_ms),
    })
}

/// Milliseconds to three decimals (microseconds), as answers and dead letters show them.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Sleeps unless `stop` fires first; `false` when stopped.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Delivers `job` with retries until a verdict. `stop` ends waiting (breaker, backoff) at
/// once; an attempt already on the wire finishes first (bounded by the timeout), so a drain
/// never cuts a receiver off mid-request.
pub async fn deliver_with_retries(
    ctx: &DeliveryCtx,
    job: &BatchJob,
    purpose: &str,
    stop: &CancellationToken,
) -> Verdict {
    let policy = ctx.spec.retry;
    let mut attempts = Vec::new();
    let mut attempt_no = 0u32;
    // After a partial answer only the events still outstanding go again.
    let mut narrowed: Option<BatchJob> = None;
    let mut rejected: Vec<DeadEvents> = Vec::new();
    loop {
        // The breaker is the sink's, shared by every lane: wait out an open circuit — until its
        // cooldown ends or another lane's verdict changes it, never by polling.
        loop {
            if stop.is_cancelled() {
                return Verdict::Abandoned;
            }
            // Subscribed before asking, so a verdict between the two still wakes us.
            let changed = ctx.status.breaker_changed().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match ctx.status.permit(Instant::now()) {
                Permit::Go => break,
                Permit::Wait(d) => {
                    tokio::select! {
                        _ = stop.cancelled() => return Verdict::Abandoned,
                        _ = &mut changed => {}
                        _ = tokio::time::sleep(d) => {}
                    }
                }
            }
        }
        let current = narrowed.as_ref().unwrap_or(job);
        attempt_no += 1;
        let timed = attempt_once(ctx, current).await;
        let last = attempt_no >= policy.max_attempts;
        let retryable = match &timed.report.outcome {
            Outcome::Retry { .. } => true,
            Outcome::Partial { retry, .. } => !retry.is_empty(),
            _ => false,
        };
        attempts.push(observe(ctx, current, purpose, attempt_no, &timed, retryable && !last));
        let dead = |reason: String, attempts: &Vec<Value>| DeadEvents {
            first_offset: current.first_offset(),
            last_offset: current.last_offset(),
            count: current.events.len() as u64,
            reason,
            attempts: Value::Array(attempts.clone()),
        };
        let after = match timed.report.outcome {
            Outcome::Delivered => return Verdict::Delivered { rejected },
            Outcome::Misconfigured => {
                return Verdict::Misconfigured {
                    reason: format!(
                        "the receiver refused the sink's configuration: {}",
                        error_text(&timed.report)
                    ),
                }
            }
            Outcome::Reject => {
                return Verdict::Exhausted(dead(
                    format!("rejected by the receiver: {}", error_text(&timed.report)),
                    &attempts,
                ))
            }
            Outcome::Partial {
                retry,
                after,
                rejected: refused,
            } => {
                for (i, why) in refused {
                    if let Some(e) = current.events.get(i) {
                        rejected.push(DeadEvents {
                            first_offset: e.offset,
                            last_offset: e.offset,
                            count: 1,
                            reason: format!("rejected by the receiver: {why}"),
                            attempts: Value::Array(attempts.clone()),
                        });
                    }
                }
                let outstanding: Vec<StoredEvent> =
                    retry.iter().filter_map(|&i| current.events.get(i).cloned()).collect();
                if outstanding.is_empty() {
                    return Verdict::Delivered { rejected };
                }
                narrowed = Some(BatchJob {
                    tenant: job.tenant.clone(),
                    events: outstanding,
                    commit_to: job.commit_to,
                    id_salt: job.id_salt.clone(),
                });
                if last {
                    let current = narrowed.as_ref().unwrap_or(job);
                    return Verdict::Exhausted(DeadEvents {
                        first_offset: current.first_offset(),
                        last_offset: current.last_offset(),
                        count: current.events.len() as u64,
                        reason: format!("{attempt_no} attempts failed for some events of the batch"),
                        attempts: Value::Array(attempts),
                    });
                }
                after
            }
            Outcome::Retry { after } => {
                if last {
                    return Verdict::Exhausted(dead(
                        format!("{} attempts failed; last: {}", attempt_no, error_text(&timed.report)),
                        &attempts,
                    ));
                }
                after
            }
        };
        let wait = backoff::delay(&policy, attempt_no, rand::random::<f64>(), after);
        ctx.status.backoff_started();
        let slept = sleep_or_stop(wait, stop).await;
        ctx.status.backoff_ended();
        if !slept {
            ctx.status.on_abandoned(Instant::now());
            return Verdict::Abandoned;
        }
    }
}
