//! Cost per event of the filter and the transform, against the baselines a sink lane pays
//! anyway: cloning the event's `Value` (the transform works on a copy) and parsing its JSON text.
//!
//! `cargo run --release -p auditrelay-pipeline --example bench [events per run]`
//!
//! Each case runs 5 times over 200,000 events (by default); the median ns/event is printed.

use std::hint::black_box;
use std::time::Instant;

/// A clock for the benchmark. The machine is shared, so wall time includes whatever else ran;
/// the time this thread spent on a CPU (`/proc/thread-self/schedstat`, in ns) does not, and is
/// used where Linux provides it. `BENCH_CLOCK=wall` forces wall time.
#[derive(Clone, Copy)]
enum Clock {
    Cpu,
    Wall(Instant),
}

fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl Clock {
    fn name() -> &'static str {
        if use_cpu() {
            "CPU time of the benchmark thread"
        } else {
            "wall time"
        }
    }

    fn start() -> (Clock, u64) {
        match (use_cpu(), cpu_ns()) {
            (true, Some(ns)) => (Clock::Cpu, ns),
            _ => (Clock::Wall(Instant::now()), 0),
        }
    }

    fn elapsed_ns(self, start: u64) -> u64 {
        match self {
            Clock::Cpu => cpu_ns().unwrap_or(start).saturating_sub(start),
            Clock::Wall(at) => u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

fn use_cpu() -> bool {
    std::env::var("BENCH_CLOCK").map_or(true, |v| v != "wall") && cpu_ns().is_some()
}

use auditrelay_pipeline::{Filter, Transform};
use serde_json::{json, Value};

const RUNS: usize = 5;

/// A typical event as the `json` format renders it (about 600 bytes).
fn event() -> Value {
    json!({
        "offset": 123456,
        "id": "evt_01J9ZK3M5N6P7Q8R9S0T1V2W3X",
        "type": "auth.login.succeeded",
        "tenant_id": "acme",
        "occurred_at": "2026-12-03T18:59:59.123Z",
        "received_at": "2026-12-03T19:00:00.001Z",
        "severity": 8,
        "actor": {"id": "usr_123", "email": "ada@example.com", "ip_address": "192.0.2.7", "type": "user", "name": "Ada Lovelace"},
        "target": {"id": "doc_9", "type": "document", "name": "Q4 forecast.xlsx"},
        "metadata": {"domain": "finance", "env": "staging", "tags": ["a", "b"], "score": 0.75, "request_id": "req_8f3a9c"},
        "chain": "ab".repeat(32)
    })
}

/// Runs `one` on `n` events, `RUNS` times; the median ns per event.
fn measure(n: usize, mut one: impl FnMut(usize)) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let (clock, start) = Clock::start();
            for i in 0..n {
                one(i);
            }
            clock.elapsed_ns(start) as f64 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// Like [`measure`], timing only `one` on fresh clones of the events, made untimed in batches.
fn measure_on_clones(n: usize, events: &[Value], one: impl Fn(&mut Value)) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let mut elapsed = 0u64;
            let mut done = 0;
            while done < n {
                let batch = events.len().min(n - done);
                let mut copies: Vec<Value> = events[..batch].to_vec();
                let (clock, start) = Clock::start();
                for e in &mut copies {
                    one(e);
                }
                elapsed += clock.elapsed_ns(start);
                drop(black_box(copies));
                done += batch;
            }
            elapsed as f64 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 200_000,
    };
    let base = event();
    let text = base.to_string();
    // Events differ a little (offset, severity, domain) so no branch is always taken.
    let events: Vec<Value> = (0..1024)
        .map(|i| {
            let mut e = base.clone();
            e["offset"] = json!(i);
            e["severity"] = json!(i % 10);
            e["metadata"]["domain"] = json!(["finance", "hr", "sales", "it"][i % 4]);
            e
        })
        .collect();
    let pick = |i: usize| &events[i % events.len()];

    let example = Filter::compile(r#"event.severity >= 7 && event.metadata.domain in ["finance", "hr"]"#)?;
    let three = Filter::compile(
        r#"event.severity >= 7 && event.metadata.domain in ["finance", "hr"] && event.type.startsWith("auth.")"#,
    )?;
    let whole = Filter::compile(r#"size(event) > 3 && event.metadata.domain in ["finance", "hr"]"#)?;
    let transform = Transform::parse(&json!({
        "drop": ["actor.email"],
        "redact": ["actor.ip_address"],
        "hash": ["actor.id"],
        "rename": {"metadata.domain": "metadata.folder"},
        "set": {"metadata.env": "prod"}
    }))?;
    let key = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    let one = Filter::compile("event.severity >= 7")?;
    let mut matched = 0usize;
    let rows: Vec<(&str, f64)> = vec![
        (
            "baseline: clone the event Value",
            measure(n, |i| drop(black_box(pick(i).clone()))),
        ),
        (
            "baseline: parse the event's JSON text",
            measure(n, |_| drop(black_box(serde_json::from_str::<Value>(&text)))),
        ),
        (
            "filter: event.severity >= 7 (1 clause)",
            measure(n, |i| {
                matched += usize::from(one.matches(black_box(pick(i))) == Ok(true))
            }),
        ),
        (
            "filter: the api.md example (2 clauses)",
            measure(n, |i| {
                matched += usize::from(example.matches(black_box(pick(i))) == Ok(true))
            }),
        ),
        (
            "filter: 3 clauses (+ type.startsWith)",
            measure(n, |i| {
                matched += usize::from(three.matches(black_box(pick(i))) == Ok(true))
            }),
        ),
        (
            "filter: reads the whole event (size(event))",
            measure(n, |i| {
                matched += usize::from(whole.matches(black_box(pick(i))) == Ok(true))
            }),
        ),
        (
            "transform: clone + one op of each kind",
            measure(n, |i| {
                let mut e = pick(i).clone();
                black_box(transform.apply(&mut e, key));
                drop(black_box(e));
            }),
        ),
    ];
    println!(
        "{n} events per run, median of {RUNS} runs, {} (matched {matched} in all filter runs)",
        Clock::name()
    );
    for (name, ns) in &rows {
        println!("{name:<46} {ns:>9.0} ns/event");
    }
    let alone = measure_on_clones(n, &events, |e| {
        black_box(transform.apply(black_box(e), key));
    });
    println!(
        "{:<46} {alone:>9.0} ns/event",
        "transform alone (timed without the clone)"
    );
    // Each operation alone, to see where the transform's time goes.
    for op in [
        json!({"drop": ["actor.email"]}),
        json!({"redact": ["actor.ip_address"]}),
        json!({"hash": ["actor.id"]}),
        json!({"rename": {"metadata.domain": "metadata.folder"}}),
        json!({"set": {"metadata.env": "prod"}}),
    ] {
        let t = Transform::parse(&op)?;
        let ns = measure_on_clones(n, &events, |e| {
            black_box(t.apply(black_box(e), key));
        });
        println!("  {:<44} {ns:>9.0} ns/event", op.to_string());
    }
    Ok(())
}
