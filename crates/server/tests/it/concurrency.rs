//! Concurrent writers and cursor-following readers: 32 writers over 4 tenants, one long-poll
//! reader per tenant following `next_cursor`. Each reader sees every event of its tenant
//! exactly once, at offsets 1, 2, 3, … in order, and the offsets the writers were given.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const TENANTS: [&str; 4] = ["t0", "t1", "t2", "t3"];
const WRITERS_PER_TENANT: usize = 8;
const REQUESTS_PER_WRITER: usize = 50;

/// Events in request `n` of writer `w`: 1–5, deterministic.
fn request_size(w: usize, n: usize) -> usize {
    (w * 7 + n * 3) % 5 + 1
}

fn expected_events(tenant_index: usize) -> usize {
    (0..WRITERS_PER_TENANT)
        .map(|i| {
            let w = tenant_index * WRITERS_PER_TENANT + i;
            (0..REQUESTS_PER_WRITER).map(|n| request_size(w, n)).sum::<usize>()
        })
        .sum()
}

async fn write(http: reqwest::Client, url: String, key: String, w: usize) -> HashMap<String, u64> {
    let mut acked = HashMap::new();
    for n in 0..REQUESTS_PER_WRITER {
        let ids: Vec<String> = (0..request_size(w, n)).map(|i| format!("w{w}-{n}-{i}")).collect();
        let body: Vec<Value> = ids
            .iter()
            .map(|id| json!({"type": format!("load.w{}", w % 3), "id": id}))
            .collect();
        let resp = http
            .post(&url)
            .bearer_auth(&key)
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await
            .expect("posting events");
        assert_eq!(resp.status().as_u16(), 202);
        let v: Value = resp.json().await.expect("202 JSON");
        let events = v["events"].as_array().expect("events");
        assert_eq!(events.len(), ids.len());
        let mut last = 0;
        for (e, id) in events.iter().zip(&ids) {
            assert_eq!(e["id"], id.as_str());
            let off = e["offset"].as_u64().expect("offset");
            // One request's events are consecutive.
            assert!(last == 0 || off == last + 1, "offsets within a request: {v}");
            last = off;
            acked.insert(id.clone(), off);
        }
    }
    acked
}

/// Follows the tenant's log from 0 with long-polls until `expected` events were seen.
async fn follow(http: reqwest::Client, base: String, key: String, expected: usize) -> (Vec<(u64, String)>, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<(u64, String)> = Vec::with_capacity(expected);
    let mut cursor = 0u64;
    let mut polls = 0;
    while seen.len() < expected {
        assert!(
            Instant::now() < deadline,
            "reader stuck at {} of {expected} events",
            seen.len()
        );
        let resp = http
            .get(format!("{base}/v1/events?after={cursor}&wait=5&limit=200"))
            .bearer_auth(&key)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("long-poll");
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.expect("poll JSON");
        polls += 1;
        let events = v["events"].as_array().expect("events");
        let next = v["next_cursor"].as_u64().expect("next_cursor");
        if events.is_empty() {
            assert_eq!(next, cursor);
            continue;
        }
        for e in events {
            let off = e["offset"].as_u64().expect("offset");
            assert_eq!(off, cursor + 1, "the reader saw a gap or a repeat");
            cursor = off;
            seen.push((off, e["id"].as_str().expect("id").to_owned()));
        }
        assert_eq!(next, cursor);
    }
    // Nothing beyond what was written.
    let resp = http
        .get(format!("{base}/v1/events?after={cursor}&wait=0"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("final poll");
    let v: Value = resp.json().await.expect("poll JSON");
    assert_eq!(v, json!({"events": [], "next_cursor": cursor}));
    (seen, polls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_cursor_readers_see_every_event_once_in_order() {
    let server = TestServer::spawn();
    let mut keys = Vec::new();
    for t in TENANTS {
        server.create_tenant(t).await;
        keys.push(server.create_key(t, &["ingest", "read"]).await);
    }
    let started = Instant::now();

    // Readers first, so they follow the writes live.
    let readers: Vec<_> = (0..TENANTS.len())
        .map(|ti| {
            tokio::spawn(follow(
                server.http.clone(),
                server.base.clone(),
                keys[ti].clone(),
                expected_events(ti),
            ))
        })
        .collect();
    let writers: Vec<_> = (0..TENANTS.len() * WRITERS_PER_TENANT)
        .map(|w| {
            let ti = w / WRITERS_PER_TENANT;
            (
                ti,
                tokio::spawn(write(
                    server.http.clone(),
                    server.url("/v1/events"),
                    keys[ti].clone(),
                    w,
                )),
            )
        })
        .collect();

    let mut acked: Vec<HashMap<String, u64>> = vec![HashMap::new(); TENANTS.len()];
    for (ti, w) in writers {
        acked[ti].extend(w.await.expect("writer task"));
    }
    let wrote = started.elapsed();

    for (ti, reader) in readers.into_iter().enumerate() {
        let (seen, polls) = reader.await.expect("reader task");
        let expected = expected_events(ti);
        assert_eq!(seen.len(), expected);
        assert_eq!(acked[ti].len(), expected, "every id acknowledged once");
        // Offsets 1..N, each id once, each at the offset its writer was told.
        let offsets: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(offsets, (1..=expected as u64).collect::<Vec<_>>());
        let mut by_id = HashMap::new();
        for (off, id) in &seen {
            assert!(by_id.insert(id.clone(), *off).is_none(), "{id} seen twice");
        }
        assert_eq!(by_id, acked[ti], "tenant {}: reader and writers disagree", TENANTS[ti]);
        // Each writer's events appear in the order it sent them.
        let mut last_per_writer: HashMap<&str, u64> = HashMap::new();
        for (off, id) in &seen {
            let w = id.split('-').next().expect("writer prefix");
            let prev = last_per_writer.insert(w, *off).unwrap_or(0);
            assert!(*off > prev);
        }
        println!("tenant {}: {expected} events followed in {polls} polls", TENANTS[ti]);
    }
    println!(
        "writes finished in {wrote:?}, all readers done in {:?}",
        started.elapsed()
    );
}
