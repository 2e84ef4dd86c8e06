//! What each verdict does to the cursor, dead letters and the sink's state: a refusal is
//! dead-lettered and delivery goes on; `on_exhausted: pause` pauses after writing the dead
//! letter; a misconfigured sink pauses without moving the cursor; partial answers narrow the
//! retry and dead-letter refused events one by one.

use std::time::Duration;

use auditrelay_store::SinkStore;
use serde_json::json;

use crate::harness::{Harness, TENANT};
use crate::offsets;
use crate::scripted::{delivered, misconfigured, partial, reject, retry};

#[tokio::test]
async fn a_rejected_batch_is_dead_lettered_without_a_retry_and_delivery_continues() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"batch": {"max_events": 2}})).await;
    sink.answers([delivered(), reject(), delivered()]);
    h.append(TENANT, 6).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 6).await;
    engine.shutdown().await;
    assert_eq!(offsets(&sink.calls()), [vec![1, 2], vec![3, 4], vec![5, 6]]);
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].first_offset, dead[0].last_offset, dead[0].event_count),
        (3, 4, 2)
    );
    assert!(
        dead[0].reason.starts_with("rejected by the receiver"),
        "{}",
        dead[0].reason
    );
    assert!(!h.row(&row.id).await.paused);
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// `on_exhausted: pause`: the exhausted batch is dead-lettered, the cursor passes it, the sink
/// pauses and sends nothing more; resumed, it goes on after the dead-lettered batch.
#[tokio::test]
async fn on_exhausted_pause_dead_letters_the_batch_then_pauses_until_resumed() {
    let h = Harness::new().await;
    let (row, sink) = h
        .create_sink(json!({"batch": {"max_events": 2}, "retry": {"max_attempts": 2}, "on_exhausted": "pause"}))
        .await;
    sink.answers([retry(None), retry(None)]);
    h.append(TENANT, 4).await;
    let engine = h.engine();

    let paused = h.wait_paused(&row.id).await;
    let reason = paused.pause_reason.unwrap_or_default();
    assert!(reason.contains("on_exhausted = pause"), "{reason}");
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].first_offset, dead[0].last_offset), (1, 2));
    h.wait_cursor(&row.id, TENANT, 2).await;
    assert_eq!(
        offsets(&sink.calls()),
        [vec![1, 2], vec![1, 2]],
        "a paused sink sent more"
    );

    h.store.set_sink_paused(&row.id, false, None).await.expect("resume");
    engine.resumed(&row.sink_id());
    h.wait_cursor(&row.id, TENANT, 4).await;
    engine.shutdown().await;
    assert_eq!(offsets(&sink.calls()), [vec![1, 2], vec![1, 2], vec![3, 4]]);
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// A misconfigured answer (401/403/404/410) pauses the sink and keeps the batch: no dead
/// letter, the cursor stays; resumed, the same batch (same id) goes again.
#[tokio::test]
async fn misconfigured_pauses_the_sink_and_keeps_the_batch_where_it_is() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({})).await;
    sink.answers([misconfigured()]);
    h.append(TENANT, 2).await;
    let engine = h.engine();

    let paused = h.wait_paused(&row.id).await;
    let reason = paused.pause_reason.unwrap_or_default();
    assert!(reason.contains("refused the sink's configuration"), "{reason}");
    assert_eq!(h.cursor(&row.id, TENANT).await, Some(0));
    assert!(h.dead_letters(&row.id).await.is_empty());

    h.store.set_sink_paused(&row.id, false, None).await.expect("resume");
    engine.resumed(&row.sink_id());
    h.wait_cursor(&row.id, TENANT, 2).await;
    engine.shutdown().await;
    let calls = sink.calls();
    assert_eq!(offsets(&calls), [vec![1, 2], vec![1, 2]]);
    assert_eq!(calls[0].batch_id, calls[1].batch_id);
    assert!(h.dead_letters(&row.id).await.is_empty());
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// `PAUSE_AFTER_EXHAUSTED` batches dead-lettered in a row pause the sink.
#[tokio::test]
async fn ten_batches_dead_lettered_in_a_row_pause_the_sink() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"batch": {"max_events": 1}})).await;
    sink.answers((0..12).map(|_| reject()));
    h.append(TENANT, 12).await;
    let engine = h.engine();

    let paused = h.wait_paused(&row.id).await;
    let reason = paused.pause_reason.unwrap_or_default();
    assert!(reason.starts_with("10 batches in a row"), "{reason}");
    h.wait_cursor(&row.id, TENANT, 10).await;
    engine.shutdown().await;
    assert_eq!(sink.calls().len(), auditrelay_engine::PAUSE_AFTER_EXHAUSTED as usize);
    assert_eq!(h.dead_letters(&row.id).await.len(), 10);
    assert_eq!(h.cursor(&row.id, TENANT).await, Some(10));
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// A partial answer: accepted events are done, the refused one becomes a dead letter of its
/// own, and only the events to retry go again — no sooner than the answer's `after`.
#[tokio::test]
async fn a_partial_answer_retries_only_the_outstanding_events_and_dead_letters_the_refused_one() {
    let h = Harness::new().await;
    let after = Duration::from_millis(300);
    let (row, sink) = h.create_sink(json!({})).await;
    sink.answers([
        partial(vec![1, 3], Some(after), vec![(2, "mapping conflict")]),
        delivered(),
    ]);
    h.append(TENANT, 4).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 4).await;
    engine.shutdown().await;
    let calls = sink.calls();
    assert_eq!(offsets(&calls), [vec![1, 2, 3, 4], vec![2, 4]]);
    let (first_answered, _) = calls[0].answered.clone().expect("answered");
    assert!(
        calls[1].received - first_answered >= after,
        "the retry came before `after`"
    );
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].first_offset, dead[0].last_offset, dead[0].event_count),
        (3, 3, 1)
    );
    assert!(dead[0].reason.contains("mapping conflict"), "{}", dead[0].reason);
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// Events a partial answer keeps sending back until the attempts run out are dead-lettered
/// alone; their accepted neighbours are not.
#[tokio::test]
async fn events_still_outstanding_after_max_attempts_are_dead_lettered_without_their_neighbours() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"retry": {"max_attempts": 2}})).await;
    sink.answers([partial(vec![0], None, vec![]), retry(None)]);
    h.append(TENANT, 3).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 3).await;
    engine.shutdown().await;
    assert_eq!(offsets(&sink.calls()), [vec![1, 2, 3], vec![1]]);
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].first_offset, dead[0].last_offset, dead[0].event_count),
        (1, 1, 1)
    );
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}
