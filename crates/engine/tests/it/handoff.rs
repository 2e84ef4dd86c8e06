//! Engines stopping and starting on one store: a crash mid-delivery (at least once, no gap), a
//! drain handing over to the next engine, and leases moving a sink between two live engines.

use std::collections::BTreeMap;

use serde_json::json;

use crate::harness::{Harness, DEADLINE, TENANT};
use crate::scripted::{delivered, Call, Gate, ScriptedSink, Step};

/// How many times each offset was accepted by the receiver.
fn accepted(calls: &[Call]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for call in calls {
        if matches!(call.answered, Some((_, auditrelay_sinks::Outcome::Delivered))) {
            for o in &call.offsets {
                *seen.entry(*o).or_insert(0) += 1;
            }
        }
    }
    seen
}

fn once_each(range: std::ops::RangeInclusive<u64>) -> BTreeMap<u64, usize> {
    range.map(|o| (o, 1)).collect()
}

/// The engine runs on a runtime of its own; shutting that runtime down drops every task
/// mid-flight, like a killed process. Batch 1 was committed, batch 2 is on the wire, batches 3
/// and 4 were accepted behind it. The next engine (after the store is reopened from disk) must
/// start right after batch 1: batch 2 is delivered, nothing is skipped, and the price is
/// re-sending 3 and 4.
#[test]
fn a_crash_with_batches_in_flight_resumes_from_the_committed_cursor_without_a_gap() {
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    main.block_on(async move {
        let mut h = Harness::new().await;
        let (row, sink) = h
            .create_sink(json!({"batch": {"max_events": 3}, "max_in_flight": 3}))
            .await;
        h.append(TENANT, 15).await;
        let never = Gate::new();
        sink.script([
            Step::Answer(delivered()),
            Step::Held(never, delivered()),
            Step::Answer(delivered()),
            Step::Answer(delivered()),
        ]);
        let first = {
            let _in_doomed = doomed.enter();
            h.engine()
        };
        sink.wait_calls("batches 1, 3 and 4 accepted, batch 2 on the wire", |c| {
            c.len() == 4 && [0, 2, 3].iter().all(|&i| c[i].answered.is_some())
        })
        .await;
        h.wait_cursor(&row.id, TENANT, 3).await;
        doomed.shutdown_background();
        drop(first);

        h.reopen().await;
        assert_eq!(h.cursor(&row.id, TENANT).await, Some(3), "the cursor passed batch 2");
        let before = sink.calls().len();
        let second = h.engine();
        h.wait_cursor(&row.id, TENANT, 15).await;
        second.shutdown().await;

        let after_crash = &sink.calls()[before..];
        assert_eq!(
            after_crash[0].offsets,
            [4, 5, 6],
            "the new engine did not start after the cursor"
        );
        assert_eq!(accepted(after_crash), once_each(4..=15));
        // At least once overall: every offset accepted, 7..=12 twice (accepted, not committed).
        let all = accepted(&sink.calls());
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), (1..=15).collect::<Vec<_>>());
        h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
    });
}

/// A drained engine commits everything accepted, so the next engine on the store starts right
/// after it: no gap and, unlike a crash, no duplicate.
#[tokio::test]
async fn a_drained_engine_hands_over_to_the_next_without_a_gap_or_a_duplicate() {
    let h = Harness::new().await;
    let (row, sink) = h.create_sink(json!({"batch": {"max_events": 3}})).await;
    h.append(TENANT, 6).await;
    let first = auditrelay_engine::Engine::start(h.store(), h.config(std::sync::Arc::new(h.sinks.tagged("first"))));
    h.wait_cursor(&row.id, TENANT, 6).await;
    first.shutdown().await;

    h.append(TENANT, 6).await;
    let second = auditrelay_engine::Engine::start(h.store(), h.config(std::sync::Arc::new(h.sinks.tagged("second"))));
    h.wait_cursor(&row.id, TENANT, 12).await;
    second.shutdown().await;
    let calls = sink.calls();
    assert!(calls[..2].iter().all(|c| c.node.as_deref() == Some("first")));
    assert!(calls[2..].iter().all(|c| c.node.as_deref() == Some("second")));
    assert_eq!(accepted(&sink.calls()), once_each(1..=12));
    h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
}

