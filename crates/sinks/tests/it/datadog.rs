//! The Datadog sink end to end over loopback HTTP: the exact (gzipped) request, the answer
//! classification, splitting a batch across requests, and truncating oversized entries.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::hec_receiver as scripted;

use std::collections::HashMap;
use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_format::Format;
use auditrelay_sinks::datadog::{DatadogSink, MAX_ENTRY_BYTES, TRUNCATION_SUFFIX};
use auditrelay_sinks::{build, validate_config, AttemptReport, Outcome, Secrets, Sink, SinkEnv};
use common::{batch, events, guarded_env, open_env, secrets};
use scripted::{resetting_receiver, Reply, Scripted};
use serde_json::{json, Value};

const API_KEY: &str = "0123456789abcdef0123456789abcdef";

fn sink_with(url: &str, extra: Value, env: &SinkEnv) -> DatadogSink {
    let mut config = json!({ "url": url });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    DatadogSink::new(&config, &secrets(&[("api_key", API_KEY)]), Format::Json, env).unwrap()
}

fn sink(url: &str, extra: Value) -> DatadogSink {
    sink_with(url, extra, &open_env())
}

fn accepted() -> Reply {
    Reply::json(202, json!({}))
}

fn retry(secs: Option<u64>) -> Outcome {
    Outcome::Retry {
        after: secs.map(Duration::from_secs),
    }
}

fn entries(body: &[u8]) -> Vec<Value> {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn sends_the_exact_gzipped_request() {
    let receiver = Scripted::start(|_, _| accepted()).await;
    let sink = sink(
        &receiver.url("/api/v2/logs"),
        json!({"service": "billing", "ddtags": "env:prod,team:soc", "hostname": "relay-1"}),
    );
    let events = events("acme", 41..=42);
    let report = sink.deliver(&batch("bat_1", &events)).await;
    assert_eq!(report, AttemptReport::delivered(Some(202)));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.header("content-encoding"), "gzip");
    assert_eq!(req.header("content-length"), req.body.len().to_string());
    assert_eq!(&req.body[..2], [0x1f, 0x8b], "a gzip stream");

    // The receiver gunzips to exactly this JSON, byte for byte. The events happened long before
    // Datadog's 18-hour window, so no `timestamp`: Datadog stamps the arrival instead of dropping.
    let expected: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "ddsource": "auditrelay", "ddtags": "env:prod,team:soc", "hostname": "relay-1",
                "service": "billing", "status": "notice", "tenant_id": "acme", "event_id": e.id,
                "event_type": "user.login", "message": serde_json::from_str::<Value>(&e.to_json()).unwrap(),
            })
        })
        .collect();
    assert_eq!(req.plain_body(), serde_json::to_vec(&expected).unwrap());
    insta::assert_snapshot!(req.render());
}

