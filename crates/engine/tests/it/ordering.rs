//! Several batches in flight, completing out of order: the cursor only advances over a
//! contiguous run of finished batches (invariant *a cursor never passes an event its receiver
//! did not accept*).

use serde_json::json;

use crate::harness::{Harness, TENANT};
use crate::offsets;
use crate::scripted::{delivered, Gate, Step};

#[tokio::test]
async fn with_three_batches_in_flight_finishing_newest_first_the_cursor_waits_for_the_oldest() {
    let h = Harness::new().await;
    let (row, sink) = h
        .create_sink(json!({"batch": {"max_events": 2}, "max_in_flight": 3}))
        .await;
    let gates = [Gate::new(), Gate::new(), Gate::new()];
    sink.script(gates.iter().map(|g| Step::Held(g.clone(), delivered())));
    h.append(TENANT, 6).await;
    let engine = h.engine();

    let calls = sink
        .wait_calls("three batches in flight at once", |c| c.len() == 3)
        .await;
    assert_eq!(offsets(&calls), [vec![1, 2], vec![3, 4], vec![5, 6]]);
    // The newest, then the middle batch are accepted; the oldest is still out.
    gates[2].open();
    sink.wait_answered(1).await;
    gates[1].open();
    sink.wait_answered(2).await;
    assert_eq!(
        h.cursor(&row.id, TENANT).await,
        Some(0),
        "the cursor passed batch 1-2 in flight"
    );

    gates[0].open();
    h.wait_cursor(&row.id, TENANT, 6).await;
    engine.shutdown().await;
    // Every commit, not only the ones sampled above, stayed behind the unaccepted batch.
    let commits = h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
    assert_eq!(commits.last(), Some(&6));
    assert!(
        commits.iter().all(|c| [2, 4, 6].contains(c)),
        "a commit inside a batch: {commits:?}"
    );
}
