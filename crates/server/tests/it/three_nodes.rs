#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Three real nodes on one PostgreSQL database, six webhook sinks, ingest spread over every
//! node; one node is SIGKILLed mid-stream and another restarted. Every receiver ends with every
//! 202'd event, no sink is ever driven by two nodes at once (each receiver holds every request
//! for `HOLD`, and one driver with `max_in_flight: 1` cannot send the next batch before the
//! previous answer — so requests closer together than `HOLD` mean two drivers), and the dead
//! node's leases move within the documented time (TTL 10 s + one 2 s heartbeat).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{FreshDatabase, PgProxy};
use common::receiver::{Fault, Receiver};
use common::{send, TestServer};
use serde_json::json;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SINKS: usize = 6;
const HOLD: Duration = Duration::from_millis(25);
/// docs/deployment-postgres.md: a dead node's sinks move within the lease TTL plus a heartbeat.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(12);

fn node(url: &str) -> TestServer {
    TestServer::spawn_with(
        &["--database-url", url, "--allow-private-networks"],
        &[("AUDITRELAY_MASTER_KEY", MASTER_KEY)],
    )
}

/// The engine's node id, from the server log.
fn node_id(server: &TestServer) -> String {
    let log = server.log();
    let ids: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("delivery engine started"))
        .filter_map(|l| l.split("node=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    ids.last().expect("the node logged its id").trim_matches('"').to_owned()
}

/// Live lease holders: owner → sinks held.
fn holders(db: &FreshDatabase) -> HashMap<String, usize> {
    db.query("SELECT owner, count(*) FROM sink_leases WHERE expires_at > now() GROUP BY owner")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(owner, n)| (owner.to_owned(), n.parse().unwrap()))
        .collect()
}

