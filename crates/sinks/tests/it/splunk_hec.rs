//! The Splunk HEC sink end to end over loopback HTTP: the exact request, HEC's answer codes,
//! and indexer acknowledgements.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::hec_receiver as scripted;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_format::Format;
use auditrelay_sinks::splunk_hec::{SplunkHecSink, CHANNEL_HEADER};
use auditrelay_sinks::{build, validate_config, Outcome, Secrets, Sink, SinkEnv};
use common::{batch, events, guarded_env, open_env, secrets};
use scripted::{resetting_receiver, Reply, Scripted};
use serde_json::{json, Value};

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

fn sink_with(url: &str, extra: Value, env: &SinkEnv) -> SplunkHecSink {
    let mut config = json!({ "url": url });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    SplunkHecSink::new(&config, &secrets(&[("token", TOKEN)]), Format::Json, env).unwrap()
}

fn sink(url: &str, extra: Value) -> SplunkHecSink {
    sink_with(url, extra, &open_env())
}

fn success() -> Reply {
    Reply::json(200, json!({"text": "Success", "code": 0}))
}

fn retry(secs: Option<u64>) -> Outcome {
    Outcome::Retry {
        after: secs.map(Duration::from_secs),
    }
}

#[tokio::test]
async fn sends_the_exact_request() {
    let receiver = Scripted::start(|_, _| success()).await;
    let sink = sink(
        &receiver.url("/hec/"),
        json!({"index": "audit", "source": "auditrelay", "host": "relay-1"}),
    );
    let events = events("acme", 41..=42);
    let report = sink.deliver(&batch("bat_1", &events)).await;
    assert_eq!(report, auditrelay_sinks::AttemptReport::delivered(Some(200)));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("content-length"), seen[0].body.len().to_string());
    insta::assert_snapshot!(seen[0].render());

    // The body is HEC's batch form: envelopes back to back, each event as the API serves it.
    let envelopes: Vec<Value> = serde_json::Deserializer::from_slice(&seen[0].body)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(envelopes.len(), 2);
    for (envelope, event) in envelopes.iter().zip(&events) {
        assert_eq!(
            envelope["event"],
            serde_json::from_str::<Value>(&event.to_json()).unwrap()
        );
        assert_eq!(envelope["fields"], json!({"tenant_id": "acme", "event_id": event.id}));
        assert_eq!(envelope["sourcetype"], "auditrelay:user.login");
        assert_eq!(envelope["time"].as_f64(), Some(1780308800.0), "occurred_at");
    }
}

