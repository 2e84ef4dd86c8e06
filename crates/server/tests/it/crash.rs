//! Crash safety: SIGKILL the server while 16 writers are mid-request, restart it on the same
//! data dir, and check every tenant's log: each 202'd event present exactly once at the offset
//! it was given, offsets 1..N without a gap, nothing from a refused request, and each request
//! whose outcome the client never learned stored entirely or not at all. Three kill cycles.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{accepted_ids, TestServer};
use serde_json::{json, Value};

const TENANTS: [&str; 2] = ["alpha", "beta"];
const WRITERS: usize = 16;
const CYCLES: usize = 3;
const WRITE_FOR: Duration = Duration::from_millis(1500);

/// What the clients learned, per tenant.
#[derive(Default)]
struct Ledger {
    /// id → offset from a 202.
    acked: HashMap<String, u64>,
    /// Ids of requests answered with an error status: must never be stored.
    refused: HashSet<String>,
    /// Requests cut off without an answer: each stored entirely or not at all.
    unknown: Vec<Vec<String>>,
}

enum Outcome {
    Acked(Vec<(String, u64)>),
    Refused(u16, Vec<String>),
    Unknown(Vec<String>),
}

async fn writer(
    http: reqwest::Client,
    url: String,
    key: String,
    cycle: usize,
    w: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // A mix of 1-event and 10-event requests.
        let size = match (n + w) % 3 {
            0 => 10,
            _ => 1,
        };
        let ids: Vec<String> = (0..size).map(|i| format!("c{cycle}-w{w}-{n}-{i}")).collect();
        n += 1;
        let body: Vec<Value> = ids
            .iter()
            .map(|id| json!({"type": "crash.test", "id": id, "metadata": {"writer": w}}))
            .collect();
        let resp = http
            .post(&url)
            .bearer_auth(&key)
            .timeout(Duration::from_secs(30))
            .json(&body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(_) => {
                out.push(Outcome::Unknown(ids));
                break;
            }
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(_) => {
                out.push(Outcome::Unknown(ids));
                break;
            }
        };
        if status != 202 {
            out.push(Outcome::Refused(status, ids));
            continue;
        }
        let v: Value = serde_json::from_str(&text).expect("a 202 carries JSON");
        let got: Vec<(String, u64)> = accepted_ids(&v);
        assert_eq!(
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            ids.iter().collect::<Vec<_>>()
        );
        assert!(v["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e.get("duplicate").is_none()));
        out.push(Outcome::Acked(got));
    }
    out
}

/// Checks one tenant's log against what its clients learned; returns (events, unknown requests
/// found stored, unknown requests not stored).
async fn verify(server: &TestServer, tenant: &str, ledger: &Ledger) -> (usize, usize, usize) {
    let log = server.read_log(tenant).await;
    let offsets: Vec<u64> = log.iter().map(|e| e["offset"].as_u64().expect("offset")).collect();
    assert_eq!(
        offsets,
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "{tenant}: offsets must be exactly 1..N"
    );
    let mut present: HashMap<String, u64> = HashMap::new();
    for e in &log {
        assert_eq!(e["tenant_id"], tenant);
        let id = e["id"].as_str().expect("id").to_owned();
        let off = e["offset"].as_u64().expect("offset");
        assert!(
            present.insert(id.clone(), off).is_none(),
            "{tenant}: id {id} stored twice"
        );
    }
    for (id, off) in &ledger.acked {
        assert_eq!(
            present.get(id),
            Some(off),
            "{tenant}: {id} was answered 202 at offset {off}"
        );
    }
    for id in &ledger.refused {
        assert!(!present.contains_key(id), "{tenant}: {id} was refused yet stored");
    }
    let unknown: HashSet<&String> = ledger.unknown.iter().flatten().collect();
    for id in present.keys() {
        assert!(
            ledger.acked.contains_key(id) || unknown.contains(id),
            "{tenant}: {id} is stored but was never acknowledged nor in flight"
        );
    }
    let (mut stored, mut lost) = (0, 0);
    for req in &ledger.unknown {
        let n = req.iter().filter(|id| present.contains_key(*id)).count();
        assert!(
            n == 0 || n == req.len(),
            "{tenant}: a request was partly stored ({n} of {}: {req:?})",
            req.len()
        );
        if n == 0 {
            lost += 1;
        } else {
            stored += 1;
        }
    }
    (log.len(), stored, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_event() {
    let mut server = TestServer::spawn();
    let mut keys = HashMap::new();
    for t in TENANTS {
        server.create_tenant(t).await;
        keys.insert(t, server.create_key(t, &["ingest"]).await);
    }
    let mut ledgers: HashMap<&str, Ledger> = TENANTS.iter().map(|t| (*t, Ledger::default())).collect();

    for cycle in 0..CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let tenant = TENANTS[w % TENANTS.len()];
            tasks.push((
                tenant,
                tokio::spawn(writer(
                    server.http.clone(),
                    server.url("/v1/events"),
                    keys[tenant].clone(),
                    cycle,
                    w,
                    stop.clone(),
                )),
            ));
        }
        tokio::time::sleep(WRITE_FOR).await;
        // Kill while requests are in flight; the writers find out by their connections dying.
        let status = server.kill_9().await;
        assert!(!status.success(), "SIGKILL exit status: {status}");
        stop.store(true, Ordering::Relaxed);

        let (mut acked_reqs, mut refused_reqs, mut unknown_reqs) = (0, 0, 0);
        for (tenant, task) in tasks {
            let ledger = ledgers.get_mut(tenant).expect("ledger");
            for outcome in task.await.expect("writer task") {
                match outcome {
                    Outcome::Acked(got) => {
                        acked_reqs += 1;
                        for (id, off) in got {
                            assert!(ledger.acked.insert(id, off).is_none());
                        }
                    }
                    Outcome::Refused(status, ids) => {
                        eprintln!("cycle {cycle}: a request was refused with {status}");
                        refused_reqs += 1;
                        ledger.refused.extend(ids);
                    }
                    Outcome::Unknown(ids) => {
                        unknown_reqs += 1;
                        ledger.unknown.push(ids);
                    }
                }
            }
        }

        server.restart();
        let mut summary = Vec::new();
        for t in TENANTS {
            let (events, stored, lost) = verify(&server, t, &ledgers[t]).await;
            summary.push(format!(
                "{t}: {events} events, {} acked, unknown requests stored/not {stored}/{lost}",
                ledgers[t].acked.len()
            ));
        }
        println!(
            "cycle {cycle}: {acked_reqs} requests acked, {refused_reqs} refused, {unknown_reqs} cut off; {}",
            summary.join("; ")
        );
        assert!(acked_reqs > 0, "cycle {cycle}: no request succeeded");
        assert!(unknown_reqs > 0, "cycle {cycle}: the kill did not cut any request");
    }

    // After the crashes the log continues at N+1: no reuse, no gap.
    for t in TENANTS {
        let head = server.read_log(t).await.len() as u64;
        let r = server.post_json(&keys[t], &json!({"type": "crash.after"})).await;
        assert_eq!(r.0, 202, "{}", r.1);
        assert_eq!(r.1["events"][0]["offset"], head + 1);
    }
}
