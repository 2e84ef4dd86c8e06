//! Deliveries beside the cursor: replay of a range and dead-letter retry. Neither moves the
//! sink's cursor.

use auditrelay_core::ids::TenantId;
use serde_json::{json, Value};

use crate::harness::{eventually, Harness, TENANT};
use crate::offsets;
use crate::scripted::{reject, retry};

/// A replay sends exactly `from..=to` in batches of `max_events`, under batch ids of its own
/// (a receiver deduplicating on them must not drop it), and leaves the cursor where it was.
#[tokio::test]
async fn a_replay_resends_exactly_its_range_under_new_batch_ids_and_leaves_the_cursor() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"batch": {"max_events": 4}})).await;
    h.append(TENANT, 10).await;
    let engine = h.engine();
    h.wait_cursor(&row.id, TENANT, 10).await;
    let live = sink.calls();
    assert_eq!(offsets(&live), [vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]);

    let info = engine
        .start_replay(&row, &TenantId::from_stored(TENANT), 3, 7)
        .expect("start replay");
    let (e, id, replay) = (&engine, &row.sink_id(), &info.id);
    eventually("the replay to complete", move || async move {
        e.replay(id, replay)
            .is_some_and(|r| r.state == auditrelay_engine::ReplayState::Completed)
    })
    .await;
    let done = engine.replay(&row.sink_id(), &info.id).expect("replay state");
    assert_eq!(
        (done.delivered_events, done.dead_lettered_batches, done.error),
        (5, 0, None)
    );

    let replayed = &sink.calls()[live.len()..];
    assert_eq!(offsets(replayed), [vec![3, 4, 5, 6], vec![7]]);
    for call in replayed {
        assert!(call.batch_id.contains(info.id.as_str()), "{}", call.batch_id);
        assert!(live.iter().all(|l| l.batch_id != call.batch_id));
    }
    assert_eq!(h.cursor(&row.id, TENANT).await, Some(10));
    engine.shutdown().await;
}

/// Retrying a dead letter sends its range once: refused again, the dead letter stays with the
/// attempt added to its history; delivered, it is deleted. The cursor never moves.
#[tokio::test]
async fn a_dead_letter_retry_resends_its_range_and_deletes_it_only_once_delivered() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"batch": {"max_events": 2}})).await;
    sink.answers([reject()]);
    h.append(TENANT, 4).await;
    let engine = h.engine();
    h.wait_cursor(&row.id, TENANT, 4).await;
    let dead = h.dead_letters(&row.id).await;
    assert_eq!(dead.len(), 1);
    let live_calls = sink.calls().len();

    sink.answers([retry(None)]);
    let failed = engine.retry_dead_letter(&row, &dead[0]).await.expect("retry");
    assert!(!failed.delivered);
    assert_eq!(failed.outcome, "retry");
    let kept = h.dead_letters(&row.id).await;
    assert_eq!(kept.len(), 1, "a failed retry deleted the dead letter");
    let history: Vec<Value> = serde_json::from_str(&kept[0].attempts).expect("attempts JSON");
    assert_eq!(history.len(), 2, "the failed retry joins the history: {history:?}");

    let ok = engine.retry_dead_letter(&row, &kept[0]).await.expect("retry");
    assert!(ok.delivered);
    assert!(h.dead_letters(&row.id).await.is_empty());
    assert_eq!(offsets(&sink.calls()[live_calls..]), [vec![1, 2], vec![1, 2]]);
    assert_eq!(h.cursor(&row.id, TENANT).await, Some(4));
    engine.shutdown().await;
}