#[tokio::test]
async fn hec_answers_are_classified() {
    let hec = |status: u16, code: i64, text: &str| Reply::json(status, json!({"text": text, "code": code}));
    let cases: Vec<(&str, Reply, Outcome, &str)> = vec![
        ("ok", success(), Outcome::Delivered, ""),
        ("no-content", Reply::new(204, ""), Outcome::Delivered, ""),
        (
            "moved",
            Reply::new(301, "").with("location", "https://elsewhere.example.com/"),
            Outcome::Reject,
            "HTTP 301 (redirect to https://elsewhere.example.com/ not followed)",
        ),
        (
            "no-data",
            hec(400, 5, "No data"),
            Outcome::Reject,
            "HTTP 400: HEC code 5: No data",
        ),
        (
            "bad-format",
            Reply::json(
                400,
                json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1}),
            ),
            Outcome::Reject,
            "HTTP 400: HEC code 6: Invalid data format (invalid-event-number 1: offset 2, id evt_0002)",
        ),
        (
            "bad-index",
            hec(400, 7, "Incorrect index"),
            Outcome::Misconfigured,
            "HTTP 400: HEC code 7: Incorrect index",
        ),
        (
            "blank",
            hec(400, 13, "Event field cannot be blank"),
            Outcome::Reject,
            "HTTP 400: HEC code 13: Event field cannot be blank",
        ),
        (
            "no-ack",
            hec(400, 14, "ACK is disabled"),
            Outcome::Misconfigured,
            "HTTP 400: HEC code 14: ACK is disabled",
        ),
        (
            "token-required",
            hec(401, 2, "Token is required"),
            Outcome::Misconfigured,
            "HTTP 401: HEC code 2: Token is required",
        ),
        (
            "token-disabled",
            hec(403, 1, "Token disabled"),
            Outcome::Misconfigured,
            "HTTP 403: HEC code 1: Token disabled",
        ),
        (
            "bad-token",
            hec(403, 4, "Invalid token"),
            Outcome::Misconfigured,
            "HTTP 403: HEC code 4: Invalid token",
        ),
        (
            "not-found",
            Reply::new(404, "<html>not here</html>"),
            Outcome::Misconfigured,
            "HTTP 404: <html>not here</html>",
        ),
        ("timeout", Reply::new(408, ""), retry(None), "HTTP 408"),
        (
            "gone",
            Reply::new(410, "gone"),
            Outcome::Misconfigured,
            "HTTP 410: gone",
        ),
        (
            "too-large",
            Reply::new(413, "Content-Length too large"),
            Outcome::Reject,
            "HTTP 413: Content-Length too large",
        ),
        (
            "throttled",
            Reply::new(429, "slow down").with("retry-after", "30"),
            retry(Some(30)),
            "HTTP 429: slow down",
        ),
        (
            "internal",
            hec(500, 8, "Internal server error"),
            retry(None),
            "HTTP 500: HEC code 8: Internal server error",
        ),
        (
            "busy",
            hec(503, 9, "Server is busy").with("retry-after", "5"),
            retry(Some(5)),
            "HTTP 503: HEC code 9: Server is busy",
        ),
        (
            "queues-full",
            hec(503, 18, "Server is busy (queues full)"),
            retry(None),
            "HTTP 503: HEC code 18",
        ),
        (
            "ack-busy",
            hec(503, 19, "ack unavailable"),
            retry(None),
            "HTTP 503: HEC code 19",
        ),
        ("both-busy", hec(503, 20, "both"), retry(None), "HTTP 503: HEC code 20"),
        (
            "proxy-503",
            Reply::new(503, "<html>down</html>"),
            retry(None),
            "HTTP 503: <html>down</html>",
        ),
    ];
    let replies: HashMap<String, Reply> = cases
        .iter()
        .map(|(name, reply, _, _)| ((*name).to_owned(), reply.clone()))
        .collect();
    let receiver = Scripted::start(move |seen, _| {
        let case = seen.path().trim_start_matches('/').split('/').next().unwrap();
        replies[case].clone()
    })
    .await;
    let events = events("acme", 1..=3);
    for (name, reply, want, error) in &cases {
        let sink = sink(&receiver.url(&format!("/{name}")), json!({}));
        let report = sink.deliver(&batch("bat_c", &events)).await;
        assert_eq!(&report.outcome, want, "{name}: {report:?}");
        assert_eq!(report.status, Some(reply.status), "{name}");
        match &report.error {
            None => assert_eq!(*want, Outcome::Delivered, "{name}"),
            Some(e) => assert!(e.starts_with(error), "{name}: {e}"),
        }
        if let Some(e) = &report.error {
            assert!(!e.contains(TOKEN), "{name}: the token never shows: {e}");
        }
    }
    let paths: Vec<String> = receiver.seen().iter().map(|s| s.path().to_owned()).collect();
    assert_eq!(paths.len(), cases.len(), "one request per case: {paths:?}");
    assert!(
        paths.iter().all(|p| p.ends_with("/services/collector/event")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn connection_reset_and_refused_are_retried() {
    let addr = resetting_receiver().await;
    let events = events("acme", 1..=1);
    let report = sink(&format!("http://{addr}"), json!({}))
        .deliver(&batch("bat_r", &events))
        .await;
    assert_eq!((report.outcome, report.status), (retry(None), None));
    let error = report.error.unwrap();
    assert!(error.contains("reset") || error.contains("closed"), "{error}");

    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let report = sink(&format!("http://127.0.0.1:{port}"), json!({}))
        .deliver(&batch("bat_r", &events))
        .await;
    assert_eq!(report.outcome, retry(None));
    assert!(report.error.unwrap().starts_with("connection refused"));
}

/// A HEC that answers the batch with `ackId` 7 and says it is indexed at the `indexed_at`-th
/// poll (never, with `None`); every poll is recorded.
async fn acking_hec(indexed_at: Option<usize>) -> Scripted {
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Scripted::start(move |seen, _| {
        if seen.path().ends_with("/services/collector/event") {
            return Reply::json(200, json!({"text": "Success", "code": 0, "ackId": 7}));
        }
        assert!(seen.path().ends_with("/services/collector/ack"), "{}", seen.target);
        let n = polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let done = indexed_at.is_some_and(|at| n >= at);
        Reply::json(200, json!({"acks": {"7": done}}))
    })
    .await
}

#[tokio::test]
async fn acks_deliver_only_once_splunk_says_indexed() {
    let receiver = acking_hec(Some(3)).await;
    let sink = sink(&receiver.url(""), json!({"acks": true}));
    let channel = sink.channel().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&channel).is_ok(), "{channel}");
    let events = events("acme", 1..=2);
    let report = sink.deliver(&batch("bat_a", &events)).await;
    assert_eq!(report, auditrelay_sinks::AttemptReport::delivered(Some(200)));

    let seen = receiver.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path()).collect();
    assert_eq!(
        paths,
        [
            "/services/collector/event",
            "/services/collector/ack",
            "/services/collector/ack",
            "/services/collector/ack"
        ]
    );
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.header(CHANNEL_HEADER),
            channel,
            "one channel for the batch and its polls"
        );
        assert_eq!(s.header("authorization"), format!("Splunk {TOKEN}"));
    }
    for poll in &seen[1..] {
        assert_eq!(poll.header("content-type"), "application/json");
        assert_eq!(&poll.body[..], br#"{"acks":[7]}"#);
    }
    insta::assert_snapshot!("ack_poll", seen[1].render().replace(&channel, "[channel]"));

    // Another sink instance gets its own channel.
    let other = self::sink(&receiver.url(""), json!({"acks": true}));
    assert_ne!(other.channel().unwrap(), channel);
}

