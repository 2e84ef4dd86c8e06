//! PostgreSQL only: sink leases between nodes (SQLite's one process holds them all).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_store::postgres::PostgresStore;
use auditrelay_store::{SinkLeases, Store};

use super::pg::fresh_database;

fn sinks(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("snk_{i:02}")).collect()
}

fn disjoint(sets: &[&Vec<String>]) -> bool {
    let mut seen = HashSet::new();
    sets.iter().all(|s| s.iter().all(|id| seen.insert(id.clone())))
}

/// Claims respect the fair share, a held lease is never granted to another node, released
/// leases move at once, and a silent node's leases move after they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_spread_never_overlap_and_expire() {
    let db = fresh_database("leases").await;
    let store = PostgresStore::connect(&db.url, None).await.unwrap();
    let all = sinks(4);
    let ttl = Duration::from_millis(1500);

    // Alone, node a takes everything.
    let a = store.heartbeat_leases("node_a", &all, ttl).await.unwrap();
    assert_eq!((a.held.clone(), a.fair_share), (all.clone(), 4));
    // Node b joins: its fair share is 2 but every lease is held, so it gets none yet.
    let b = store.heartbeat_leases("node_b", &all, ttl).await.unwrap();
    assert_eq!((b.held.len(), b.fair_share), (0, 2));
    // Node a now sees two live nodes and a fair share of 2; it sheds two (the engine stops
    // their workers first), and b takes them at its next heartbeat.
    let a = store.heartbeat_leases("node_a", &all, ttl).await.unwrap();
    assert_eq!((a.held.len(), a.fair_share), (4, 2));
    store.release_leases("node_a", &all[2..]).await.unwrap();
    let a = store.heartbeat_leases("node_a", &all[..2], ttl).await.unwrap();
    let b = store.heartbeat_leases("node_b", &all, ttl).await.unwrap();
    assert_eq!(a.held, all[..2].to_vec());
    assert_eq!(b.held, all[2..].to_vec());
    assert!(disjoint(&[&a.held, &b.held]));

    // Node b goes silent; until its leases expire node a cannot take them, afterwards it can.
    let a = store.heartbeat_leases("node_a", &all, ttl).await.unwrap();
    assert_eq!(a.held, all[..2].to_vec(), "b's leases are still valid");
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let a = store.heartbeat_leases("node_a", &all, ttl).await.unwrap();
    assert_eq!(
        (a.held.clone(), a.fair_share),
        (all.clone(), 4),
        "b's expired leases moved to a"
    );
    // b comes back: its renewals find nothing of its own any more.
    let b = store.heartbeat_leases("node_b", &all, ttl).await.unwrap();
    assert!(b.held.is_empty(), "{b:?}");
    store.close().await;
}

/// Three nodes heartbeating at the same time, over and over, never hold one sink together, and
/// between them hold every sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claims_never_overlap() {
    let db = fresh_database("claims").await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Arc::new(PostgresStore::connect(&db.url, None).await.unwrap()));
    }
    let all = sinks(30);
    let ttl = Duration::from_secs(30);
    for round in 0..10 {
        let mut tasks = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let (node, all) = (node.clone(), all.clone());
            tasks.push(tokio::spawn(async move {
                node.heartbeat_leases(&format!("node_{i}"), &all, ttl).await.unwrap()
            }));
        }
        let mut grants = Vec::new();
        for t in tasks {
            grants.push(t.await.unwrap());
        }
        let held: Vec<&Vec<String>> = grants.iter().map(|g| &g.held).collect();
        assert!(disjoint(&held), "round {round}: a sink held twice: {held:?}");
        if round > 0 {
            // Every node has registered by now: shares are 10 each and all sinks are held.
            let total: usize = held.iter().map(|h| h.len()).sum();
            assert_eq!(total, 30, "round {round}: {held:?}");
        }
    }
    for node in &nodes {
        node.close().await;
    }
}
