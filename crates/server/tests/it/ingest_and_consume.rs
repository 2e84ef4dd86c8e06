//! Ingest → consume, end to end against the real binary: long-poll order, repeatability,
//! pagination, type filters, idempotent client ids, operator ingest, wake-up latency, SSE resume
//! and heartbeats, and a graceful SIGTERM that loses nothing.

use crate::common;

use std::collections::HashSet;
use std::pin::Pin;
use std::time::{Duration, Instant};

use common::{accepted_ids, ids, offsets, send, TestServer};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

/// A tenant with one key holding `ingest` and `read`.
async fn server_with_tenant(args: &[&str]) -> (TestServer, String) {
    let server = TestServer::spawn_with(args, &[]);
    server.create_tenant("acme").await;
    let key = server.create_key("acme", &["ingest", "read"]).await;
    (server, key)
}

fn accepted(resp: &(u16, Value)) -> Vec<(String, u64)> {
    assert_eq!(resp.0, 202, "ingest: {}", resp.1);
    accepted_ids(&resp.1)
}

#[tokio::test]
async fn ingest_then_long_poll_in_order_repeatable_and_paginated() {
    let (server, key) = server_with_tenant(&[]).await;

    // Three request shapes: one object, an array, NDJSON.
    let mut sent: Vec<(String, u64)> = Vec::new();
    let one = server
        .post_json(
            &key,
            &json!({"type": "user.login", "severity": 3, "outcome": "success", "actor": {"id": "usr_1"}}),
        )
        .await;
    assert_eq!(one.1["accepted"], 1);
    sent.extend(accepted(&one));
    let arr = server
        .post_json(
            &key,
            &json!([{"type": "decision.rejected", "id": "d-1"}, {"type": "user.logout"}, {"type": "decision.approved"}]),
        )
        .await;
    assert_eq!(arr.1["accepted"], 3);
    sent.extend(accepted(&arr));
    let nd = server
        .post_events(
            &key,
            "{\"type\":\"user.login\"}\n\n{\"type\":\"billing.charge\",\"id\":\"b-1\"}\r\n{\"type\":\"user.login\"}\n",
            "application/x-ndjson",
        )
        .await;
    assert_eq!(nd.1["accepted"], 3);
    sent.extend(accepted(&nd));

    assert_eq!(
        sent.iter().map(|s| s.1).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(sent[1].0, "d-1");
    assert_eq!(sent[5].0, "b-1");

    // The whole log, in order, with the server-added fields.
    let (status, first) = server.poll(&key, "after=0").await;
    assert_eq!(status, 200, "{first}");
    let events = first["events"].as_array().expect("events").clone();
    assert_eq!(offsets(&events), (1..=7).collect::<Vec<_>>());
    assert_eq!(ids(&events), sent.iter().map(|s| s.0.clone()).collect::<Vec<_>>());
    assert_eq!(first["next_cursor"], 7);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(
        types,
        [
            "user.login",
            "decision.rejected",
            "user.logout",
            "decision.approved",
            "user.login",
            "billing.charge",
            "user.login"
        ]
    );
    for e in &events {
        assert_eq!(e["tenant_id"], "acme");
        assert!(e["received_at"].is_string(), "{e}");
        assert!(e["occurred_at"].is_string(), "{e}");
    }
    assert_eq!(events[0]["severity"], 3);
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[1]["severity"], 5, "default severity");
    assert_eq!(events[1]["outcome"], "unknown", "default outcome");

    // Same cursor → same answer, byte for byte, every time.
    for _ in 0..3 {
        let again = server.poll(&key, "after=0").await;
        assert_eq!(again.0, 200);
        assert_eq!(again.1, first);
    }
    let mid = server.poll(&key, "after=3&limit=2").await;
    for _ in 0..3 {
        assert_eq!(server.poll(&key, "after=3&limit=2").await, mid);
    }
    assert_eq!(offsets(mid.1["events"].as_array().expect("events")), [4, 5]);

    // Pagination via next_cursor.
    let mut after = 0;
    let mut paged = Vec::new();
    let mut cursors = Vec::new();
    loop {
        let (status, page) = server.poll(&key, &format!("after={after}&limit=3")).await;
        assert_eq!(status, 200, "{page}");
        let evs = page["events"].as_array().expect("events").clone();
        let next = page["next_cursor"].as_u64().expect("next_cursor");
        if evs.is_empty() {
            assert_eq!(next, after, "an empty page keeps the cursor");
            break;
        }
        assert!(evs.len() <= 3);
        cursors.push(next);
        after = next;
        paged.extend(evs);
    }
    assert_eq!(cursors, [3, 6, 7]);
    assert_eq!(&paged, &events, "paging returns the same events as one read");

    // At the head with wait=0: empty at once, cursor unchanged.
    let t = Instant::now();
    let (_, empty) = server.poll(&key, "after=7&wait=0").await;
    assert_eq!(empty, json!({"events": [], "next_cursor": 7}));
    assert!(t.elapsed() < Duration::from_secs(2));

    // Type filters: a glob, a list, an exact type.
    let (_, users) = server.poll(&key, "after=0&types=user.*").await;
    let user_events = users["events"].as_array().expect("events");
    assert_eq!(offsets(user_events), [1, 3, 5, 7]);
    assert_eq!(users["next_cursor"], 7);
    let (_, mixed) = server.poll(&key, "after=1&types=decision.*,billing.charge").await;
    assert_eq!(offsets(mixed["events"].as_array().expect("events")), [2, 4, 6]);
    assert_eq!(mixed["next_cursor"], 6);
    let (_, exact) = server.poll(&key, "after=0&types=user.logout").await;
    assert_eq!(offsets(exact["events"].as_array().expect("events")), [3]);
    let (_, filtered_page) = server.poll(&key, "after=1&types=user.*&limit=2").await;
    assert_eq!(offsets(filtered_page["events"].as_array().expect("events")), [3, 5]);
    assert_eq!(filtered_page["next_cursor"], 5);
    // Filtered events are the very same objects as unfiltered ones.
    assert_eq!(user_events[1], events[2]);
}

