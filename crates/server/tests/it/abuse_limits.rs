//! Abuse limits: per-key rate limit (429 + Retry-After + JSON), the cap on open long-polls and
//! SSE streams per key, and slow clients (headers or a body trickled byte by byte) cut off
//! within the configured timeout while normal clients are served.

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_error, send, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_tenant(s: &TestServer, token: &str) -> reqwest::Response {
    s.http
        .get(s.url("/v1/tenants/acme"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sending")
}

#[tokio::test]
async fn a_burst_over_the_key_limit_gets_429_with_retry_after_and_other_keys_do_not_notice() {
    // The rate comes from the TOML file and the burst from the environment (flags are used by
    // the other tests), so each way of setting them is exercised.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("auditrelay.toml");
    std::fs::write(&config, "rate_limit_rps = 2\nmax_streams_per_key = 4\n").expect("writing the config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let s = TestServer::spawn_with(&["--config", &config], &[("AUDITRELAY_RATE_LIMIT_BURST", "10")]);
    s.create_tenant("acme").await;
    let noisy = s.create_key("acme", &["read"]).await;
    let quiet = s.create_key("acme", &["read"]).await;

    // The burst passes (a slow machine may refill a token or two meanwhile), then 429.
    let mut passed = 0;
    let r = loop {
        let r = get_tenant(&s, &noisy).await;
        if r.status() != 200 {
            break r;
        }
        passed += 1;
        assert!(passed <= 13, "no 429 after {passed} requests with a burst of 10");
    };
    assert!(
        passed >= 10,
        "only {passed} requests passed before the 429; the burst is 10"
    );
    assert_eq!(r.status(), 429, "over the burst");
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After header");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = r.json().await.expect("a JSON error body");
    assert_error(&(429, body.clone()), 429, "rate_limited");

    // Another key of the same tenant, and the operator, are unaffected.
    for _ in 0..5 {
        assert_eq!(get_tenant(&s, &quiet).await.status(), 200);
        assert_eq!(get_tenant(&s, &s.admin).await.status(), 200);
    }
    // Ingest is limited per key like any route (two in a row: a token may have refilled).
    let first = s.post_json(&noisy, &json!({ "type": "a.b" })).await;
    let second = s.post_json(&noisy, &json!({ "type": "a.b" })).await;
    let limited = if first.0 == 429 { first } else { second };
    assert_error(&limited, 429, "rate_limited");

    // After Retry-After the key is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(get_tenant(&s, &noisy).await.status(), 200);
}

#[tokio::test]
async fn the_stream_cap_per_key_refuses_the_one_over_it_and_frees_slots_when_streams_end() {
    let s = TestServer::spawn_with(&["--max-streams-per-key", "2"], &[]);
    s.create_tenant("acme").await;
    let key = s.create_key("acme", &["read", "ingest"]).await;
    let other = s.create_key("acme", &["read"]).await;

    let mut polls = Vec::new();
    for _ in 0..2 {
        let http = s.http.clone();
        let url = s.url("/v1/events?wait=20");
        let key = key.clone();
        polls.push(tokio::spawn(async move { send(http.get(url).bearer_auth(key)).await }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let third = s.poll(&key, "wait=5").await;
    assert_error(&third, 429, "too_many_streams");
    let sse = s
        .http
        .get(s.url("/v1/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 429, "an SSE stream counts against the same cap");
    assert!(sse.headers().get("retry-after").is_some(), "Retry-After on the cap");
    let body: Value = sse.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "too_many_streams");
    // A read that does not wait is not a stream.
    assert_eq!(s.poll(&key, "wait=0").await.0, 200);
    // Another key has its own slots.
    let started = Instant::now();
    assert_eq!(s.poll(&other, "wait=0.3").await.0, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the other key's long-poll waited"
    );

    // An event ends both long-polls; their slots are free again.
    assert_eq!(s.post_json(&key, &json!({ "type": "a.b" })).await.0, 202);
    for p in polls {
        let (status, body) = p.await.expect("poll task");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["events"].as_array().map(Vec::len), Some(1));
    }
    let sse = s
        .http
        .get(s.url("/v1/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200, "a freed slot serves a new stream");
}

/// Reads until the server closes the connection; returns what arrived and when it closed.
async fn read_until_closed(mut reader: tokio::net::tcp::OwnedReadHalf, started: Instant) -> (Vec<u8>, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Trickles `bytes` one at a time every 100 ms until the reader sees the connection closed.
async fn trickle(s: &TestServer, head: &[u8], bytes: &[u8]) -> (Vec<u8>, Duration) {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let conn = TcpStream::connect(&addr).await.expect("connecting");
    let (reader, mut writer) = conn.into_split();
    let started = Instant::now();
    writer.write_all(head).await.expect("writing the start");
    let closed = tokio::spawn(read_until_closed(reader, started));
    for b in bytes {
        if closed.is_finished() {
            break;
        }
        if writer.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("the server never closed the slow connection")
        .expect("reader task")
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    let s = TestServer::spawn_with(&["--header-read-timeout-secs", "2"], &[]);
    let s = std::sync::Arc::new(s);
    let normal = {
        let s = s.clone();
        tokio::spawn(async move {
            // A normal client keeps being served during the attack.
            for _ in 0..10 {
                assert!(s.healthy().await, "a normal client was not served");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // 300 header bytes at 10 per second would take 30 s.
    let headers = format!("X-Slow: {}\r\n", "a".repeat(290));
    let (answer, after) = trickle(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", headers.as_bytes()).await;
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(6),
        "closed after {after:?}, the header timeout is 2 s"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("200 OK"), "the slow request was served: {text}");
    normal.await.expect("normal client");

    // A connection that never sends a byte is closed too.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let conn = TcpStream::connect(&addr).await.expect("connecting");
    let (reader, _writer) = conn.into_split();
    let (_, after) = tokio::time::timeout(Duration::from_secs(30), read_until_closed(reader, Instant::now()))
        .await
        .expect("an idle connection was never closed");
    assert!(after < Duration::from_secs(6), "idle connection closed after {after:?}");
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_is_cut_off_while_others_are_served() {
    let s = TestServer::spawn_with(&["--body-read-timeout-secs", "2"], &[]);
    s.create_tenant("acme").await;
    let key = s.create_key("acme", &["ingest"]).await;
    let body = json!({ "type": "slow.body", "metadata": { "pad": "p".repeat(200) } }).to_string();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = std::sync::Arc::new(s);
    let normal = {
        let s = s.clone();
        let key = key.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                let (status, answer) = s
                    .post_json(&key, &json!({ "type": "fast.body", "metadata": { "i": i } }))
                    .await;
                assert_eq!(status, 202, "{answer}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let (answer, after) = trickle(&s, head.as_bytes(), body.as_bytes()).await;
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(6),
        "closed after {after:?}, the body timeout is 2 s"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "answer: {text}");
    assert!(text.contains("\"request_timeout\""), "JSON error: {text}");
    normal.await.expect("normal client");
    // Nothing of the slow request was stored; the normal client's events were.
    let log = s.read_log("acme").await;
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|e| e["type"] == "fast.body"));
}