#[tokio::test]
async fn intake_answers_are_classified() {
    let cases: Vec<(&str, Reply, Outcome, &str)> = vec![
        ("accepted", accepted(), Outcome::Delivered, ""),
        ("ok", Reply::new(200, "{}"), Outcome::Delivered, ""),
        (
            "moved",
            Reply::new(302, "").with("location", "https://elsewhere.example.com/"),
            Outcome::Reject,
            "HTTP 302 (redirect to https://elsewhere.example.com/ not followed)",
        ),
        (
            "bad",
            Reply::json(400, json!({"errors": [{"status": "400", "title": "Bad Request"}]})),
            Outcome::Reject,
            r#"HTTP 400: {"errors":[{"status":"400","title":"Bad Request"}]}"#,
        ),
        (
            "unauthorized",
            Reply::json(401, json!({"errors": ["Unauthorized"]})),
            Outcome::Misconfigured,
            "HTTP 401",
        ),
        (
            "forbidden",
            Reply::json(403, json!({"errors": ["Forbidden"]})),
            Outcome::Misconfigured,
            r#"HTTP 403: {"errors":["Forbidden"]}"#,
        ),
        (
            "not-found",
            Reply::new(404, "nope"),
            Outcome::Misconfigured,
            "HTTP 404: nope",
        ),
        ("timeout", Reply::new(408, ""), retry(None), "HTTP 408"),
        ("gone", Reply::new(410, ""), Outcome::Misconfigured, "HTTP 410"),
        (
            "too-large",
            Reply::new(413, "Payload too large"),
            Outcome::Reject,
            "HTTP 413: Payload too large",
        ),
        (
            "throttled",
            Reply::new(429, "rate limited").with("retry-after", "30"),
            retry(Some(30)),
            "HTTP 429: rate limited",
        ),
        ("internal", Reply::new(500, "oops"), retry(None), "HTTP 500: oops"),
        (
            "unavailable",
            Reply::new(503, "").with("retry-after", "5"),
            retry(Some(5)),
            "HTTP 503",
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
        let sink = sink(&receiver.url(&format!("/{name}/api/v2/logs")), json!({}));
        let report = sink.deliver(&batch("bat_c", &events)).await;
        assert_eq!(&report.outcome, want, "{name}: {report:?}");
        assert_eq!(report.status, Some(reply.status), "{name}");
        match &report.error {
            None => assert_eq!(*want, Outcome::Delivered, "{name}"),
            Some(e) => {
                assert!(e.starts_with(error), "{name}: {e}");
                assert!(!e.contains(API_KEY), "{name}: {e}");
            }
        }
    }
    assert_eq!(receiver.seen().len(), cases.len(), "one request per case");

    // Transport failures.
    let addr = resetting_receiver().await;
    let report = sink(&format!("http://{addr}/api/v2/logs"), json!({}))
        .deliver(&batch("bat_r", &events))
        .await;
    assert_eq!((report.outcome, report.status), (retry(None), None));
    let error = report.error.unwrap();
    assert!(error.contains("reset") || error.contains("closed"), "{error}");
}

#[tokio::test]
async fn a_2500_event_batch_goes_in_three_requests() {
    let receiver = Scripted::start(|_, _| accepted()).await;
    let sink = sink(&receiver.url("/api/v2/logs"), json!({}));
    let events = events("acme", 1..=2500);
    let report = sink.deliver(&batch("bat_big", &events)).await;
    assert_eq!(report, AttemptReport::delivered(Some(202)));
    let seen = receiver.seen();
    let sizes: Vec<usize> = seen.iter().map(|s| entries(&s.plain_body()).len()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let ids: Vec<String> = seen
        .iter()
        .flat_map(|s| entries(&s.plain_body()))
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want, "every event once, in order");
}

#[tokio::test]
async fn a_failing_request_fails_the_attempt_and_stops_it() {
    let events = events("acme", 1..=2500);
    // The second request is answered 503: the attempt is retried (all of it, next time) and the
    // third request is not sent.
    let receiver = Scripted::start(|_, n| {
        if n == 1 {
            Reply::new(503, "busy").with("retry-after", "7")
        } else {
            accepted()
        }
    })
    .await;
    let report = sink(&receiver.url("/api/v2/logs"), json!({}))
        .deliver(&batch("bat_f", &events))
        .await;
    assert_eq!(report.outcome, retry(Some(7)));
    assert_eq!(report.status, Some(503));
    assert_eq!(
        report.error.as_deref(),
        Some("request 2 of 3 (offsets 1001–2000): HTTP 503: busy")
    );
    assert_eq!(receiver.seen().len(), 2);

    // A refusal of the first request: rejected, nothing more sent.
    let receiver = Scripted::start(|_, _| Reply::new(400, "bad payload")).await;
    let report = sink(&receiver.url("/api/v2/logs"), json!({}))
        .deliver(&batch("bat_f", &events))
        .await;
    assert_eq!(report.outcome, Outcome::Reject);
    assert_eq!(
        report.error.as_deref(),
        Some("request 1 of 3 (offsets 1–1000): HTTP 400: bad payload")
    );
    assert_eq!(receiver.seen().len(), 1);
}

fn big_event(offset: u64, note_bytes: usize) -> StoredEvent {
    let id = format!("evt_{offset:04}");
    StoredEvent {
        tenant_id: "acme".into(),
        offset,
        id: id.clone(),
        event_type: "file.uploaded".into(),
        body: json!({"id": id, "tenant_id": "acme", "type": "file.uploaded",
                     "occurred_at": "2026-06-01T10:13:20.000Z", "severity": 8,
                     "metadata": {"content": "x".repeat(note_bytes)}})
        .to_string(),
        chain: None,
    }
}

#[tokio::test]
async fn entries_over_1_mb_are_truncated_with_a_marker() {
    let receiver = Scripted::start(|_, _| accepted()).await;
    let sink = sink(&receiver.url("/api/v2/logs"), json!({"service": "files"}));
    let events = [big_event(1, 10), big_event(2, 1_500_000), big_event(3, 10)];
    let report = sink.deliver(&batch("bat_t", &events)).await;
    assert_eq!(report.outcome, Outcome::Delivered);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let plain = seen[0].plain_body();
    let all = entries(&plain);
    assert_eq!(all.len(), 3);
    let cut = &all[1];
    assert_eq!(cut["auditrelay_truncated"], true);
    assert_eq!(cut["auditrelay_original_bytes"], events[1].to_json().len());
    assert_eq!(
        (cut["event_id"].as_str(), cut["status"].as_str()),
        (Some("evt_0002"), Some("error"))
    );
    let message = cut["message"].as_str().unwrap();
    assert!(message.starts_with(r#"{"offset":2,"id":"evt_0002""#));
    assert!(message.ends_with(&format!("xxx{TRUNCATION_SUFFIX}")));
    assert!(serde_json::to_vec(cut).unwrap().len() <= MAX_ENTRY_BYTES);
    // Its neighbours are whole.
    for whole in [&all[0], &all[2]] {
        assert!(whole.get("auditrelay_truncated").is_none());
        assert_eq!(whole["message"]["metadata"]["content"], "xxxxxxxxxx");
    }
}

#[tokio::test]
async fn guarded_env_refuses_loopback_without_connecting() {
    let receiver = Scripted::start(|_, _| accepted()).await;
    let sink = sink_with(&receiver.url("/api/v2/logs"), json!({}), &guarded_env());
    let report = sink.deliver(&batch("bat_g", &events("acme", 1..=1))).await;
    assert_eq!(report.outcome, Outcome::Misconfigured);
    assert!(report.error.unwrap().contains("loopback"));
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn validate_and_build_name_bad_fields() {
    let env = open_env();
    let config = json!({"url": "http://127.0.0.1:9/api/v2/logs", "service": "billing"});
    let ok = || secrets(&[("api_key", API_KEY)]);
    let mut s = ok();
    assert!(validate_config("datadog", &config, &mut s, &env)
        .await
        .unwrap()
        .is_empty());
    for format in ["json", "ocsf", "cef", "leef"] {
        assert!(build("datadog", &config, &s, format, &env).is_ok(), "{format}");
    }
    assert_eq!(
        build("datadog", &config, &s, "raw", &env).err().unwrap().field,
        "format"
    );
    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("datadog", &config, &mut secrets, &env)
                .await
                .unwrap_err()
        }
    };
    assert_eq!(
        field(json!({"site": "datadoghq.eu", "url": "http://127.0.0.1:9/"}), ok())
            .await
            .field,
        "config.url"
    );
    assert_eq!(field(json!({"site": "Datadog EU"}), ok()).await.field, "config.site");
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:9/", "service": 7}), ok())
            .await
            .field,
        "config.service"
    );
    assert_eq!(
        field(json!({"url": "http://127.0.0.1:9/", "tags": "a"}), ok())
            .await
            .field,
        "config.tags"
    );
    assert_eq!(field(config.clone(), Secrets::new()).await.field, "secrets.api_key");
    assert_eq!(
        field(config.clone(), secrets(&[("token", "x")])).await.field,
        "secrets.token"
    );
    let e = field(config.clone(), secrets(&[("api_key", "hunter2\n")])).await;
    assert_eq!(e.field, "secrets.api_key");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let mut s = ok();
    let e = validate_config("datadog", &config, &mut s, &guarded_env())
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.url");
    let debug = format!("{:?}", sink("http://127.0.0.1:9/api/v2/logs", json!({})));
    assert!(!debug.contains(API_KEY) && debug.contains("127.0.0.1"), "{debug}");
}