#[tokio::test]
async fn repeated_client_ids_get_the_original_offset_and_are_stored_once() {
    let (server, key) = server_with_tenant(&[]).await;

    let first = accepted(&server.post_json(&key, &json!({"type": "a.b", "id": "c-1"})).await);
    assert_eq!(first, [("c-1".to_owned(), 1)]);

    // Twice within one request: both answer offset 2, the second flagged duplicate.
    let within = server
        .post_json(
            &key,
            &json!([{"type": "a.b", "id": "c-2"}, {"type": "a.b", "id": "c-2"}, {"type": "a.b", "id": "c-3"}]),
        )
        .await;
    assert_eq!(
        accepted(&within),
        [("c-2".to_owned(), 2), ("c-2".to_owned(), 2), ("c-3".to_owned(), 3)]
    );
    let evs = within.1["events"].as_array().expect("events");
    assert!(evs[0].get("duplicate").is_none_or(|d| d == false), "{}", within.1);
    assert_eq!(evs[1]["duplicate"], true, "{}", within.1);

    // In a later request, alone and mixed with a new id; and via NDJSON.
    let later = server.post_json(&key, &json!({"type": "a.b", "id": "c-1"})).await;
    assert_eq!(accepted(&later), [("c-1".to_owned(), 1)]);
    assert_eq!(later.1["events"][0]["duplicate"], true);
    assert_eq!(later.1["accepted"], 1);
    let mixed = server
        .post_json(
            &key,
            &json!([{"type": "a.b", "id": "c-4"}, {"type": "x.y", "id": "c-2"}]),
        )
        .await;
    assert_eq!(accepted(&mixed), [("c-4".to_owned(), 4), ("c-2".to_owned(), 2)]);
    let nd = server
        .post_events(
            &key,
            "{\"type\":\"a.b\",\"id\":\"c-3\"}\n{\"type\":\"a.b\",\"id\":\"c-5\"}\n",
            "application/x-ndjson",
        )
        .await;
    assert_eq!(accepted(&nd), [("c-3".to_owned(), 3), ("c-5".to_owned(), 5)]);

    // The log holds each id once, offsets 1..5, and the first version of each event.
    let log = server.read_log("acme").await;
    assert_eq!(offsets(&log), [1, 2, 3, 4, 5]);
    assert_eq!(ids(&log), ["c-1", "c-2", "c-3", "c-4", "c-5"]);
    assert_eq!(log[1]["type"], "a.b", "a repeat does not overwrite the stored event");

    // The next new event continues at 6: repeats used no offsets.
    let next = server.post_json(&key, &json!({"type": "a.b"})).await;
    assert_eq!(accepted(&next)[0].1, 6);

    // The same client id in another tenant is a different event.
    server.create_tenant("other").await;
    let other_key = server.create_key("other", &["ingest"]).await;
    let other = server.post_json(&other_key, &json!({"type": "a.b", "id": "c-1"})).await;
    assert_eq!(accepted(&other), [("c-1".to_owned(), 1)]);
    assert!(other.1["events"][0].get("duplicate").is_none_or(|d| d == false));
}