async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_sinks_survive_a_kill_and_a_restart() {
    let db = FreshDatabase::create("three");
    let mut nodes = [node(&db.url()), node(&db.url()), node(&db.url())];
    nodes[0].create_tenant("acme").await;

    let mut receivers = Vec::new();
    for i in 0..SINKS {
        let r = Receiver::start().await;
        r.set_default(Some(Fault::Hang(HOLD)));
        let (status, sink) = send(
            nodes[i % 3]
                .http
                .post(nodes[i % 3].url("/v1/sinks"))
                .bearer_auth(&nodes[i % 3].admin)
                .json(&json!({
                    "name": format!("hook-{i}"), "kind": "webhook", "tenant": "acme",
                    "config": { "url": r.url() },
                    "start_at": "earliest",
                    "batch": { "max_events": 50, "flush_interval_ms": 0 },
                    "max_in_flight": 1,
                    "retry": { "max_attempts": 100, "initial_backoff_ms": 5, "max_backoff_ms": 100 },
                    "timeout_ms": 5000,
                })),
        )
        .await;
        assert_eq!(status, 201, "{sink}");
        receivers.push(r);
    }
    let took = wait_until(Duration::from_secs(20), "every node drives two sinks", || {
        let h = holders(&db);
        h.len() == 3 && h.values().all(|&n| n == 2)
    })
    .await;
    eprintln!("work spread over three nodes {took:?} after the sinks were created");

    // Ingest round robin over whichever nodes answer; only 202s count.
    let bases = Arc::new(Mutex::new(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let http = nodes[0].http.clone();
    let admin = nodes[0].admin.clone();
    let ingest = {
        let (bases, stop) = (bases.clone(), stop.clone());
        tokio::spawn(async move {
            let mut accepted: Vec<String> = Vec::new();
            let mut per_node: HashMap<usize, usize> = HashMap::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let target = i % 3;
                let base = bases.lock().unwrap()[target].clone();
                let ids: Vec<String> = (0..5).map(|k| format!("ev-{i}-{k}")).collect();
                let body: Vec<_> = ids.iter().map(|id| json!({"type": "a.b", "id": id})).collect();
                let answer = http
                    .post(format!("{base}/v1/events?tenant=acme"))
                    .bearer_auth(&admin)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if let Ok(resp) = answer {
                    if resp.status().as_u16() == 202 {
                        accepted.extend(ids);
                        *per_node.entry(target).or_default() += 1;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (accepted, per_node)
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead = node_id(&nodes[1]);
    assert!(holders(&db).contains_key(&dead), "node 1 drives sinks before it dies");
    nodes[1].kill_9().await;
    let killed_at = Instant::now();
    let moved = wait_until(
        Duration::from_secs(30),
        "the dead node's sinks move to the others",
        || {
            let h = holders(&db);
            !h.contains_key(&dead) && h.values().sum::<usize>() == SINKS
        },
    )
    .await;
    eprintln!("leases of the SIGKILLed node moved {moved:?} after the kill");
    assert!(moved <= TAKEOVER_WITHIN + Duration::from_secs(1), "took {moved:?}");

    // A graceful restart of node 2 hands its sinks over at once, then takes a share back.
    nodes[2].sigterm().await;
    nodes[2].restart();
    bases.lock().unwrap()[2] = nodes[2].base.clone();
    let respread = wait_until(Duration::from_secs(30), "the restarted node drives sinks again", || {
        holders(&db).contains_key(&node_id(&nodes[2]))
    })
    .await;
    eprintln!("restarted node drives sinks again {respread:?} after its restart");
    nodes[1].restart();
    bases.lock().unwrap()[1] = nodes[1].base.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let (accepted, per_node) = ingest.await.unwrap();
    eprintln!(
        "{} events accepted, requests per node {per_node:?}, kill-to-end {:?}",
        accepted.len(),
        killed_at.elapsed()
    );
    assert!(per_node.len() == 3, "ingest spread over all nodes: {per_node:?}");
    assert!(accepted.len() >= 500, "{}", accepted.len());

    let expected: HashSet<String> = accepted.into_iter().collect();
    for (i, r) in receivers.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !expected.is_subset(&r.accepted_ids()) {
            assert!(Instant::now() < deadline, "sink {i} misses events");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let requests = r.requests();
        for pair in requests.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= HOLD - Duration::from_millis(1),
                "sink {i}: two requests {gap:?} apart while each is held {HOLD:?}: two nodes drove it at once"
            );
        }
        eprintln!("sink {i}: {} requests, no overlap", requests.len());
    }
}

/// A node cut off from the database (alive, but its connections dropped by a proxy) stops
/// driving its sinks before its leases expire; the other node takes them over within the
/// documented time; when the database comes back the node gets a share again, and no sink is
/// ever driven twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_database_stops_before_its_sinks_move() {
    let db = FreshDatabase::create("partition");
    let proxy = PgProxy::start().await;
    let cut_off = node(&db.url_via(proxy.port));
    let steady = node(&db.url());
    steady.create_tenant("acme").await;
    let mut receivers = Vec::new();
    for i in 0..2 {
        let r = Receiver::start().await;
        r.set_default(Some(Fault::Hang(HOLD)));
        let (status, sink) = send(
            steady
                .http
                .post(steady.url("/v1/sinks"))
                .bearer_auth(&steady.admin)
                .json(&json!({
                    "name": format!("hook-{i}"), "kind": "webhook", "tenant": "acme",
                    "config": { "url": r.url() },
                    "start_at": "earliest",
                    "batch": { "max_events": 20, "flush_interval_ms": 0 },
                    "max_in_flight": 1,
                    "timeout_ms": 1000,
                })),
        )
        .await;
        assert_eq!(status, 201, "{sink}");
        receivers.push(r);
    }
    let victim = node_id(&cut_off);
    wait_until(Duration::from_secs(20), "each node drives one sink", || {
        let h = holders(&db);
        h.len() == 2 && h.get(&victim) == Some(&1)
    })
    .await;

    let mut accepted: HashSet<String> = HashSet::new();
    accepted.extend(ingest_batches(&steady, "before", 20).await);

    proxy.cut();
    let cut_at = Instant::now();
    // The cut-off node notices and stops its worker before its lease can expire…
    wait_until(Duration::from_secs(12), "the cut-off node stops its workers", || {
        cut_off
            .log()
            .contains("leases could not be renewed in time; stopping their workers")
    })
    .await;
    let stopped_after = cut_at.elapsed();
    // …and the other node takes the sink over.
    let moved = wait_until(Duration::from_secs(20), "the steady node drives both sinks", || {
        holders(&db).get(&steady_id(&steady)) == Some(&2)
    })
    .await;
    eprintln!(
        "cut-off node stopped its workers {stopped_after:?} after the cut; its sink moved {:?} after the cut",
        cut_at.elapsed()
    );
    assert!(
        stopped_after < Duration::from_secs(10),
        "stopped only after {stopped_after:?}"
    );
    assert!(moved + stopped_after <= TAKEOVER_WITHIN + Duration::from_secs(2));
    accepted.extend(ingest_batches(&steady, "during", 20).await);

    proxy.restore();
    wait_until(
        Duration::from_secs(30),
        "the reconnected node drives a sink again",
        || holders(&db).get(&victim) == Some(&1),
    )
    .await;
    accepted.extend(ingest_batches(&steady, "after", 20).await);

    for (i, r) in receivers.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !accepted.is_subset(&r.accepted_ids()) {
            assert!(Instant::now() < deadline, "sink {i} misses events");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for pair in r.requests().windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= HOLD - Duration::from_millis(1),
                "sink {i}: two drivers ({gap:?} apart)"
            );
        }
    }
}

fn steady_id(server: &TestServer) -> String {
    node_id(server)
}

/// Posts `n` requests of five events with client ids; every one must get a 202.
async fn ingest_batches(server: &TestServer, label: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..n {
        let ids: Vec<String> = (0..5).map(|j| format!("{label}-{k}-{j}")).collect();
        let body: Vec<_> = ids.iter().map(|id| json!({"type": "a.b", "id": id})).collect();
        let (status, answer) = send(
            server
                .http
                .post(server.url("/v1/events?tenant=acme"))
                .bearer_auth(&server.admin)
                .json(&body),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        out.extend(ids);
    }
    out
}
