//! The shared HTTP layer against real sockets on 127.0.0.1: status classification, transport
//! failures, and the SSRF guard.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auditrelay_sinks::webhook::{self, WebhookSink};
use auditrelay_sinks::{http, AttemptReport, Outcome, Sink};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn attempt(url: &str) -> AttemptReport {
    let client = http::client(&open_env()).unwrap();
    http::send(client.post(url).body("{}")).await
}

fn retry(secs: Option<u64>) -> Outcome {
    Outcome::Retry {
        after: secs.map(Duration::from_secs),
    }
}

#[tokio::test]
async fn classification_table_against_a_live_receiver() {
    let receiver = Receiver::start().await;
    let redirect_target = receiver.url("/status/200");
    let location: String = url::form_urlencoded::byte_serialize(redirect_target.as_bytes()).collect();
    let cases: Vec<(String, Outcome, &str)> = vec![
        ("/status/200".into(), Outcome::Delivered, ""),
        ("/status/204".into(), Outcome::Delivered, ""),
        (
            format!("/status/301?location={location}"),
            Outcome::Reject,
            "HTTP 301 (redirect to http://127.0.0.1",
        ),
        ("/status/400".into(), Outcome::Reject, "HTTP 400: receiver says 400"),
        ("/status/422".into(), Outcome::Reject, "HTTP 422: receiver says 422"),
        (
            "/status/401".into(),
            Outcome::Misconfigured,
            "HTTP 401: receiver says 401",
        ),
        (
            "/status/403".into(),
            Outcome::Misconfigured,
            "HTTP 403: receiver says 403",
        ),
        (
            "/status/404".into(),
            Outcome::Misconfigured,
            "HTTP 404: receiver says 404",
        ),
        (
            "/status/410".into(),
            Outcome::Misconfigured,
            "HTTP 410: receiver says 410",
        ),
        ("/status/408".into(), retry(None), "HTTP 408: receiver says 408"),
        (
            "/status/429?retry_after=30".into(),
            retry(Some(30)),
            "HTTP 429: receiver says 429",
        ),
        ("/status/429?retry_after=86400".into(), retry(Some(3600)), "HTTP 429"),
        ("/status/429?retry_after=soon".into(), retry(None), "HTTP 429"),
        ("/status/500".into(), retry(None), "HTTP 500: receiver says 500"),
        (
            "/status/503?retry_after=5".into(),
            retry(Some(5)),
            "HTTP 503: receiver says 503",
        ),
    ];
    for (path, want, error_prefix) in &cases {
        let report = attempt(&receiver.url(path)).await;
        let status: u16 = path[8..11].parse().unwrap();
        assert_eq!(&report.outcome, want, "{path}: {report:?}");
        assert_eq!(report.status, Some(status), "{path}");
        match &report.error {
            None => assert_eq!(*want, Outcome::Delivered, "{path}"),
            Some(e) => assert!(e.starts_with(error_prefix), "{path}: {e}"),
        }
    }
    // Exactly one request per case: the 301's Location was not followed.
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), cases.len(), "{paths:?}");
    assert_eq!(paths.iter().filter(|p| *p == "/status/200").count(), 1, "{paths:?}");
}

#[tokio::test]
async fn retry_after_http_date() {
    let receiver = Receiver::start().await;
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let q: String = url::form_urlencoded::byte_serialize(at.as_bytes()).collect();
    let report = attempt(&receiver.url(&format!("/status/429?retry_after={q}"))).await;
    let Outcome::Retry { after: Some(after) } = report.outcome else {
        panic!("{report:?}")
    };
    // HTTP-dates have whole seconds, and a moment passed since formatting.
    assert!((118..=120).contains(&after.as_secs()), "{after:?}");
    let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
    let q: String = url::form_urlencoded::byte_serialize(past.as_bytes()).collect();
    let report = attempt(&receiver.url(&format!("/status/503?retry_after={q}"))).await;
    assert_eq!(
        report.outcome,
        Outcome::Retry {
            after: Some(Duration::ZERO)
        }
    );
}

#[tokio::test]
async fn error_body_snippet_is_capped_at_4_kib() {
    let receiver = Receiver::start().await;
    let report = attempt(&receiver.url("/status/500?body_len=100000")).await;
    let error = report.error.unwrap();
    assert_eq!(error, format!("HTTP 500: {}…", "x".repeat(4096)));
}

#[tokio::test]
async fn connection_refused_is_retried_and_hides_path_and_query() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let report = attempt(&format!("http://127.0.0.1:{port}/hook?token=s3cret")).await;
    assert_eq!((report.outcome.clone(), report.status), (retry(None), None));
    let error = report.error.unwrap();
    assert!(
        error.starts_with(&format!("connection refused by 127.0.0.1:{port}")),
        "{error}"
    );
    assert!(!error.contains("s3cret") && !error.contains("/hook"), "{error}");
}