#[tokio::test]
async fn acks_that_never_come_keep_the_attempt_polling() {
    let receiver = acking_hec(None).await;
    let sink = sink(&receiver.url(""), json!({"acks": true}));
    let events = events("acme", 1..=1);
    // The engine bounds an attempt with its timeout; here the test does.
    let outcome = tokio::time::timeout(Duration::from_millis(1200), sink.deliver(&batch("bat_n", &events))).await;
    assert!(outcome.is_err(), "never delivered without an ack: {outcome:?}");
    let polls = receiver.seen().iter().filter(|s| s.path().ends_with("/ack")).count();
    // Waits of 100, 200, 400 ms (then 800): three polls within 1.2 s.
    assert_eq!(polls, 3, "{:?}", receiver.seen());
}

#[tokio::test]
async fn ack_problems_are_classified() {
    let events = events("acme", 1..=1);
    // Acks on, but the token has no indexer acknowledgement: the answer has no ackId.
    let receiver = Scripted::start(|_, _| success()).await;
    let report = sink(&receiver.url(""), json!({"acks": true}))
        .deliver(&batch("bat_x", &events))
        .await;
    assert_eq!((report.outcome, report.status), (Outcome::Misconfigured, Some(200)));
    assert!(report.error.unwrap().contains("no ackId"));

    // The ack endpoint refuses: HEC codes apply to the poll too.
    for (reply, want, error) in [
        (
            Reply::json(400, json!({"text": "ACK is disabled", "code": 14})),
            Outcome::Misconfigured,
            "indexer acknowledgement poll: HTTP 400: HEC code 14: ACK is disabled",
        ),
        (
            Reply::json(503, json!({"text": "ack service unavailable", "code": 19})),
            retry(None),
            "indexer acknowledgement poll: HTTP 503: HEC code 19: ack service unavailable",
        ),
        (
            Reply::new(200, "<html>?</html>"),
            retry(None),
            "indexer acknowledgement poll: unreadable answer: <html>?</html>",
        ),
    ] {
        let receiver = Scripted::start(move |seen, _| {
            if seen.path().ends_with("/event") {
                Reply::json(200, json!({"text": "Success", "code": 0, "ackId": 1}))
            } else {
                reply.clone()
            }
        })
        .await;
        let report = sink(&receiver.url(""), json!({"acks": true}))
            .deliver(&batch("bat_x", &events))
            .await;
        assert_eq!(report.outcome, want, "{report:?}");
        assert_eq!(report.error.as_deref(), Some(error));
    }
}

#[tokio::test]
async fn guarded_env_refuses_loopback_without_connecting() {
    let receiver = Scripted::start(|_, _| success()).await;
    let sink = sink_with(&receiver.url(""), json!({}), &guarded_env());
    let report = sink.deliver(&batch("bat_g", &events("acme", 1..=1))).await;
    assert_eq!(report.outcome, Outcome::Misconfigured);
    assert!(report.error.unwrap().contains("loopback"));
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn validate_and_build_name_bad_fields() {
    let env = open_env();
    let config = json!({"url": "http://127.0.0.1:8088", "index": "audit", "acks": true});
    let mut s = secrets(&[("token", TOKEN)]);
    assert!(validate_config("splunk_hec", &config, &mut s, &env)
        .await
        .unwrap()
        .is_empty());
    for format in ["json", "raw", "cef", "leef", "ocsf"] {
        assert!(build("splunk_hec", &config, &s, format, &env).is_ok(), "{format}");
    }
    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("splunk_hec", &config, &mut secrets, &env)
                .await
                .unwrap_err()
        }
    };
    let ok = || secrets(&[("token", TOKEN)]);
    assert_eq!(field(json!({}), ok()).await.field, "config.url");
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:8088", "index": "Audit"}), ok())
            .await
            .field,
        "config.index"
    );
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:8088", "acks": 1}), ok())
            .await
            .field,
        "config.acks"
    );
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:8088", "sourcetype": "{event}"}), ok())
            .await
            .field,
        "config.sourcetype"
    );
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:8088", "tls": true}), ok())
            .await
            .field,
        "config.tls"
    );
    assert_eq!(field(config.clone(), Secrets::new()).await.field, "secrets.token");
    assert_eq!(
        field(config.clone(), secrets(&[("api_key", "x")])).await.field,
        "secrets.api_key"
    );
    let e = field(config.clone(), secrets(&[("token", "bad\ntoken-hunter2")])).await;
    assert_eq!(e.field, "secrets.token");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // The SSRF guard at save time.
    let mut s = ok();
    let e = validate_config("splunk_hec", &config, &mut s, &guarded_env())
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.url");
    // Unknown formats are refused by the registry; the sink's Debug never shows the token.
    assert_eq!(
        build("splunk_hec", &config, &ok(), "xml", &env).err().unwrap().field,
        "format"
    );
    let debug = format!("{:?}", sink("http://127.0.0.1:8088", json!({"acks": true})));
    assert!(!debug.contains(TOKEN) && debug.contains("127.0.0.1"), "{debug}");
}
