//! The retry loop: `Retry-After` as a floor, the attempt limit, the per-attempt timeout, and the
//! sink's circuit breaker (invariant *sinks classify, the engine decides*).

use auditrelay_engine::SinkState;
use std::time::Duration;

use auditrelay_store::Catalog;
use serde_json::{json, Value};

use crate::harness::{eventually, Harness, TENANT};
use crate::offsets;
use crate::scripted::{delivered, retry, Gate, Step};

/// A receiver's `Retry-After` is a floor: with backoffs of 1 ms the next attempt still waits
/// for it. The retry carries the same batch id, so a receiver can drop a duplicate.
#[tokio::test]
async fn the_next_attempt_waits_at_least_retry_after_and_keeps_the_batch_id() {
    let h = Harness::new().await;
    let after = Duration::from_millis(400);
    let (row, sink) = h
        .create_sink(json!({"retry": {"initial_backoff_ms": 1, "max_backoff_ms": 1}}))
        .await;
    sink.answers([retry(Some(after)), delivered()]);
    h.append(TENANT, 3).await;
    let engine = h.engine();

    let calls = sink.wait_answered(2).await;
    let (first_answered, _) = calls[0].answered.clone().expect("answered");
    let gap = calls[1].received - first_answered;
    assert!(
        gap >= after,
        "came back after {gap:?}, sooner than Retry-After {after:?}"
    );
    assert_eq!(calls[0].batch_id, calls[1].batch_id);
    assert_eq!(offsets(&calls), [vec![1, 2, 3], vec![1, 2, 3]]);
    h.wait_cursor(&row.id, TENANT, 3).await;
    engine.shutdown().await;
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// After `max_attempts` transient failures the batch becomes one dead letter carrying every
/// attempt, the cursor passes it, and the next batch goes.
#[tokio::test]
async fn a_batch_that_fails_max_attempts_times_is_dead_lettered_with_every_attempt() {
    let h = Harness::new().await;
    let (row, sink) = h
        .create_sink(json!({"batch": {"max_events": 2}, "retry": {"max_attempts": 4}}))
        .await;
    sink.answers([retry(None), retry(None), retry(None), retry(None)]);
    h.append(TENANT, 4).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 4).await;
    engine.shutdown().await;
    let calls = sink.calls();
    assert_eq!(
        offsets(&calls),
        [vec![1, 2], vec![1, 2], vec![1, 2], vec![1, 2], vec![3, 4]],
        "exactly max_attempts tries, then the next batch"
    );
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    let dl = &dead[0];
    assert_eq!((dl.first_offset, dl.last_offset, dl.event_count), (1, 2, 2));
    assert!(dl.reason.starts_with("4 attempts failed"), "{}", dl.reason);
    let attempts: Vec<Value> = serde_json::from_str(&dl.attempts).expect("attempts JSON");
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a["outcome"] == "retry" && a["status"] == 503));
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// An attempt that outlives `timeout_ms` is dropped and counts as transient: the batch goes
/// again and is delivered.
#[tokio::test]
async fn an_attempt_past_timeout_ms_is_dropped_and_retried() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"timeout_ms": 200})).await;
    let never = Gate::new();
    sink.script([Step::Held(never, delivered())]);
    h.append(TENANT, 2).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 2).await;
    engine.shutdown().await;
    let calls = sink.calls();
    assert_eq!(offsets(&calls), [vec![1, 2], vec![1, 2]]);
    assert!(
        calls[0].answered.is_none(),
        "the held attempt was dropped, not answered"
    );
    let gap = calls[1].received - calls[0].received;
    assert!(
        gap >= Duration::from_millis(200),
        "retried after {gap:?}, before the timeout"
    );
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// Two lanes (two tenants) share the sink's breaker. After `failure_threshold` failures it
/// opens: nothing goes for `cooldown_ms`; then exactly one trial goes while the other lane
/// waits; a failed trial re-opens it for a full cooldown; a successful one closes it.
#[tokio::test]
async fn the_breaker_opens_at_the_threshold_and_a_single_half_open_trial_decides() {
    let h = Harness::new().await;
    h.store.create_tenant("beta", "Beta").await.expect("tenant");
    let cooldown = Duration::from_millis(400);
    let (row, sink) = h
        .create_sink(json!({
            "tenants": [TENANT, "beta"],
            "retry": {"max_attempts": 10, "initial_backoff_ms": 1, "max_backoff_ms": 1},
            "breaker": {"failure_threshold": 2, "cooldown_ms": 400},
        }))
        .await;
    let trial = Gate::new();
    sink.script([
        Step::Answer(retry(None)),
        Step::Answer(retry(None)),
        // The first trial is held while we check that the other lane does not send.
        Step::Held(trial.clone(), retry(None)),
        Step::Answer(delivered()),
    ]);
    h.append(TENANT, 1).await;
    h.append("beta", 1).await;
    let engine = h.engine();

    sink.wait_answered(2).await;
    let (e, hh, id) = (&engine, &h, row.id.as_str());
    let state = move || async move { e.health(&hh.row(id).await).await.expect("health").state };
    eventually("the circuit to open", move || async move {
        state().await == SinkState::CircuitOpen
    })
    .await;

    let calls = sink.wait_calls("the half-open trial", |c| c.len() >= 3).await;
    let (opened_at, _) = calls[1].answered.clone().expect("answered");
    let waited = calls[2].received - opened_at;
    assert!(waited >= cooldown, "the trial went {waited:?} after the circuit opened");
    // A negative check, bounded: with the trial out, the other lane polls every 50 ms and
    // must keep waiting.
    assert!(
        !sink.calls_within(Duration::from_millis(300), |c| c.len() >= 4).await,
        "a second attempt went while the half-open trial was out: {:#?}",
        sink.calls()
    );
    assert_eq!(state().await, SinkState::CircuitOpen);

    trial.open();
    let calls = sink.wait_answered(5).await;
    let (trial_failed_at, _) = calls[2].answered.clone().expect("answered");
    let waited = calls[3].received - trial_failed_at;
    assert!(
        waited >= cooldown,
        "the second trial went {waited:?} after the first failed"
    );
    h.wait_cursor(&row.id, TENANT, 1).await;
    h.wait_cursor(&row.id, "beta", 1).await;
    let health = engine.health(&h.row(&row.id).await).await.expect("health");
    assert_eq!(health.state, SinkState::Active);
    assert_eq!(health.consecutive_failures, 0);
    engine.shutdown().await;
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
    h.journal.assert_commits_never_pass_unaccepted(&row.id, "beta");
}
