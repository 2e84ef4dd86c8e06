//! Store contract checks for source definitions. Run on every backend by the `backend!` macro.

use std::sync::Arc;

use auditrelay_store::{SourceRow, Store, StoreError};

fn source_row(id: &str, tenant: Option<&str>) -> SourceRow {
    SourceRow {
        id: id.into(),
        tenant: tenant.map(str::to_owned),
        spec: format!(r#"{{"name":"{id}","kind":"syslog"}}"#),
        // Every byte value: the sealed blob must come back bit for bit.
        sealed_secrets: (0..=255u8).collect(),
        paused: false,
        created_at: "2020-01-01T00:00:00.000Z".into(),
        updated_at: "2020-01-01T00:00:00.000Z".into(),
        revision: 1,
    }
}

pub(crate) async fn sources_crud_and_revisions(store: Arc<dyn Store>) {
    store.create_tenant("a", "A").await.unwrap();
    for id in ["src_3", "src_1", "src_2"] {
        store.create_source(source_row(id, Some("a"))).await.unwrap();
    }
    assert_eq!(
        store.source("src_1").await.unwrap(),
        Some(source_row("src_1", Some("a")))
    );
    assert_eq!(store.source("src_9").await.unwrap(), None);
    assert!(matches!(
        store.create_source(source_row("src_1", Some("a"))).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_source(source_row("src_8", Some("nope"))).await,
        Err(StoreError::UnknownTenant(t)) if t == "nope"
    ));

    let page: Vec<String> = store
        .list_sources(None, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, ["src_1", "src_2"]);
    let rest: Vec<String> = store
        .list_sources(Some("src_2"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(rest, ["src_3"]);

    let mut changed = source_row("src_1", None);
    changed.spec = r#"{"name":"renamed"}"#.into();
    let updated = store.update_source(changed.clone()).await.unwrap().unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.spec, changed.spec);
    assert_eq!(updated.tenant, None);
    // The same stale revision again is a conflict, not a silent overwrite.
    assert!(matches!(
        store.update_source(changed).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.update_source(source_row("src_9", None)).await.unwrap(), None);

    let paused = store.set_source_paused("src_1", true).await.unwrap().unwrap();
    assert!(paused.paused);
    assert_eq!(paused.revision, 3);
    assert_eq!(store.set_source_paused("src_9", true).await.unwrap(), None);

    assert!(store.delete_source("src_1").await.unwrap());
    assert!(!store.delete_source("src_1").await.unwrap());
    assert_eq!(store.source("src_1").await.unwrap(), None);
}