/// A receiver that reads the request, then closes: with `reset`, by RST (zero linger);
/// otherwise by an orderly close without answering.
async fn hang_up(reset: bool) -> AttemptReport {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        // Read up to the end of the request headers (the tiny body follows in the same write).
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "client hung up first");
            seen.extend_from_slice(&buf[..n]);
        }
        if reset {
            stream.set_zero_linger().unwrap();
        }
        drop(stream);
    });
    let report = attempt(&format!("http://{addr}/hook")).await;
    server.await.unwrap();
    report
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let report = hang_up(true).await;
    assert_eq!((report.outcome.clone(), report.status), (retry(None), None));
    let error = report.error.unwrap();
    assert!(error.starts_with("connection reset by 127.0.0.1:"), "{error}");
}

#[tokio::test]
async fn connection_closed_without_answer_is_retried() {
    let report = hang_up(false).await;
    assert_eq!((report.outcome.clone(), report.status), (retry(None), None));
    let error = report.error.unwrap();
    assert!(
        error.contains("before a response") || error.contains("reset"),
        "{error}"
    );
}

#[tokio::test]
async fn check_url_refuses_private_targets_with_clear_messages() {
    let env = guarded_env();
    for (url, needle) in [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/", "`localhost` resolves to "),
        ("http://[::1]/", "::1 is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a cloud metadata address",
        ),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("https://192.168.1.10:8443/in", "192.168.1.10 is a private address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://[fd00:ec2::254]/", "unique local"),
    ] {
        let err = http::check_url(url, "config.url", &env).await.unwrap_err();
        assert_eq!(err.field, "config.url", "{url}");
        assert!(err.message.contains(needle), "{url}: {err}");
        assert!(err.message.contains("--allow-private-networks"), "{url}: {err}");
    }
    let err = http::check_url("http://localhost/", "config.url", &env)
        .await
        .unwrap_err();
    assert!(err.message.contains("loopback"), "{err}");
    let err = http::check_url("https://no-such-host.invalid/", "config.url", &env)
        .await
        .unwrap_err();
    assert!(err.message.contains("does not resolve"), "{err}");
    let err = http::check_url("https://u:p@example.com/", "config.url", &env)
        .await
        .unwrap_err();
    assert!(err.message.contains("user name or password"), "{err}");

    // The operator's switch lifts the address policy (not the URL shape rules).
    let open = open_env();
    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ] {
        assert!(http::check_url(url, "config.url", &open).await.is_ok(), "{url}");
    }
    assert!(http::check_url("https://u:p@127.0.0.1/", "config.url", &open)
        .await
        .is_err());
}

#[tokio::test]
async fn guarded_sink_refuses_loopback_without_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = secrets(&[("signing_secret", &webhook::generate_secret())]);
    let events = events("acme", 1..=1);
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        // A name: refused by the guarding resolver at connect time, not by the literal check.
        format!("http://localhost:{port}/hook"),
    ] {
        let sink = WebhookSink::new(&json!({ "url": url }), &s, "json", &guarded_env()).unwrap();
        let report = sink.deliver(&batch("bat_ssrf", &events)).await;
        assert_eq!(report.outcome, Outcome::Misconfigured, "{url}: {report:?}");
        assert_eq!(report.status, None);
        let error = report.error.unwrap();
        assert!(
            error.contains("loopback") && error.contains("--allow-private-networks"),
            "{url}: {error}"
        );
    }
    // The raw client too: the resolver's refusal is recognised as Misconfigured.
    let client = http::client(&guarded_env()).unwrap();
    let report = http::send(client.post(format!("http://localhost:{port}/"))).await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert!(report
        .error
        .unwrap()
        .contains("`localhost` resolves only to private/loopback addresses"),);
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the guarded client must not connect at all");
}

#[tokio::test]
async fn open_policy_reaches_loopback() {
    let receiver = Receiver::start().await;
    let s = secrets(&[("signing_secret", &webhook::generate_secret())]);
    let sink = WebhookSink::new(&json!({"url": receiver.url("/hook")}), &s, "json", &open_env()).unwrap();
    let report = sink.deliver(&batch("bat_open", &events("acme", 1..=1))).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    // A minimal HTTP/1.1 responder that counts connections: every request gets a 204 and the
    // connection stays open for the next.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    if stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    for _ in 0..5 {
        assert_eq!(attempt(&format!("http://{addr}/")).await.outcome, Outcome::Delivered);
    }
    server.abort();
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "requests share one pooled keep-alive connection"
    );
}
