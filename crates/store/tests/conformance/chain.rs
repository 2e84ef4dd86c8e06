//! The hash chain and checkpoints, for every backend.

use std::sync::Arc;

use auditrelay_store::chain::{link, GENESIS};
use auditrelay_store::{Checkpoint, Store};

use super::{events, query};

/// Recomputes a tenant's chain from what `read` returns, independently of the stored values.
async fn recompute(store: &dyn Store, tenant: &str) -> Vec<[u8; 32]> {
    let mut chain = GENESIS;
    let mut out = Vec::new();
    for ev in store.read(query(tenant, 0, 1_000_000, "")).await.unwrap() {
        chain = link(&chain, ev.offset, &ev.body).unwrap();
        assert_eq!(ev.chain, Some(chain), "stored chain of offset {}", ev.offset);
        out.push(chain);
    }
    out
}

/// Every stored event carries the chain after it, across groups and tenants; a duplicate
/// client id neither stores nor links anything; the head's chain is the last event's.
pub(crate) async fn chain_links_every_stored_event(store: Arc<dyn Store>) {
    store.create_tenant("c", "C").await.unwrap();
    store.create_tenant("o", "O").await.unwrap();
    assert_eq!(store.chain_head("c").await.unwrap(), None);
    let (a, b) = tokio::join!(
        store.append(events(
            "c",
            r#"[{"type":"a.b","id":"x"},{"type":"a.b","id":"x"},{"type":"a.c"}]"#
        )),
        store.append(events("o", r#"{"type":"a.b","id":"x"}"#)),
    );
    a.unwrap();
    b.unwrap();
    let dup = store
        .append(events(
            "c",
            r#"[{"type":"a.b","id":"x"},{"type":"a.d","metadata":{"n":1.50}}]"#,
        ))
        .await
        .unwrap();
    assert!(dup[0].duplicate);
    let chains = recompute(store.as_ref(), "c").await;
    assert_eq!(chains.len(), 3);
    assert_eq!(store.chain_head("c").await.unwrap(), Some((3, chains[2])));
    assert_eq!(recompute(store.as_ref(), "o").await.len(), 1);
}

pub(crate) async fn checkpoints_are_kept_per_tenant(store: Arc<dyn Store>) {
    store.create_tenant("k", "K").await.unwrap();
    store.create_tenant("l", "L").await.unwrap();
    let cp = |tenant: &str, offset: u64, byte: u8| Checkpoint {
        tenant_id: tenant.into(),
        offset,
        chain: [byte; 32],
        signed_at: "2026-01-01T00:00:00.000Z".into(),
        signature: [byte; 64],
    };
    store.add_checkpoint(cp("k", 2, 1)).await.unwrap();
    store.add_checkpoint(cp("k", 5, 2)).await.unwrap();
    store.add_checkpoint(cp("k", 5, 9)).await.unwrap(); // the first one stays
    store.add_checkpoint(cp("l", 1, 3)).await.unwrap();
    assert_eq!(
        store.list_checkpoints("k", 0, 10).await.unwrap(),
        vec![cp("k", 2, 1), cp("k", 5, 2)]
    );
    assert_eq!(store.list_checkpoints("k", 2, 10).await.unwrap(), vec![cp("k", 5, 2)]);
    assert_eq!(store.list_checkpoints("k", 0, 1).await.unwrap(), vec![cp("k", 2, 1)]);
    assert!(store.list_checkpoints("m", 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.latest_checkpoints().await.unwrap(),
        vec![("k".to_owned(), 5), ("l".to_owned(), 1)]
    );
}
