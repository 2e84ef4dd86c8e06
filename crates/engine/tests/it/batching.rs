//! Batches form by size (`batch.max_events`) or by age (`batch.flush_interval_ms`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Harness, TENANT};
use crate::offsets;

/// A batch leaves as soon as it holds `max_events`, without waiting out a long flush interval;
/// the short remainder is held back (and the cursor stays before it) until the interval ends.
/// Also: the factory got the sink's secrets opened from the sealed row.
#[tokio::test]
async fn a_full_batch_goes_at_once_and_the_remainder_waits_for_the_flush_interval() {
    let h = Harness::new().await;
    let (row, sink) = h
        .create_sink(json!({"batch": {"max_events": 5, "flush_interval_ms": 60_000}}))
        .await;
    h.append(TENANT, 12).await;
    let engine = h.engine();

    h.wait_cursor(&row.id, TENANT, 10).await;
    assert_eq!(offsets(&sink.calls()), [vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9, 10]]);
    engine.shutdown().await;
    // The two left over were never sent, and the drain did not commit past them.
    assert_eq!(sink.calls().len(), 2);
    assert_eq!(h.cursor(&row.id, TENANT).await, Some(10));
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);

    let opened = h.sinks.opened_secrets.lock().expect("lock").clone();
    let (id, secrets) = opened.first().expect("the sink was built");
    assert_eq!(id, &row.id);
    assert_eq!(secrets.get("signing_secret"), Some(&format!("whsec_{}", row.id)));
}

/// A batch short of `max_events` waits `flush_interval_ms` for more, then goes whole.
#[tokio::test]
async fn a_short_batch_goes_whole_once_the_flush_interval_has_passed() {
    let h = Harness::new().await;
    let interval = Duration::from_millis(300);
    let (row, sink) = h
        .create_sink(json!({"batch": {"max_events": 100, "flush_interval_ms": 300}}))
        .await;
    let engine = h.engine();
    let before_append = Instant::now();
    h.append(TENANT, 3).await;

    let calls = sink.wait_calls("the first batch", |c| !c.is_empty()).await;
    assert_eq!(offsets(&calls), [vec![1, 2, 3]]);
    let waited = calls[0].received - before_append;
    assert!(waited >= interval, "sent after {waited:?}, before the flush interval");
    h.wait_cursor(&row.id, TENANT, 3).await;
    engine.shutdown().await;
}