#[tokio::test]
async fn operator_ingests_with_query_tenant_and_with_tenant_id_in_events() {
    let server = TestServer::spawn();
    server.create_tenant("a").await;
    server.create_tenant("b").await;
    let admin = server.admin.clone();

    let q = server
        .post_events_to(
            "/v1/events?tenant=a",
            &admin,
            json!([{"type": "op.one"}, {"type": "op.two"}]).to_string(),
            "application/json",
        )
        .await;
    assert_eq!(accepted(&q).iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2]);

    let inline = server
        .post_json(
            &admin,
            &json!([
                {"type": "op.three", "tenant_id": "b", "id": "b-first"},
                {"type": "op.four", "tenant_id": "a", "id": "a-third"},
                {"type": "op.five", "tenant_id": "b", "id": "b-second"}
            ]),
        )
        .await;
    assert_eq!(
        accepted(&inline),
        [
            ("b-first".to_owned(), 1),
            ("a-third".to_owned(), 3),
            ("b-second".to_owned(), 2)
        ]
    );

    let a = server.read_log("a").await;
    assert_eq!(offsets(&a), [1, 2, 3]);
    assert!(a.iter().all(|e| e["tenant_id"] == "a"), "{a:?}");
    assert_eq!(a[2]["id"], "a-third");
    let b = server.read_log("b").await;
    assert_eq!(ids(&b), ["b-first", "b-second"]);
    assert_eq!(offsets(&b), [1, 2]);
    assert!(b.iter().all(|e| e["tenant_id"] == "b"), "{b:?}");

    // A tenant key reads its own tenant, the same events the operator sees.
    let a_key = server.create_key("a", &["read"]).await;
    let (status, page) = server.poll(&a_key, "after=0").await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().expect("events"), &a);
    let (status, page) = server.poll(&a_key, "after=0&tenant=a").await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().expect("events"), &a);
}

