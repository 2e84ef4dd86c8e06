#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The store contract, written once against `dyn Store` so every backend runs the same checks.
//! Both backends: SQLite (a temp dir) and PostgreSQL (a fresh database on the real server per
//! test; the test fails if the server is unreachable).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::{parse_request, BodyFormat, Limits, NewEvent, TypeFilter};
use auditrelay_store::postgres::PostgresStore;
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::{Catalog, EventLog, NewApiKey, ReadQuery, Store, StoreError};

#[path = "conformance/sinks.rs"]
mod sinks_checks;

#[path = "conformance/sources.rs"]
mod sources_checks;

#[path = "conformance/pg.rs"]
mod pg;

#[path = "conformance/contention.rs"]
mod contention;

#[path = "conformance/leases.rs"]
mod leases;

#[path = "conformance/chain.rs"]
mod chain_checks;

#[path = "conformance/retention.rs"]
mod retention_checks;

#[path = "conformance/seglog.rs"]
mod seglog;

use chain_checks::*;
use retention_checks::*;
use sinks_checks::*;
use sources_checks::*;

pub(crate) fn events(tenant: &str, body: &str) -> Vec<NewEvent> {
    events_at(tenant, body, "2026-01-01T00:00:00.000Z")
}

/// Events as the server would make them from a request received at `received_at`.
pub(crate) fn events_at(tenant: &str, body: &str, received_at: &str) -> Vec<NewEvent> {
    parse_request(body.as_bytes(), BodyFormat::Json, &Limits::default())
        .expect("valid test events")
        .into_iter()
        .map(|p| p.into_new_event(tenant.to_owned(), received_at))
        .collect()
}

pub(crate) fn query(tenant: &str, after: u64, limit: usize, types: &str) -> ReadQuery {
    ReadQuery {
        tenant: tenant.into(),
        after,
        limit,
        filter: TypeFilter::parse_list(types).expect("valid globs"),
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
    // Each event is stored once: the body as rendered at ingest (RFC 8785), byte for byte.
    let sent = "{ \"type\" : \"raw.kept\",\n  \"metadata\": {\"b\":2, \"a\":1.0} }";
    let new = events("r", sent);
    let body = new[0].body.clone();
    assert!(body.contains(r#""metadata":{"a":1,"b":2}"#), "{body}");
    store.append(new).await.unwrap();
    let got = store.read(query("r", 4, 10, "")).await.unwrap();
    assert_eq!(got[0].body, body);
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
            async fn chain() {
                let (s, _g) = fresh().await;
                chain_links_every_stored_event(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retention_policies() {
                let (s, _g) = fresh().await;
                retention_policies_are_per_tenant(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn purge() {
                let (s, _g) = fresh().await;
                purges_remove_the_oldest_events_in_chunks(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn checkpoints() {
                let (s, _g) = fresh().await;
                checkpoints_are_kept_per_tenant(s).await;
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
            async fn sources_crud() {
                let (s, _g) = fresh().await;
                sources_crud_and_revisions(s).await;
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

backend!(postgres, {
    let db = pg::fresh_database("conf").await;
    let store = PostgresStore::connect(&db.url, None)
        .await
        .expect("connect to PostgreSQL");
    (
        Arc::new(store) as Arc<dyn Store>,
        Box::new(db) as Box<dyn std::any::Any + Send>,
    )
});

/// PostgreSQL only: a second node (or a restarted one) on the same database sees the log, the
/// migrations are not applied twice, and numbering continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconnect_keeps_log_and_heads() {
    let db = pg::fresh_database("reopen").await;
    {
        let store = PostgresStore::connect(&db.url, None).await.unwrap();
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
    let store = PostgresStore::connect(&db.url, None).await.unwrap();
    let out = store
        .append(events("p", r#"[{"type":"a.b"},{"type":"a.b","id":"one"}]"#))
        .await
        .unwrap();
    assert_eq!((out[0].offset, out[1].offset, out[1].duplicate), (3, 1, true));
    assert_eq!(all_offsets(&store, "p").await, vec![1, 2, 3]);
    let (rows, versions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT version) FROM auditrelay_schema")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(
        (rows, versions),
        (6, 6),
        "each migration recorded once (log, leases, chain, retention, raw no longer required, sources)"
    );
    store.close().await;
}

/// PostgreSQL only: a commit on one node wakes a subscriber on another (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakeups_cross_nodes() {
    let db = pg::fresh_database("wake").await;
    let a = PostgresStore::connect(&db.url, None).await.unwrap();
    let b = PostgresStore::connect(&db.url, None).await.unwrap();
    a.create_tenant("w", "W").await.unwrap();
    let mut rx = b.subscribe("w");
    // Give B's listener time to LISTEN (it connects in the background).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    a.append(events("w", r#"[{"type":"a.b"},{"type":"a.b"}]"#))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), rx.changed())
        .await
        .expect("node B woken by node A's commit")
        .unwrap();
    assert_eq!(*rx.borrow(), 2);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    a.close().await;
    b.close().await;
}

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
