//! PostgreSQL only: several nodes (separate stores, separate pools, separate writer tasks) append
//! to one tenant at once while a reader on another node tails the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_store::postgres::PostgresStore;
use auditrelay_store::{Catalog, EventLog, Store};

use super::pg::fresh_database;
use super::{all_offsets, events, query};

const NODES: usize = 3;
const WRITERS_PER_NODE: usize = 6;
const REQUESTS_PER_WRITER: usize = 30;

/// Offsets are unique and gapless across nodes, a client id sent to every node at once is
/// stored exactly once, and a tailing reader never sees offset N+1 before N is visible: every
/// read after cursor C starts exactly at C+1 and is contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_offsets_stay_gapless_across_nodes_under_contention() {
    let db = fresh_database("contention").await;
    let mut nodes = Vec::new();
    for _ in 0..NODES + 1 {
        nodes.push(Arc::new(
            PostgresStore::connect(&db.url, None).await.expect("connect a node"),
        ));
    }
    nodes[0].create_tenant("hot", "Hot").await.unwrap();
    nodes[0].create_tenant("cold", "Cold").await.unwrap();

    // The tailer runs on its own node and learns of commits through LISTEN/NOTIFY.
    let tailer_node = nodes[NODES].clone();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0u64);
    let tailer = tokio::spawn(async move {
        let mut wake = tailer_node.subscribe("hot");
        let mut cursor = 0u64;
        let mut reads = 0u32;
        loop {
            let batch = tailer_node.read(query("hot", cursor, 500, "")).await.unwrap();
            reads += 1;
            for (i, e) in batch.iter().enumerate() {
                assert_eq!(
                    e.offset,
                    cursor + 1 + i as u64,
                    "a reader at cursor {cursor} saw offset {} first: an earlier offset was not yet visible",
                    batch[0].offset
                );
            }
            cursor += batch.len() as u64;
            let target = *done_rx.borrow();
            if target != 0 && cursor >= target {
                return (cursor, reads);
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = done_rx.changed() => {}
                    // Only a safety net; wake-ups normally arrive first.
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    });

    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().take(NODES).enumerate() {
        for w in 0..WRITERS_PER_NODE {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for r in 0..REQUESTS_PER_WRITER {
                    // Every node sends the same client ids at about the same time.
                    let body = match r % 3 {
                        0 => r#"{"type":"a.b"}"#.to_owned(),
                        1 => r#"[{"type":"a.b"},{"type":"a.c"}]"#.to_owned(),
                        _ => format!(r#"[{{"type":"a.b","id":"dup-{w}-{r}"}},{{"type":"a.c"}},{{"type":"a.d"}}]"#),
                    };
                    let tenant = if (n + w + r) % 5 == 0 { "cold" } else { "hot" };
                    let out = node.append(events(tenant, &body)).await.unwrap();
                    outcomes.push((tenant, body.contains("dup-"), out));
                }
                outcomes
            }));
        }
    }

    let mut stored: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut client_ids: HashMap<(&str, String), Vec<(u64, bool)>> = HashMap::new();
    for t in tasks {
        for (tenant, _, out) in t.await.unwrap() {
            let first_new = out.iter().find(|o| !o.duplicate).map(|o| o.offset);
            let new: Vec<u64> = out.iter().filter(|o| !o.duplicate).map(|o| o.offset).collect();
            // A request's new events are consecutive: never interleaved with another node's.
            if let Some(first) = first_new {
                assert_eq!(new, (first..first + new.len() as u64).collect::<Vec<_>>());
            }
            stored.entry(tenant).or_default().extend(new);
            for o in out.iter().filter(|o| o.id.starts_with("dup-")) {
                client_ids
                    .entry((tenant, o.id.clone()))
                    .or_default()
                    .push((o.offset, o.duplicate));
            }
        }
    }
    for (tenant, mut offsets) in stored.clone() {
        offsets.sort_unstable();
        let n = offsets.len() as u64;
        assert_eq!(
            offsets,
            (1..=n).collect::<Vec<_>>(),
            "tenant {tenant}: unique and gapless"
        );
        assert_eq!(
            all_offsets(nodes[1].as_ref(), tenant).await,
            offsets,
            "tenant {tenant}: as stored"
        );
        assert_eq!(nodes[2].head(tenant).await.unwrap(), n);
    }
    for ((tenant, id), seen) in &client_ids {
        let originals: Vec<_> = seen.iter().filter(|(_, dup)| !dup).collect();
        let where_stored = seen[0].0;
        assert!(originals.len() <= 1, "{tenant}/{id} stored twice: {seen:?}");
        assert!(seen.iter().all(|(o, _)| *o == where_stored), "{tenant}/{id}: {seen:?}");
    }
    assert!(
        client_ids.values().any(|seen| seen.len() > 1),
        "the test must race client ids across nodes"
    );

    let hot_total = stored["hot"].len() as u64;
    done_tx.send(hot_total).unwrap();
    let (tailed, reads) = tokio::time::timeout(Duration::from_secs(20), tailer)
        .await
        .expect("the tailer caught up")
        .unwrap();
    assert_eq!(tailed, hot_total);
    assert!(reads > 1, "the tailer read while appends were running");
    for node in &nodes {
        node.close().await;
    }
    drop(db);
}
