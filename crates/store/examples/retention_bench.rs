//! What the hash chain costs an append, and whether a purge stalls ingest.
//!
//! `cargo run --release -p auditrelay-store --example retention_bench -- [EVENTS] [postgres://…]`
//! (or `scripts/bench-retention`). Without a URL it runs on a fresh SQLite data dir.
//!
//! 1. Chain cost: SHA-256 linking of EVENTS canonical events alone (CPU), against the time the
//!    same events take to append in batches of 100.
//! 2. Purge under ingest: tenant `old` holds EVENTS events; tenant `live` appends batches of 10
//!    in a loop, first alone (baseline), then while `old` is purged the way the server's
//!    retention pass does it (`purge_paced`). Append latency percentiles for both, and purge throughput.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::{parse_request, BodyFormat, Limits, NewEvent};
use auditrelay_store::chain::{link_new, GENESIS};
use auditrelay_store::postgres::PostgresStore;
use auditrelay_store::purge::{purge_paced, CHUNK};
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::Store;

fn batch(tenant: &str, from: usize, n: usize) -> Vec<NewEvent> {
    let body: Vec<String> = (from..from + n)
        .map(|k| {
            format!(
                r#"{{"type":"user.login","action":"login","actor":{{"id":"usr_{}","ip_address":"203.0.113.42"}},"outcome":"success","metadata":{{"k":{k},"tags":["a","b"]}}}}"#,
                k % 977
            )
        })
        .collect();
    parse_request(
        format!("[{}]", body.join(",")).as_bytes(),
        BodyFormat::Json,
        &Limits::default(),
    )
    .expect("valid events")
    .into_iter()
    .map(|p| p.into_new_event(tenant.to_owned(), "2026-01-01T00:00:00.000Z"))
    .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "  {what}: {} appends of 10, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Appends batches of 10 to `live` until `stop`, returning each append's latency.
async fn live_appends(store: Arc<dyn Store>, stop: Arc<AtomicBool>, start: usize) -> Vec<Duration> {
    let mut lat = Vec::new();
    let mut k = start;
    while !stop.load(Ordering::Relaxed) {
        let events = batch("live", k, 10);
        let t = Instant::now();
        store.append(events).await.expect("append");
        lat.push(t.elapsed());
        k += 10;
    }
    lat
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let url = args.next();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: Arc<dyn Store> = match &url {
        Some(url) => Arc::new(
            PostgresStore::connect(url, None)
                .await
                .expect("connecting to PostgreSQL"),
        ),
        None => Arc::new(SqliteStore::open(dir.path(), None).expect("opening SQLite")),
    };
    println!("backend: {}", if url.is_some() { "postgres" } else { "sqlite" });
    for t in ["old", "live"] {
        store.create_tenant(t, t).await.expect("creating a tenant");
    }

    // 1. The chain's share of an append.
    let sample: Vec<NewEvent> = (0..n.min(200_000))
        .step_by(1000)
        .flat_map(|k| batch("x", k, 1000))
        .collect();
    let t = Instant::now();
    let mut chain = GENESIS;
    for (i, ev) in sample.iter().enumerate() {
        chain = link_new(&chain, i as u64 + 1, ev).expect("linking");
    }
    let per_link = t.elapsed().as_secs_f64() / sample.len() as f64;
    std::hint::black_box(chain);
    let t = Instant::now();
    let mut k = 0;
    while k < n {
        let size = 100.min(n - k);
        store.append(batch("old", k, size)).await.expect("append");
        k += size;
    }
    let per_append = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "chain: {:.2} µs per event to link, {:.2} µs per event to append (batches of 100): the chain is {:.1}% of an append; {} events appended at {:.0} ev/s",
        per_link * 1e6,
        per_append * 1e6,
        100.0 * per_link / per_append,
        n,
        1.0 / per_append
    );

    // 2. Ingest alone, then ingest while the whole of `old` is purged.
    println!("purge under ingest:");
    let stop = Arc::new(AtomicBool::new(false));
    let live = tokio::spawn(live_appends(store.clone(), stop.clone(), 0));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    report("baseline (no purge)", live.await.expect("the append loop"));

    let stop = Arc::new(AtomicBool::new(false));
    let live = tokio::spawn(live_appends(store.clone(), stop.clone(), 1_000_000));
    let t = Instant::now();
    let through = purge_paced(store.as_ref(), "old", 0, n as u64, || false)
        .await
        .expect("purging");
    assert_eq!(through, n as u64);
    let purge = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    report("during the purge", live.await.expect("the append loop"));
    println!(
        "  purged {n} events in {:.1} s: {:.0} events/s, chunks of {CHUNK}",
        purge.as_secs_f64(),
        n as f64 / purge.as_secs_f64()
    );
    store.close().await;
}
