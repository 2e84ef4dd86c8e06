//! Retention policies and purges, for every backend.

use std::sync::Arc;

use auditrelay_store::{Store, StoreError};

use super::{events, events_at, query};

/// Policies are opaque JSON per tenant; an unknown tenant is refused; clearing works.
pub(crate) async fn retention_policies_are_per_tenant(store: Arc<dyn Store>) {
    store.create_tenant("p", "P").await.unwrap();
    store.create_tenant("q", "Q").await.unwrap();
    assert_eq!(store.retention_policy("p").await.unwrap(), None);
    store
        .set_retention_policy("p", Some(r#"{"active_days":7}"#))
        .await
        .unwrap();
    assert_eq!(
        store.retention_policy("p").await.unwrap().as_deref(),
        Some(r#"{"active_days":7}"#)
    );
    assert_eq!(store.retention_policy("q").await.unwrap(), None);
    let err = store.set_retention_policy("nope", Some("{}")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownTenant(ref t) if t == "nope"),
        "{err:?}"
    );
    store.set_retention_policy("p", None).await.unwrap();
    assert_eq!(store.retention_policy("p").await.unwrap(), None);
}

/// A purge removes the oldest events in bounded chunks, never past the head, never another
/// tenant's; offsets are not reused, the chain continues, reads and `offset_at_time` start
/// after the purged prefix, and a purged client id may be ingested again.
pub(crate) async fn purges_remove_the_oldest_events_in_chunks(store: Arc<dyn Store>) {
    store.create_tenant("r", "R").await.unwrap();
    store.create_tenant("s", "S").await.unwrap();
    let body = |n: u32, id_prefix: &str| {
        let list: Vec<String> = (1..=n)
            .map(|i| format!(r#"{{"type":"a.b","id":"{id_prefix}{i}"}}"#))
            .collect();
        format!("[{}]", list.join(","))
    };
    store
        .append(events_at("r", &body(10, "old-"), "2026-01-01T00:00:00.000Z"))
        .await
        .unwrap();
    store
        .append(events_at("r", &body(5, "new-"), "2026-03-01T00:00:00.000Z"))
        .await
        .unwrap();
    store.append(events("s", &body(3, "s-"))).await.unwrap();
    assert_eq!(store.purged_through("r").await.unwrap(), 0);

    // Chunks of 4: 4, 8, then 10 (the target), then nothing more to do.
    assert_eq!(store.purge_events("r", 10, 4).await.unwrap(), 4);
    assert_eq!(store.purge_events("r", 10, 4).await.unwrap(), 8);
    assert_eq!(store.purge_events("r", 10, 4).await.unwrap(), 10);
    assert_eq!(store.purge_events("r", 10, 4).await.unwrap(), 10);
    assert_eq!(store.purged_through("r").await.unwrap(), 10);

    let left = store.read(query("r", 0, 100, "")).await.unwrap();
    let offsets: Vec<u64> = left.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (11..=15).collect::<Vec<_>>());
    assert_eq!(store.head("r").await.unwrap(), 15);
    assert_eq!(
        store.read(query("s", 0, 100, "")).await.unwrap().len(),
        3,
        "other tenant untouched"
    );
    assert_eq!(store.purged_through("s").await.unwrap(), 0);

    // A time before every retained event answers the purge boundary, not offset 0.
    assert_eq!(store.offset_at_time("r", "2025-01-01T00:00:00Z").await.unwrap(), 10);
    assert_eq!(store.offset_at_time("r", "2026-02-01T00:00:00Z").await.unwrap(), 10);
    assert_eq!(store.offset_at_time("r", "2026-04-01T00:00:00Z").await.unwrap(), 15);

    // Never past the head.
    assert_eq!(store.purge_events("r", 1_000, 1_000).await.unwrap(), 15);
    assert!(store.read(query("r", 0, 100, "")).await.unwrap().is_empty());

    // Appends continue the offsets and the chain; a purged client id is a new event again.
    let (_, chain_before) = store.chain_head("r").await.unwrap().unwrap();
    let out = store
        .append(events("r", r#"{"type":"a.b","id":"old-1"}"#))
        .await
        .unwrap();
    assert_eq!((out[0].offset, out[0].duplicate), (16, false));
    let ev = &store.read(query("r", 0, 10, "")).await.unwrap()[0];
    assert_eq!(ev.offset, 16);
    let expected = auditrelay_store::chain::link(&chain_before, ev.offset, &ev.body).unwrap();
    assert_eq!(ev.chain, Some(expected));

    let err = store.purge_events("nope", 1, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err:?}");
}