/// Two live engines on one store with leases one node holds at a time (the PostgreSQL contract;
/// the embedded store grants every lease to every caller). Engine `a` takes both sinks; when
/// `b` joins, `a` sheds one above its fair share, drains it and releases the lease, and `b`
/// claims it. Each sink is driven by one engine at a time: its calls never interleave between
/// engines, and every event is delivered exactly once across the hand-off.
// Two engines on a multi-thread runtime, as in the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_moves_a_sink_between_two_live_engines_without_overlap_gap_or_duplicate() {
    let h = Harness::with_exclusive_leases().await;
    let (one, sink_one) = h.create_sink(json!({"name": "one"})).await;
    let (two, sink_two) = h.create_sink(json!({"name": "two"})).await;
    let engine_a = auditrelay_engine::Engine::start(h.store(), h.config(std::sync::Arc::new(h.sinks.tagged("a"))));
    h.append(TENANT, 4).await;
    wait_or_dump(&h, &one.id, 4, [&sink_one, &sink_two]).await;
    wait_or_dump(&h, &two.id, 4, [&sink_one, &sink_two]).await;

    let engine_b = auditrelay_engine::Engine::start(h.store(), h.config(std::sync::Arc::new(h.sinks.tagged("b"))));
    // Events arriving during the hand-off.
    h.append(TENANT, 4).await;
    let mut holders = h.store.lease_changes.subscribe();
    // `wait_for` answers with a read guard on the value: it must go at once, or the next
    // heartbeat's publication would block on it.
    let split = tokio::time::timeout(
        DEADLINE,
        holders.wait_for(|held| {
            let nodes: Vec<&String> = [&one.id, &two.id].iter().filter_map(|s| held.get(*s)).collect();
            nodes.len() == 2 && nodes[0] != nodes[1]
        }),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(
        split,
        "the sinks were not split between the engines: {:?}",
        h.store.lease_changes.borrow().clone()
    );
    h.append(TENANT, 4).await;
    wait_or_dump(&h, &one.id, 12, [&sink_one, &sink_two]).await;
    wait_or_dump(&h, &two.id, 12, [&sink_one, &sink_two]).await;
    engine_a.shutdown().await;
    engine_b.shutdown().await;

    let mut moved = 0;
    for (row, sink) in [(&one, &sink_one), (&two, &sink_two)] {
        let calls = sink.calls();
        assert_eq!(accepted(&calls), once_each(1..=12), "sink {}", row.id);
        assert_one_driver_at_a_time(sink);
        if calls.iter().any(|c| c.node.as_deref() == Some("b")) {
            moved += 1;
        }
        h.journal.assert_commits_never_pass_unaccepted(&row.id, TENANT);
    }
    assert_eq!(moved, 1, "exactly one sink moved to engine b");
}

/// [`Harness::wait_cursor`], failing with who holds which lease and what each sink got.
async fn wait_or_dump(h: &Harness, id: &str, at: u64, sinks: [&ScriptedSink; 2]) {
    let reached = tokio::time::timeout(DEADLINE, async {
        while h.cursor(id, TENANT).await.is_none_or(|c| c < at) {
            // Cursor commits have no signal of their own: poll.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok();
    assert!(
        reached,
        "the cursor of {id} did not reach {at}: cursor {:?}, leases {:?}, calls {:#?} / {:#?}",
        h.cursor(id, TENANT).await,
        h.store.lease_changes.borrow().clone(),
        sinks[0].calls(),
        sinks[1].calls()
    );
}

/// A sink's calls come from one engine, then the other: never back and forth, never overlapping.
fn assert_one_driver_at_a_time(sink: &ScriptedSink) {
    let calls = sink.calls();
    let mut drivers: Vec<&str> = calls.iter().filter_map(|c| c.node.as_deref()).collect();
    drivers.dedup();
    assert!(
        drivers.len() <= 2 && drivers.first() == Some(&"a"),
        "drivers in turn: {drivers:?}"
    );
    for pair in calls.windows(2) {
        if pair[0].node != pair[1].node {
            let (ended, _) = pair[0]
                .answered
                .clone()
                .expect("the old engine's last attempt finished");
            assert!(ended <= pair[1].received, "the two engines overlapped on one sink");
        }
    }
}
