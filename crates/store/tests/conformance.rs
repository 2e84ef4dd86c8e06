#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The store contract, written once against `dyn Store` so every backend runs the same checks.
//! Today: SQLite. The PostgreSQL backend will add one `backend!` line.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::{parse_request, BodyFormat, Limits, NewEvent, TypeFilter};
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::{
    Catalog, DeadLetter, DeliveryAttempt, EventLog, NewApiKey, ReadQuery, SinkRow, Store, StoreError,
};

fn events(tenant: &str, body: &str) -> Vec<NewEvent> {
    events_at(tenant, body, "2026-01-01T00:00:00.000Z")
}

/// Events as the server would make them from a request received at `received_at`.
fn events_at(tenant: &str, body: &str, received_at: &str) -> Vec<NewEvent> {
    parse_request(body.as_bytes(), BodyFormat::Json, &Limits::default())
        .expect("valid test events")
        .into_iter()
        .map(|p| p.into_new_event(tenant.to_owned(), received_at))
        .collect()
}

fn query(tenant: &str, after: u64, limit: usize, types: &str) -> ReadQuery {
    ReadQuery {
        tenant: tenant.into(),
        after,
        limit,
        filter: TypeFilter::parse_list(types).expect("valid globs"),
        with_raw: false,
    }
}

async fn all_offsets(store: &dyn Store, tenant: &str) -> Vec<u64> {
    store
        .read(query(tenant, 0, 1_000_000, ""))
        .await
        .expect("read")
        .iter()
        .map(|e| e.offset)
        .collect()
}

async fn gapless_offsets_under_concurrency(store: Arc<dyn Store>) {
    store.create_tenant("t1", "T1").await.unwrap();
    store.create_tenant("t2", "T2").await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = if w % 2 == 0 { "t1" } else { "t2" };
            let mut got = Vec::new();
            for _ in 0..20 {
                let out = store
                    .append(events(tenant, r#"[{"type":"a.b"},{"type":"a.c"},{"type":"a.d"}]"#))
                    .await
                    .unwrap();
                // Offsets within one request are consecutive: a request is never interleaved.
                assert_eq!(out[1].offset, out[0].offset + 1);
                assert_eq!(out[2].offset, out[0].offset + 2);
                got.extend(out.into_iter().map(|o| (tenant, o.offset)));
            }
            got
        }));
    }
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    for t in tasks {
        for item in t.await.unwrap() {
            assert!(seen.insert(item), "offset handed out twice: {item:?}");
        }
    }
    for tenant in ["t1", "t2"] {
        let offsets = all_offsets(store.as_ref(), tenant).await;
        assert_eq!(offsets, (1..=720).collect::<Vec<u64>>(), "tenant {tenant}");
        assert_eq!(store.head(tenant).await.unwrap(), 720);
    }
}

