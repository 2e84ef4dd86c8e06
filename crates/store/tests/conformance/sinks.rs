//! Store contract checks for sinks, dead letters, the delivery log, and `offset_at_time`.
//! Run on every backend by the `backend!` macro in `conformance.rs`.

use std::sync::Arc;

use auditrelay_store::{DeadLetter, DeliveryAttempt, SinkRow, Store, StoreError};

use super::events_at;

fn sink_row(id: &str, owner: Option<&str>) -> SinkRow {
    SinkRow {
        id: id.into(),
        owner_tenant: owner.map(str::to_owned),
        spec: format!(r#"{{"name":"{id}","kind":"webhook"}}"#),
        // Every byte value, NULs included: the blob must come back bit for bit.
        sealed_secrets: (0..=255u8).rev().collect(),
        paused: false,
        pause_reason: None,
        created_at: "2020-01-01T00:00:00.000Z".into(),
        updated_at: "2020-01-01T00:00:00.000Z".into(),
        revision: 1,
    }
}

fn ids(rows: &[SinkRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

pub(crate) async fn sinks_round_trip_filter_and_page(store: Arc<dyn Store>) {
    store.create_tenant("a", "A").await.unwrap();
    store.create_tenant("b", "B").await.unwrap();
    // Created out of id order, so ordering comes from the store.
    for (id, owner) in [
        ("snk_4", Some("a")),
        ("snk_2", Some("b")),
        ("snk_1", Some("a")),
        ("snk_3", None),
    ] {
        store.create_sink(sink_row(id, owner)).await.unwrap();
    }
    let mut paused = sink_row("snk_5", Some("b"));
    paused.paused = true;
    paused.pause_reason = Some("operator".into());
    paused.revision = 7;
    store.create_sink(paused.clone()).await.unwrap();

    assert_eq!(store.sink("snk_1").await.unwrap(), Some(sink_row("snk_1", Some("a"))));
    assert_eq!(store.sink("snk_3").await.unwrap(), Some(sink_row("snk_3", None)));
    assert_eq!(store.sink("snk_5").await.unwrap(), Some(paused));
    assert_eq!(store.sink("snk_9").await.unwrap(), None);

    assert!(matches!(
        store.create_sink(sink_row("snk_1", Some("b"))).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.sink("snk_1").await.unwrap().unwrap().owner_tenant.as_deref(),
        Some("a"),
        "a refused create changes nothing"
    );
    assert!(matches!(
        store.create_sink(sink_row("snk_6", Some("ghost"))).await,
        Err(StoreError::UnknownTenant(t)) if t == "ghost"
    ));
    assert_eq!(store.sink("snk_6").await.unwrap(), None);

    let all = store.list_sinks(None, None, 100).await.unwrap();
    assert_eq!(ids(&all), ["snk_1", "snk_2", "snk_3", "snk_4", "snk_5"]);
    assert_eq!(all[0], sink_row("snk_1", Some("a")));
    assert_eq!(
        ids(&store.list_sinks(Some("a"), None, 100).await.unwrap()),
        ["snk_1", "snk_4"]
    );
    assert_eq!(
        ids(&store.list_sinks(Some("b"), None, 100).await.unwrap()),
        ["snk_2", "snk_5"]
    );
    assert!(store.list_sinks(Some("ghost"), None, 100).await.unwrap().is_empty());

    // Paging: strictly after the cursor, at most `limit`.
    assert_eq!(ids(&store.list_sinks(None, None, 2).await.unwrap()), ["snk_1", "snk_2"]);
    assert_eq!(
        ids(&store.list_sinks(None, Some("snk_2"), 2).await.unwrap()),
        ["snk_3", "snk_4"]
    );
    assert_eq!(ids(&store.list_sinks(None, Some("snk_4"), 2).await.unwrap()), ["snk_5"]);
    assert!(store.list_sinks(None, Some("snk_5"), 2).await.unwrap().is_empty());
    assert_eq!(ids(&store.list_sinks(Some("a"), None, 1).await.unwrap()), ["snk_1"]);
    assert_eq!(
        ids(&store.list_sinks(Some("a"), Some("snk_1"), 1).await.unwrap()),
        ["snk_4"]
    );
    assert_eq!(
        ids(&store.list_sinks(Some("b"), Some("snk_2"), 10).await.unwrap()),
        ["snk_5"]
    );
}

pub(crate) async fn sink_updates_check_revisions(store: Arc<dyn Store>) {
    store.create_tenant("a", "A").await.unwrap();
    store.create_sink(sink_row("snk_u", Some("a"))).await.unwrap();

    let mut edit = sink_row("snk_u", Some("a"));
    edit.spec = r#"{"name":"renamed"}"#.into();
    edit.sealed_secrets = vec![0, 1, 2];
    edit.paused = true;
    edit.pause_reason = Some("maintenance".into());
    // Fields update_sink does not replace: the stored values must win.
    edit.owner_tenant = None;
    edit.created_at = "2030-01-01T00:00:00.000Z".into();
    let updated = store.update_sink(edit.clone()).await.unwrap().expect("the sink exists");
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.spec, edit.spec);
    assert_eq!(updated.sealed_secrets, vec![0, 1, 2]);
    assert!(updated.paused);
    assert_eq!(updated.pause_reason.as_deref(), Some("maintenance"));
    assert_eq!(updated.owner_tenant.as_deref(), Some("a"));
    assert_eq!(updated.created_at, "2020-01-01T00:00:00.000Z");
    assert!(
        updated.updated_at.as_str() > "2020-01-01T00:00:00.000Z",
        "updated_at is now, got {}",
        updated.updated_at
    );
    assert_eq!(store.sink("snk_u").await.unwrap(), Some(updated.clone()));

    // A second writer still holding revision 1 loses, and changes nothing.
    let mut stale = edit.clone();
    stale.spec = r#"{"name":"stale"}"#.into();
    assert!(matches!(store.update_sink(stale).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.sink("snk_u").await.unwrap(), Some(updated.clone()));

    // The fresh revision wins; resuming clears the reason.
    let mut fresh = updated.clone();
    fresh.paused = false;
    fresh.pause_reason = None;
    let again = store.update_sink(fresh).await.unwrap().unwrap();
    assert_eq!(
        (again.revision, again.paused, again.pause_reason.clone()),
        (3, false, None)
    );

    // A missing sink is Ok(None), whatever the revision.
    let mut gone = sink_row("snk_gone", None);
    assert_eq!(store.update_sink(gone.clone()).await.unwrap(), None);
    gone.revision = 42;
    assert_eq!(store.update_sink(gone).await.unwrap(), None);
}

pub(crate) async fn sink_pause_skips_revision_check(store: Arc<dyn Store>) {
    store.create_sink(sink_row("snk_p", None)).await.unwrap();
    let before = store.sink("snk_p").await.unwrap().unwrap();

    let paused = store
        .set_sink_paused("snk_p", true, Some("receiver answered 401"))
        .await
        .unwrap()
        .expect("the sink exists");
    assert!(paused.paused);
    assert_eq!(paused.pause_reason.as_deref(), Some("receiver answered 401"));
    assert_eq!(paused.revision, 2);
    assert_ne!(paused.updated_at, before.updated_at);
    // Everything else is untouched.
    assert_eq!(
        (
            &paused.spec,
            &paused.sealed_secrets,
            &paused.owner_tenant,
            &paused.created_at
        ),
        (
            &before.spec,
            &before.sealed_secrets,
            &before.owner_tenant,
            &before.created_at
        )
    );
    assert_eq!(store.sink("snk_p").await.unwrap(), Some(paused.clone()));

    // An editor who read revision 1 now conflicts: pausing bumped the revision.
    assert!(matches!(store.update_sink(before).await, Err(StoreError::Conflict(_))));

    let resumed = store.set_sink_paused("snk_p", false, None).await.unwrap().unwrap();
    assert_eq!(
        (resumed.paused, resumed.pause_reason.clone(), resumed.revision),
        (false, None, 3)
    );
    assert_eq!(
        store.set_sink_paused("snk_missing", true, Some("x")).await.unwrap(),
        None
    );
}

fn dead_letter(sink: &str, id: &str) -> DeadLetter {
    DeadLetter {
        id: id.into(),
        sink_id: sink.into(),
        tenant_id: "t".into(),
        first_offset: 10,
        last_offset: 19,
        event_count: 7,
        reason: "receiver answered 500 eight times".into(),
        attempts: r#"[{"attempt":1,"status":500}]"#.into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

fn attempt(sink: &str, first_offset: u64, at: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        sink_id: sink.into(),
        tenant_id: "t".into(),
        first_offset,
        last_offset: first_offset + 9,
        event_count: 10,
        purpose: "delivery".into(),
        attempt: 1,
        outcome: "delivered".into(),
        status: Some(200),
        latency_ms: 12.5,
        error: None,
        at: at.into(),
    }
}

pub(crate) async fn deleting_a_sink_removes_its_state(store: Arc<dyn Store>) {
    for id in ["snk_a", "snk_b"] {
        store.create_sink(sink_row(id, None)).await.unwrap();
        store.commit_cursor(id, "t1", 5).await.unwrap();
        store.commit_cursor(id, "t2", 6).await.unwrap();
        store.add_dead_letter(dead_letter(id, "dl_1")).await.unwrap();
        store.add_dead_letter(dead_letter(id, "dl_2")).await.unwrap();
        store
            .record_attempts(vec![
                attempt(id, 1, "2026-01-01T00:00:00.000Z"),
                attempt(id, 11, "2026-01-01T00:00:01.000Z"),
            ])
            .await
            .unwrap();
    }

    assert!(store.delete_sink("snk_a").await.unwrap());
    assert!(!store.delete_sink("snk_a").await.unwrap(), "already gone");
    assert!(!store.delete_sink("snk_never").await.unwrap());

    assert_eq!(store.sink("snk_a").await.unwrap(), None);
    assert!(store.cursors_of("snk_a").await.unwrap().is_empty());
    assert_eq!(store.cursor("snk_a", "t1").await.unwrap(), None);
    assert_eq!(store.count_dead_letters("snk_a").await.unwrap(), 0);
    assert!(store.list_dead_letters("snk_a", None, 10).await.unwrap().is_empty());
    assert!(store.list_attempts("snk_a", None, 10).await.unwrap().is_empty());

    assert!(store.sink("snk_b").await.unwrap().is_some());
    assert_eq!(
        store.cursors_of("snk_b").await.unwrap(),
        vec![("t1".to_owned(), 5), ("t2".to_owned(), 6)]
    );
    assert_eq!(store.count_dead_letters("snk_b").await.unwrap(), 2);
    assert_eq!(store.list_attempts("snk_b", None, 10).await.unwrap().len(), 2);

    // A new sink reusing the id starts clean: no inherited cursor.
    store.create_sink(sink_row("snk_a", None)).await.unwrap();
    assert_eq!(store.cursor("snk_a", "t1").await.unwrap(), None);
}

pub(crate) async fn dead_letters_crud(store: Arc<dyn Store>) {
    for id in ["dl_3", "dl_1", "dl_2"] {
        store.add_dead_letter(dead_letter("snk_x", id)).await.unwrap();
    }
    let mut other = dead_letter("snk_y", "dl_1");
    other.reason = "other sink".into();
    store.add_dead_letter(other.clone()).await.unwrap();
    assert!(matches!(
        store.add_dead_letter(dead_letter("snk_x", "dl_2")).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(store.count_dead_letters("snk_x").await.unwrap(), 3);
    assert_eq!(store.count_dead_letters("snk_y").await.unwrap(), 1);
    assert_eq!(store.count_dead_letters("snk_z").await.unwrap(), 0);

    let listed = store.list_dead_letters("snk_x", None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["dl_1", "dl_2", "dl_3"]
    );
    assert_eq!(listed[0], dead_letter("snk_x", "dl_1"));
    let page = store.list_dead_letters("snk_x", Some("dl_1"), 1).await.unwrap();
    assert_eq!(page.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dl_2"]);
    assert!(store
        .list_dead_letters("snk_x", Some("dl_3"), 10)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.dead_letter("snk_y", "dl_1").await.unwrap(), Some(other));
    assert_eq!(
        store.dead_letter("snk_y", "dl_2").await.unwrap(),
        None,
        "scoped by sink"
    );

    let attempts = r#"[{"attempt":1,"status":500},{"attempt":2,"status":503}]"#;
    assert!(store
        .update_dead_letter_attempts("snk_x", "dl_2", attempts)
        .await
        .unwrap());
    assert_eq!(
        store.dead_letter("snk_x", "dl_2").await.unwrap().unwrap().attempts,
        attempts
    );
    assert_eq!(
        store.dead_letter("snk_x", "dl_1").await.unwrap().unwrap().attempts,
        dead_letter("snk_x", "dl_1").attempts,
        "only the named dead letter changes"
    );
    assert!(!store
        .update_dead_letter_attempts("snk_y", "dl_2", attempts)
        .await
        .unwrap());

    assert!(store.delete_dead_letter("snk_x", "dl_2").await.unwrap());
    assert!(!store.delete_dead_letter("snk_x", "dl_2").await.unwrap());
    assert!(!store.delete_dead_letter("snk_y", "dl_3").await.unwrap());
    assert_eq!(store.count_dead_letters("snk_x").await.unwrap(), 2);
    assert_eq!(store.count_dead_letters("snk_y").await.unwrap(), 1);
}

pub(crate) async fn delivery_log_order_paging_and_pruning(store: Arc<dyn Store>) {
    let mut batch = Vec::new();
    for (i, day) in ["01", "02", "03", "04", "05"].iter().enumerate() {
        let mut a = attempt("snk_l", i as u64 * 10 + 1, &format!("2026-01-{day}T00:00:00.000Z"));
        a.attempt = i as u32 + 1;
        batch.push(a);
        batch.push(attempt("snk_other", i as u64, &format!("2026-01-{day}T00:00:00.000Z")));
    }
    batch[2].status = None;
    batch[2].outcome = "retry".into();
    batch[2].error = Some("connection refused".into());
    batch[2].latency_ms = 0.25;
    store.record_attempts(batch.clone()).await.unwrap();
    let mine: Vec<DeliveryAttempt> = batch.iter().filter(|a| a.sink_id == "snk_l").cloned().collect();

    // Newest first, with strictly decreasing row numbers.
    let all = store.list_attempts("snk_l", None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
        mine.iter().rev().cloned().collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "row numbers: {all:?}");

    // Paging backwards: each page strictly before the last row number seen.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_attempts("snk_l", before, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        assert!(paged.len() < mine.len(), "paging does not end: {paged:?}");
        before = Some(last.0);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    let after_first = store.list_attempts("snk_l", Some(seqs[0]), 100).await.unwrap();
    assert_eq!(after_first, all[1..].to_vec());
    assert!(store
        .list_attempts("snk_l", Some(seqs[4]), 100)
        .await
        .unwrap()
        .is_empty());

    // A later flush gets higher row numbers.
    store
        .record_attempts(vec![attempt("snk_l", 99, "2026-01-06T00:00:00.000Z")])
        .await
        .unwrap();
    let newest = store.list_attempts("snk_l", None, 1).await.unwrap();
    assert_eq!(newest[0].1.first_offset, 99);
    assert!(newest[0].0 > seqs[0]);

    // Strictly older than the cutoff, across sinks. The cutoff carries an offset: it is the
    // instant 2026-01-02T00:00:00Z, so the 01-02 rows stay.
    assert_eq!(store.prune_attempts("2026-01-02T01:00:00+01:00").await.unwrap(), 2);
    let left = store.list_attempts("snk_l", None, 100).await.unwrap();
    assert_eq!(
        left.iter().map(|(_, a)| a.at.as_str()).collect::<Vec<_>>(),
        [
            "2026-01-06T00:00:00.000Z",
            "2026-01-05T00:00:00.000Z",
            "2026-01-04T00:00:00.000Z",
            "2026-01-03T00:00:00.000Z",
            "2026-01-02T00:00:00.000Z"
        ]
    );
    assert_eq!(store.prune_attempts("2026-01-04T00:00:00.000Z").await.unwrap(), 4);
    assert_eq!(store.prune_attempts("2026-01-04T00:00:00.000Z").await.unwrap(), 0);
    assert_eq!(store.list_attempts("snk_l", None, 100).await.unwrap().len(), 3);
    assert_eq!(store.list_attempts("snk_other", None, 100).await.unwrap().len(), 2);
}

pub(crate) async fn record_attempts_is_all_or_nothing(store: Arc<dyn Store>) {
    let mut bad = attempt("snk_t", 1, "2026-01-01T00:00:00.000Z");
    // No backend stores offsets beyond i64: the second row fails after the first was written.
    bad.first_offset = u64::MAX;
    let result = store
        .record_attempts(vec![attempt("snk_t", 1, "2026-01-01T00:00:00.000Z"), bad])
        .await;
    assert!(result.is_err());
    assert!(
        store.list_attempts("snk_t", None, 10).await.unwrap().is_empty(),
        "a failed flush stores none of its rows"
    );
}

pub(crate) async fn offset_at_time_finds_the_first_event(store: Arc<dyn Store>) {
    store.create_tenant("ot", "OT").await.unwrap();
    store.create_tenant("empty", "Empty").await.unwrap();
    // One request per timestamp; offsets 1..=6. Mixed fractional widths on purpose: as text,
    // "03.123Z" sorts after "03.123400Z" although it is earlier.
    for (received_at, body) in [
        ("2026-01-01T00:00:01.000Z", r#"{"type":"a.b"}"#),
        ("2026-01-01T00:00:02.000Z", r#"[{"type":"a.b"},{"type":"a.b"}]"#),
        ("2026-01-01T00:00:03.123Z", r#"{"type":"a.b"}"#),
        ("2026-01-01T00:00:03.123400Z", r#"{"type":"a.b"}"#),
        ("2026-01-01T00:00:04.000Z", r#"{"type":"a.b"}"#),
    ] {
        store.append(events_at("ot", body, received_at)).await.unwrap();
    }
    assert_eq!(store.head("ot").await.unwrap(), 6);
    for (time, expected) in [
        ("2025-12-31T23:59:59.000Z", 0), // before the first
        ("2026-01-01T00:00:01.000Z", 0), // exactly the first
        ("2026-01-01T00:00:01.5Z", 1),
        ("2026-01-01T00:00:02.000Z", 1), // exactly offsets 2 and 3
        ("2026-01-01T00:00:02.000001Z", 3),
        ("2026-01-01T00:00:03.1231Z", 4), // between 03.123 and 03.1234
        ("2026-01-01T00:00:03.1234Z", 4),
        ("2026-01-01T00:00:03.12341Z", 5),
        ("2026-01-01T01:00:03.5+01:00", 5), // 03.5Z
        ("2026-01-01T00:00:04.000Z", 5),    // exactly the last
        ("2026-01-01T00:00:04.001Z", 6),    // after the last: the head
        ("2027-01-01T00:00:00Z", 6),
    ] {
        assert_eq!(store.offset_at_time("ot", time).await.unwrap(), expected, "time {time}");
    }
    assert_eq!(store.offset_at_time("empty", "2026-01-01T00:00:00Z").await.unwrap(), 0);
    assert_eq!(store.offset_at_time("ghost", "2026-01-01T00:00:00Z").await.unwrap(), 0);
    assert!(store.offset_at_time("ot", "yesterday").await.is_err());
}

pub(crate) async fn offset_at_time_on_a_longer_log(store: Arc<dyn Store>) {
    store.create_tenant("long", "Long").await.unwrap();
    // 60 requests of 1-3 events, one second apart: request k starts at offset first[k].
    let mut first = Vec::new();
    for k in 0..60u64 {
        let body = match k % 3 {
            0 => r#"{"type":"a.b"}"#,
            1 => r#"[{"type":"a.b"},{"type":"a.b"}]"#,
            _ => r#"[{"type":"a.b"},{"type":"a.b"},{"type":"a.b"}]"#,
        };
        let out = store
            .append(events_at("long", body, &format!("2026-01-01T00:00:{k:02}.000Z")))
            .await
            .unwrap();
        first.push(out[0].offset);
    }
    let head = store.head("long").await.unwrap();
    for (k, &start) in first.iter().enumerate() {
        let at = format!("2026-01-01T00:00:{k:02}.000Z");
        assert_eq!(store.offset_at_time("long", &at).await.unwrap(), start - 1, "at {at}");
        let between = format!("2026-01-01T00:00:{k:02}.500Z");
        let next = first.get(k + 1).map_or(head, |n| n - 1);
        assert_eq!(
            store.offset_at_time("long", &between).await.unwrap(),
            next,
            "at {between}"
        );
    }
}