/// Long-poll with wait=10 parked at the head, then an append: measures from the moment the
/// append's 202 is read to the moment the poll's answer is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_within_50ms_of_an_append() {
    let (server, key) = server_with_tenant(&[]).await;
    // Warm up: connections, the tenant cache, the key cache.
    let warm = server.post_json(&key, &json!({"type": "warm.up"})).await;
    let mut head = accepted(&warm)[0].1;
    let _ = server.poll(&key, "after=0").await;

    let mut latencies_ms = Vec::new();
    for round in 0..5 {
        let http = server.http.clone();
        let url = server.url(&format!("/v1/events?after={head}&wait=10"));
        let poll_key = key.clone();
        let poll = tokio::spawn(async move {
            let resp = http
                .get(url)
                .bearer_auth(poll_key)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("long-poll");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("long-poll body");
            (Instant::now(), status, text)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !poll.is_finished(),
            "round {round}: the poll answered before any append"
        );
        let id = format!("wake-{round}");
        let post = server.post_json(&key, &json!({"type": "wake.up", "id": id})).await;
        let appended = Instant::now();
        let offset = accepted(&post)[0].1;
        assert_eq!(offset, head + 1);
        let (arrived, status, text) = poll.await.expect("poll task");
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).expect("poll JSON");
        assert_eq!(body["events"][0]["id"], id.as_str(), "{body}");
        assert_eq!(body["next_cursor"], offset);
        // Negative when the poll's answer was read before the append's 202.
        let latency = if arrived >= appended {
            arrived.duration_since(appended).as_secs_f64() * 1000.0
        } else {
            -(appended.duration_since(arrived).as_secs_f64() * 1000.0)
        };
        latencies_ms.push(latency);
        head = offset;
    }
    let max = latencies_ms.iter().copied().fold(f64::MIN, f64::max);
    println!("long-poll wake-up latencies after the 202 (ms): {latencies_ms:.3?}; max {max:.3}");
    assert!(max < 50.0, "long-poll wake-up too slow: {latencies_ms:?} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_not_woken_early_by_non_matching_events() {
    let (server, key) = server_with_tenant(&[]).await;
    let base = accepted(&server.post_json(&key, &json!({"type": "noise.seed"})).await)[0].1;

    // wait=1: only non-matching appends happen; the poll answers empty after the full wait.
    let started = Instant::now();
    let http = server.http.clone();
    let url = server.url(&format!("/v1/events?after={base}&wait=1&types=match.*"));
    let k = key.clone();
    let poll = tokio::spawn(async move { send(http.get(url).bearer_auth(k)).await });
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = server
            .post_json(&key, &json!({"type": "noise.event", "id": format!("n-{i}")}))
            .await;
        assert_eq!(r.0, 202);
    }
    let (status, body) = poll.await.expect("poll task");
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"events": [], "next_cursor": base}));
    assert!(
        elapsed >= Duration::from_millis(950),
        "returned after {elapsed:?}, before its wait ran out"
    );

    // wait=10: non-matching appends at ~150 ms, then a matching one at ~600 ms: the poll
    // answers only then, with only the matching event.
    let started = Instant::now();
    let http = server.http.clone();
    let url = server.url(&format!("/v1/events?after={base}&wait=10&types=match.*"));
    let k = key.clone();
    let poll = tokio::spawn(async move { send(http.get(url).bearer_auth(k)).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(server.post_json(&key, &json!({"type": "noise.later"})).await.0, 202);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!poll.is_finished(), "a non-matching event woke the poll");
    let m = accepted(&server.post_json(&key, &json!({"type": "match.me", "id": "m-1"})).await);
    let (status, body) = poll.await.expect("poll task");
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let evs = body["events"].as_array().expect("events");
    assert_eq!(ids(evs), ["m-1"], "{body}");
    assert_eq!(body["next_cursor"], m[0].1);
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

// ---- SSE ----

enum SseItem {
    Event { id: u64, data: Value },
    Comment(String),
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A minimal Server-Sent Events reader.
struct SseClient {
    stream: ByteStream,
    buf: String,
}

impl SseClient {
    async fn connect(server: &TestServer, token: &str, query: &str, last_event_id: Option<u64>) -> SseClient {
        let mut req = server
            .http
            .get(server.url(&format!("/v1/stream?{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("opening the SSE stream");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
        SseClient {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next frame; `None` when the server ended the stream.
    async fn next(&mut self, timeout: Duration) -> Option<SseItem> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                let mut comment = None;
                for line in frame.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        comment = Some(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().expect("numeric SSE id"));
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).expect("SSE data is JSON"));
                    }
                }
                match (id, data, comment) {
                    (Some(id), Some(data), _) => return Some(SseItem::Event { id, data }),
                    (None, None, Some(c)) => return Some(SseItem::Comment(c)),
                    _ => panic!("unexpected SSE frame: {frame:?}"),
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for SSE data");
            match chunk {
                None => return None,
                Some(Ok(bytes)) => self.buf.push_str(std::str::from_utf8(&bytes).expect("SSE is UTF-8")),
                Some(Err(e)) => panic!("SSE stream error: {e}"),
            }
        }
    }

    /// The next event, skipping comments.
    async fn next_event(&mut self) -> (u64, Value) {
        loop {
            match self.next(Duration::from_secs(20)).await {
                Some(SseItem::Event { id, data }) => return (id, data),
                Some(SseItem::Comment(_)) => continue,
                None => panic!("the SSE stream ended"),
            }
        }
    }
}

#[tokio::test]
async fn sse_resumes_with_last_event_id_without_gap_or_repeat() {
    let (server, key) = server_with_tenant(&[]).await;
    let batch: Vec<Value> = (1..=10)
        .map(|i| json!({"type": "sse.event", "id": format!("s-{i}")}))
        .collect();
    assert_eq!(server.post_json(&key, &Value::Array(batch)).await.0, 202);

    // First connection from the start; read four events, then hang up.
    let mut sse = SseClient::connect(&server, &key, "after=0", None).await;
    let mut last = 0;
    for expected in 1..=4u64 {
        let (id, data) = sse.next_event().await;
        assert_eq!(id, expected);
        assert_eq!(data["offset"], expected);
        assert_eq!(data["id"], format!("s-{expected}"));
        assert_eq!(data["tenant_id"], "acme");
        last = id;
    }
    drop(sse);

    // More events while disconnected.
    let batch: Vec<Value> = (11..=15)
        .map(|i| json!({"type": "sse.event", "id": format!("s-{i}")}))
        .collect();
    assert_eq!(server.post_json(&key, &Value::Array(batch)).await.0, 202);

    // Resume: exactly 5..=15, then live events as they are appended.
    let mut sse = SseClient::connect(&server, &key, "", Some(last)).await;
    for expected in 5..=15u64 {
        let (id, data) = sse.next_event().await;
        assert_eq!(id, expected, "resumed stream must continue at {expected}");
        assert_eq!(data["offset"], expected);
        assert_eq!(data["id"], format!("s-{expected}"));
    }
    assert_eq!(
        server
            .post_json(&key, &json!({"type": "sse.live", "id": "s-16"}))
            .await
            .0,
        202
    );
    let (id, data) = sse.next_event().await;
    assert_eq!((id, data["id"].as_str()), (16, Some("s-16")));
    drop(sse);

    // Last-Event-ID wins over ?after=, and a type filter keeps offsets as ids.
    let mut sse = SseClient::connect(&server, &key, "after=0&types=sse.live", Some(10)).await;
    let (id, data) = sse.next_event().await;
    assert_eq!((id, data["type"].as_str()), (16, Some("sse.live")));
    drop(sse);

    // With neither, the stream starts at the head: only new events.
    let mut sse = SseClient::connect(&server, &key, "", None).await;
    // Give the server a moment to read the head before the append.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server
            .post_json(&key, &json!({"type": "sse.live", "id": "s-17"}))
            .await
            .0,
        202
    );
    let (id, _) = sse.next_event().await;
    assert_eq!(id, 17);
}

#[tokio::test]
async fn sse_sends_heartbeat_comments_on_idle_streams() {
    let (server, key) = server_with_tenant(&["--sse-heartbeat-secs", "1"]).await;
    let mut sse = SseClient::connect(&server, &key, "", None).await;
    let started = Instant::now();
    let mut heartbeats = 0;
    while heartbeats < 2 {
        match sse.next(Duration::from_secs(5)).await {
            Some(SseItem::Comment(c)) => {
                assert_eq!(c, "heartbeat");
                heartbeats += 1;
            }
            Some(SseItem::Event { id, .. }) => panic!("unexpected event {id} on an idle tenant"),
            None => panic!("the SSE stream ended"),
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "two heartbeats took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_exits_zero_and_data_survives_restart() {
    let (mut server, key) = server_with_tenant(&[]).await;
    for chunk in 0..4 {
        let batch: Vec<Value> = (0..5)
            .map(|i| json!({"type": "keep.me", "id": format!("k-{chunk}-{i}")}))
            .collect();
        assert_eq!(server.post_json(&key, &Value::Array(batch)).await.0, 202);
    }
    let before = server.read_log("acme").await;
    assert_eq!(offsets(&before), (1..=20).collect::<Vec<_>>());

    // An idle long-poll and an idle SSE stream must not hold the shutdown up (the poll filters
    // on a type nobody writes, so the writers below do not answer it).
    let http = server.http.clone();
    let url = server.url("/v1/events?after=20&wait=30&types=never.written");
    let k = key.clone();
    let parked = tokio::spawn(async move {
        let r = http.get(url).bearer_auth(k).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    });
    let mut sse = SseClient::connect(&server, &key, "types=never.written", None).await;

    // Writers keep appending while SIGTERM arrives: every 202 must survive.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let http = server.http.clone();
        let url = server.url("/v1/events");
        let k = key.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("t-{w}-{n}");
                n += 1;
                let r = http
                    .post(&url)
                    .bearer_auth(&k)
                    .timeout(Duration::from_secs(20))
                    .json(&json!({"type": "during.shutdown", "id": id}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 202 => acked.push(id),
                    // 503 while draining, or the connection closed: stop.
                    Ok(r) => {
                        assert_eq!(r.status().as_u16(), 503, "unexpected status during shutdown");
                        break;
                    }
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t = Instant::now();
    let status = server.sigterm().await;
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(status.success(), "SIGTERM exit status: {status}");
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    println!("graceful shutdown took {took:?}");

    let (poll_status, poll_body) = tokio::time::timeout(Duration::from_secs(10), parked)
        .await
        .expect("the parked long-poll did not finish")
        .expect("poll task")
        .expect("the parked long-poll was cut instead of answered");
    assert_eq!(poll_status, 200, "{poll_body}");
    let poll_body: Value = serde_json::from_str(&poll_body).expect("JSON");
    assert_eq!(poll_body, json!({"events": [], "next_cursor": 20}));

    // The SSE stream ends cleanly.
    loop {
        match sse.next(Duration::from_secs(10)).await {
            None => break,
            Some(SseItem::Comment(_)) => continue,
            Some(SseItem::Event { id, .. }) => panic!("unexpected SSE event {id}"),
        }
    }

    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }

    server.restart();
    let after = server.read_log("acme").await;
    assert_eq!(&after[..20], &before[..], "events from before the shutdown changed");
    assert_eq!(offsets(&after), (1..=after.len() as u64).collect::<Vec<_>>());
    let present: HashSet<String> = ids(&after).into_iter().collect();
    assert_eq!(present.len(), after.len(), "an id is stored twice");
    for id in &acked {
        assert!(
            present.contains(id),
            "{id} was answered 202 but is missing after restart"
        );
    }
    println!("{} appends acknowledged during the shutdown window", acked.len());

    // The log continues without reusing offsets; keys still work.
    let next = server.post_json(&key, &json!({"type": "after.restart"})).await;
    assert_eq!(accepted(&next)[0].1, after.len() as u64 + 1);
}