async fn dedup_does_not_burn_offsets(store: Arc<dyn Store>) {
    store.create_tenant("d", "D").await.unwrap();
    store.create_tenant("e", "E").await.unwrap();
    let first = store
        .append(events("d", r#"[{"type":"a.b","id":"x"},{"type":"a.b","id":"x"}]"#))
        .await
        .unwrap();
    assert_eq!((first[0].offset, first[0].duplicate), (1, false));
    assert_eq!((first[1].offset, first[1].duplicate), (1, true));
    let again = store
        .append(events("d", r#"[{"type":"a.b","id":"y"},{"type":"a.b","id":"x"}]"#))
        .await
        .unwrap();
    assert_eq!((again[0].offset, again[0].duplicate), (2, false));
    assert_eq!((again[1].offset, again[1].duplicate), (1, true));
    assert_eq!(all_offsets(store.as_ref(), "d").await, vec![1, 2]);
    // The same client id in another tenant is a different event.
    let other = store.append(events("e", r#"{"type":"a.b","id":"x"}"#)).await.unwrap();
    assert_eq!((other[0].offset, other[0].duplicate), (1, false));
}

async fn unknown_tenant_is_refused_alone(store: Arc<dyn Store>) {
    store.create_tenant("ok", "OK").await.unwrap();
    let (a, b) = tokio::join!(
        store.append(events("ghost", r#"{"type":"a.b"}"#)),
        store.append(events("ok", r#"{"type":"a.b"}"#))
    );
    assert!(matches!(a, Err(StoreError::UnknownTenant(t)) if t == "ghost"));
    assert_eq!(b.unwrap()[0].offset, 1);
    assert!(all_offsets(store.as_ref(), "ghost").await.is_empty());
}

async fn reads_filter_and_page(store: Arc<dyn Store>) {
    store.create_tenant("r", "R").await.unwrap();
    store
        .append(events(
            "r",
            r#"[{"type":"auth.login"},{"type":"decision.approved"},{"type":"auth.logout"},{"type":"decision.rejected"}]"#,
        ))
        .await
        .unwrap();
    let got = store.read(query("r", 0, 10, "decision.*")).await.unwrap();
    assert_eq!(got.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![2, 4]);
    let got = store.read(query("r", 2, 1, "auth.log?ut,decision.*")).await.unwrap();
    assert_eq!(got.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3]);
    let got = store.read(query("r", 0, 2, "")).await.unwrap();
    assert_eq!(got.len(), 2);
    let v: serde_json::Value = serde_json::from_str(&got[1].to_json()).unwrap();
    assert_eq!(v["offset"], 2);
    assert_eq!(v["tenant_id"], "r");
    assert_eq!(v["type"], "decision.approved");
    // Reads never cross tenants.
    assert!(store.read(query("other", 0, 10, "")).await.unwrap().is_empty());
    // The raw form only when asked for, byte for byte as ingested.
    assert!(got.iter().all(|e| e.raw.is_none()));
    let raw_body = "{ \"type\" : \"raw.kept\",\n  \"metadata\": {\"b\":2, \"a\":1} }";
    store.append(events("r", raw_body)).await.unwrap();
    let mut q = query("r", 4, 10, "");
    q.with_raw = true;
    let got = store.read(q).await.unwrap();
    assert_eq!(got[0].raw.as_deref(), Some(raw_body));
}

async fn cursors_only_move_forward_unless_reset(store: Arc<dyn Store>) {
    assert_eq!(store.cursor("sink1", "t").await.unwrap(), None);
    store.commit_cursor("sink1", "t", 10).await.unwrap();
    store.commit_cursor("sink1", "t", 7).await.unwrap();
    assert_eq!(store.cursor("sink1", "t").await.unwrap(), Some(10));
    store.reset_cursor("sink1", "t", 3).await.unwrap();
    assert_eq!(store.cursor("sink1", "t").await.unwrap(), Some(3));
    assert_eq!(store.cursor("sink2", "t").await.unwrap(), None);
}

async fn subscribers_wake_on_commit(store: Arc<dyn Store>) {
    store.create_tenant("w", "W").await.unwrap();
    let mut rx = store.subscribe("w");
    let mut other = store.subscribe("x");
    let writer = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.append(events("w", r#"{"type":"a.b"}"#)).await.unwrap();
    });
    tokio::time::timeout(Duration::from_secs(2), rx.changed())
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(*rx.borrow(), 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), other.changed())
            .await
            .is_err(),
        "another tenant's commit must not wake"
    );
}

async fn catalog(store: Arc<dyn Store>) {
    store.create_tenant("acme", "Acme").await.unwrap();
    assert!(matches!(
        store.create_tenant("acme", "Again").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.tenant("acme").await.unwrap().unwrap().name, "Acme");
    assert!(store.tenant("nope").await.unwrap().is_none());
    let key = store
        .create_key(NewApiKey {
            id: "key_1".into(),
            tenant_id: "acme".into(),
            name: "svc".into(),
            scopes: vec!["ingest".into(), "read".into()],
            hash: [7; 32],
            created_at: "2026-01-01T00:00:00.000Z".into(),
        })
        .await
        .unwrap();
    assert_eq!(store.key_by_hash([7; 32]).await.unwrap(), Some(key));
    assert!(store.key_by_hash([8; 32]).await.unwrap().is_none());
    assert!(
        !store.revoke_key("other", "key_1").await.unwrap(),
        "revocation is tenant-scoped"
    );
    assert!(store.revoke_key("acme", "key_1").await.unwrap());
    assert!(store.key_by_hash([7; 32]).await.unwrap().unwrap().revoked_at.is_some());
    let ghost_key = NewApiKey {
        id: "key_2".into(),
        tenant_id: "ghost".into(),
        name: "x".into(),
        scopes: vec![],
        hash: [9; 32],
        created_at: "2026-01-01T00:00:00.000Z".into(),
    };
    assert!(store.create_key(ghost_key).await.is_err());
    let page = store.list_tenants(None, 10).await.unwrap();
    assert!(page.iter().any(|t| t.id == "acme"));
}

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

async fn sinks_round_trip_filter_and_page(store: Arc<dyn Store>) {
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

async fn sink_updates_check_revisions(store: Arc<dyn Store>) {
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

async fn sink_pause_skips_revision_check(store: Arc<dyn Store>) {
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

async fn deleting_a_sink_removes_its_state(store: Arc<dyn Store>) {
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

async fn dead_letters_crud(store: Arc<dyn Store>) {
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

async fn delivery_log_order_paging_and_pruning(store: Arc<dyn Store>) {
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

async fn record_attempts_is_all_or_nothing(store: Arc<dyn Store>) {
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

async fn offset_at_time_finds_the_first_event(store: Arc<dyn Store>) {
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

async fn offset_at_time_on_a_longer_log(store: Arc<dyn Store>) {
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

async fn cursors_of_lists_a_consumer(store: Arc<dyn Store>) {
    assert!(store.cursors_of("snk_c").await.unwrap().is_empty());
    store.commit_cursor("snk_c", "t_b", 20).await.unwrap();
    store.commit_cursor("snk_c", "t_a", 10).await.unwrap();
    store.commit_cursor("snk_c", "t_c", 30).await.unwrap();
    store.commit_cursor("snk_d", "t_a", 99).await.unwrap();
    store.reset_cursor("snk_c", "t_c", 3).await.unwrap();
    assert_eq!(
        store.cursors_of("snk_c").await.unwrap(),
        vec![("t_a".to_owned(), 10), ("t_b".to_owned(), 20), ("t_c".to_owned(), 3)]
    );
    assert_eq!(store.cursors_of("snk_d").await.unwrap(), vec![("t_a".to_owned(), 99)]);
}

macro_rules! backend {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            async fn fresh() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
                $open
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn gapless_offsets() {
                let (s, _g) = fresh().await;
                gapless_offsets_under_concurrency(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dedup() {
                let (s, _g) = fresh().await;
                dedup_does_not_burn_offsets(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unknown_tenant() {
                let (s, _g) = fresh().await;
                unknown_tenant_is_refused_alone(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads() {
                let (s, _g) = fresh().await;
                reads_filter_and_page(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cursors() {
                let (s, _g) = fresh().await;
                cursors_only_move_forward_unless_reset(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wakeups() {
                let (s, _g) = fresh().await;
                subscribers_wake_on_commit(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn catalog_rules() {
                let (s, _g) = fresh().await;
                catalog(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sinks_crud() {
                let (s, _g) = fresh().await;
                sinks_round_trip_filter_and_page(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sink_update_revisions() {
                let (s, _g) = fresh().await;
                sink_updates_check_revisions(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sink_pause() {
                let (s, _g) = fresh().await;
                sink_pause_skips_revision_check(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sink_delete_cascades() {
                let (s, _g) = fresh().await;
                deleting_a_sink_removes_its_state(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letters() {
                let (s, _g) = fresh().await;
                dead_letters_crud(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivery_log() {
                let (s, _g) = fresh().await;
                delivery_log_order_paging_and_pruning(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivery_log_atomic_flush() {
                let (s, _g) = fresh().await;
                record_attempts_is_all_or_nothing(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn offset_at_time() {
                let (s, _g) = fresh().await;
                offset_at_time_finds_the_first_event(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn offset_at_time_long_log() {
                let (s, _g) = fresh().await;
                offset_at_time_on_a_longer_log(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cursors_of() {
                let (s, _g) = fresh().await;
                cursors_of_lists_a_consumer(s).await;
            }
        }
    };
}

backend!(sqlite, {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), None).expect("open sqlite");
    (
        Arc::new(store) as Arc<dyn Store>,
        Box::new(dir) as Box<dyn std::any::Any + Send>,
    )
});

/// SQLite only: the log survives a close and reopen, and numbering continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_log_and_heads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), None).unwrap();
        store.create_tenant("p", "P").await.unwrap();
        store
            .append(events("p", r#"[{"type":"a.b","id":"one"},{"type":"a.b"}]"#))
            .await
            .unwrap();
        store.close().await;
        assert!(matches!(
            store.append(events("p", r#"{"type":"a.b"}"#)).await,
            Err(StoreError::ShuttingDown)
        ));
    }
    let store = SqliteStore::open(dir.path(), None).unwrap();
    let out = store
        .append(events("p", r#"[{"type":"a.b"},{"type":"a.b","id":"one"}]"#))
        .await
        .unwrap();
    assert_eq!((out[0].offset, out[1].offset, out[1].duplicate), (3, 1, true));
    assert_eq!(all_offsets(&store, "p").await, vec![1, 2, 3]);
}
