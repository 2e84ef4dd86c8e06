//! The sentinel sink's Logs Ingestion mode end to end over loopback HTTP, against an
//! Azure-shaped receiver (`common/sentinel_receiver.rs`): the Entra token endpoint and the Logs
//! Ingestion API.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use crate::sentinel_support as support;
use auditrelay_testkit::azure_receiver as azure;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_format::Format;
use auditrelay_sinks::sentinel::{SentinelSink, MAX_CALL_BYTES};
use auditrelay_sinks::{AttemptReport, Outcome, Sink};
use azure::{closed_port, resetting_server, AzureReceiver, Reply};
use common::{batch, events, open_env, secrets};
use jiff::Timestamp;
use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------------
// Logs Ingestion: the exact requests.

#[tokio::test]
async fn logs_ingestion_sends_the_exact_token_and_ingestion_requests() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 41..=42);
    let report = sink.deliver(&batch("bat_0001", &events)).await;
    assert_eq!(report, AttemptReport::delivered(Some(204)));

    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 2, "one token request, one ingestion call");
    let (token, ingest) = (&reqs[0], &reqs[1]);
    insta::assert_snapshot!("logs_ingestion_token_request", token.render());
    insta::assert_snapshot!("logs_ingestion_request", ingest.render());

    // Token request: the form, field by field.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token.body).into_owned().collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        form,
        [
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://monitor.azure.com/.default"),
            ("grant_type", "client_credentials"),
        ]
    );
    assert_eq!(token.uri, format!("/{TENANT}/oauth2/v2.0/token"));

    // Ingestion: each record is the json record with TimeGenerated = occurred_at spliced first.
    assert_eq!(
        ingest.uri,
        format!("/dataCollectionRules/{DCR}/streams/Custom-AuditRelay_CL?api-version=2023-01-01")
    );
    assert_eq!(ingest.header("authorization"), "Bearer tok-1");
    let expected: Vec<String> = events
        .iter()
        .map(|e| format!("{{\"TimeGenerated\":\"2026-06-01T10:13:20.000Z\",{}", &e.to_json()[1..]))
        .collect();
    assert_eq!(ingest.body_str(), format!("[{}]", expected.join(",")));
}

// ---------------------------------------------------------------------------------------------
// The token: cached, refreshed, dropped.

#[tokio::test]
async fn token_is_fetched_once_and_reused_across_deliveries() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=2);
    for i in 0..3 {
        let report = sink.deliver(&batch(&format!("bat_{i}"), &events)).await;
        assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");
    }
    assert_eq!(receiver.token_requests().len(), 1);
    let ingests = receiver.ingestion_requests();
    assert_eq!(ingests.len(), 3);
    assert!(ingests.iter().all(|r| r.header("authorization") == "Bearer tok-1"));
}

#[tokio::test]
async fn concurrent_deliveries_share_one_token_request() {
    let receiver = AzureReceiver::start().await;
    let sink = Arc::new(receiver_sink(&receiver));
    let events = Arc::new(events("acme", 1..=2));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (sink, events) = (sink.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            sink.deliver(&batch(&format!("bat_{i}"), &events)).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().outcome, Outcome::Delivered);
    }
    assert_eq!(receiver.token_requests().len(), 1, "lanes wait for one fetch");
    assert_eq!(receiver.ingestion_requests().len(), 8);
}

#[tokio::test]
async fn token_is_refreshed_shortly_before_it_expires() {
    let receiver = AzureReceiver::start().await;
    let (clock, ms) = manual_clock("2026-06-01T10:00:00Z");
    let sink = receiver_sink(&receiver).with_clock(clock);
    let events = events("acme", 1..=1);
    let advance_to = |t: &str| ms.store(t.parse::<Timestamp>().unwrap().as_millisecond(), Ordering::SeqCst);
    let bearer_after = |t: &'static str| {
        advance_to(t);
        let (sink, events, receiver) = (&sink, &events, &receiver);
        async move {
            assert_eq!(sink.deliver(&batch("b", events)).await.outcome, Outcome::Delivered);
            receiver
                .ingestion_requests()
                .last()
                .unwrap()
                .header("authorization")
                .to_owned()
        }
    };
    // A one-hour token (3600 s) is used until five minutes before it expires.
    receiver.set_expires_in(json!(3600));
    assert_eq!(bearer_after("2026-06-01T10:00:00Z").await, "Bearer tok-1");
    assert_eq!(bearer_after("2026-06-01T10:54:59.999Z").await, "Bearer tok-1");
    assert_eq!(bearer_after("2026-06-01T10:55:00Z").await, "Bearer tok-2");
    // A short-lived token (60 s, given as a string) is refreshed at half its lifetime.
    receiver.set_expires_in(json!("60"));
    assert_eq!(bearer_after("2026-06-01T11:50:00Z").await, "Bearer tok-3");
    assert_eq!(bearer_after("2026-06-01T11:50:29Z").await, "Bearer tok-3");
    assert_eq!(bearer_after("2026-06-01T11:50:30Z").await, "Bearer tok-4");
    assert_eq!(receiver.token_requests().len(), 4);
}

#[tokio::test]
async fn short_lived_token_is_refreshed_on_the_real_clock() {
    let receiver = AzureReceiver::start().await;
    receiver.set_expires_in(json!(1));
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=1);
    assert_eq!(sink.deliver(&batch("a", &events)).await.outcome, Outcome::Delivered);
    assert_eq!(sink.deliver(&batch("b", &events)).await.outcome, Outcome::Delivered);
    assert_eq!(
        receiver.token_requests().len(),
        1,
        "reused within half its 1 s lifetime"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.deliver(&batch("c", &events)).await.outcome, Outcome::Delivered);
    assert_eq!(receiver.token_requests().len(), 2, "refreshed after 0.5 s");
    assert_eq!(
        receiver.ingestion_requests().last().unwrap().header("authorization"),
        "Bearer tok-2"
    );
}

#[tokio::test]
async fn ingestion_401_drops_the_cached_token_and_the_next_attempt_fetches_a_new_one() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=2);
    assert_eq!(sink.deliver(&batch("b1", &events)).await.outcome, Outcome::Delivered);

    // The receiver stops honouring tok-1 (revoked, rolled keys) before it expires.
    receiver.revoke_all();
    let report = sink.deliver(&batch("b2", &events)).await;
    assert_eq!((report.outcome.clone(), report.status), (retry(None), Some(401)));
    let error = report.error.clone().unwrap();
    assert!(error.starts_with("HTTP 401: "), "{error}");
    assert!(error.contains("InvalidAuthenticationToken"), "{error}");
    assert!(error.contains("a new one is fetched on the next attempt"), "{error}");
    assert!(error.contains("<redacted>"), "the echoed token is scrubbed: {error}");
    assert_no_secrets(&report);
    assert_eq!(receiver.token_requests().len(), 1, "no refetch within the attempt");

    let report = sink.deliver(&batch("b2", &events)).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");
    assert_eq!(
        receiver.token_requests().len(),
        2,
        "one fresh token on the next attempt"
    );
    let ingests = receiver.ingestion_requests();
    let bearers: Vec<&str> = ingests.iter().map(|r| r.header("authorization")).collect();
    assert_eq!(bearers, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test]
async fn a_fresh_token_refused_by_ingestion_is_misconfigured() {
    let receiver = AzureReceiver::start().await;
    receiver.refuse_all_tokens(true);
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=1);
    for attempt in 1..=2 {
        let report = sink.deliver(&batch("b", &events)).await;
        assert_eq!(
            (report.outcome.clone(), report.status),
            (Outcome::Misconfigured, Some(401)),
            "attempt {attempt}"
        );
        let error = report.error.clone().unwrap();
        assert!(error.contains("a token issued moments ago was refused"), "{error}");
        assert_no_secrets(&report);
    }
    // The refused token was dropped both times.
    assert_eq!(receiver.token_requests().len(), 2);
}

#[tokio::test]
async fn bad_client_secret_at_the_token_endpoint_is_misconfigured() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=1);
    let aad = json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 0b1c\r\nCorrelation ID: 9f2e\r\nTimestamp: 2026-06-01 10:00:00Z",
        "error_codes": [7000215],
        "error_uri": "https://login.microsoftonline.com/error?code=7000215"
    });
    receiver.reply_token(Reply::new(401, aad.to_string()));
    let report = sink.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (Outcome::Misconfigured, Some(401))
    );
    let error = report.error.clone().unwrap();
    assert_eq!(
        error,
        format!(
            "token endpoint 127.0.0.1:{} answered HTTP 401: invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            receiver.addr.port()
        )
    );
    assert_no_secrets(&report);

    // A tenant that does not exist: 400 from Entra, also the configuration's fault.
    receiver.reply_token(Reply::new(
        400,
        json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant '72f988bf' not found.", "error_codes": [90002]}).to_string(),
    ));
    let report = sink.deliver(&batch("b", &events)).await;
    assert_eq!(report.outcome, Outcome::Misconfigured);
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("invalid_request: AADSTS90002"),
        "{report:?}"
    );

    // An endpoint that echoes the form it got: the secret is scrubbed, raw or encoded.
    receiver.reply_token(Reply::new(
        400,
        format!(
            "bad request: {}",
            std::str::from_utf8(&receiver.token_requests()[0].body).unwrap()
        ),
    ));
    let report = sink.deliver(&batch("b", &events)).await;
    assert_eq!(report.outcome, Outcome::Misconfigured);
    let error = report.error.clone().unwrap();
    assert!(error.contains("client_secret=<redacted>"), "{error}");
    assert_no_secrets(&report);

    assert!(receiver.ingestion_requests().is_empty(), "nothing sent without a token");
}

#[tokio::test]
async fn token_endpoint_classification_table() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=1);
    let cases: Vec<(Reply, Outcome)> = vec![
        (
            Reply::new(200, r#"{"token_type":"Bearer","expires_in":3599}"#),
            Outcome::Misconfigured,
        ),
        (Reply::new(200, "<html>sign in</html>"), Outcome::Misconfigured),
        (
            Reply::new(302, "").header("location", "https://elsewhere.example.com/"),
            Outcome::Misconfigured,
        ),
        (
            Reply::new(
                400,
                r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for scope is not valid."}"#,
            ),
            Outcome::Misconfigured,
        ),
        (Reply::new(401, r#"{"error":"invalid_client"}"#), Outcome::Misconfigured),
        (Reply::new(403, "forbidden"), Outcome::Misconfigured),
        (Reply::new(404, "no tenant here"), Outcome::Misconfigured),
        (Reply::new(410, "gone"), Outcome::Misconfigured),
        (Reply::new(413, "too large"), Outcome::Misconfigured),
        (Reply::new(408, "timeout"), retry(None)),
        (Reply::new(429, "slow down").header("retry-after", "7"), retry(Some(7))),
        (Reply::new(500, "oops"), retry(None)),
        (Reply::new(503, "busy").header("retry-after", "2"), retry(Some(2))),
    ];
    for (reply, want) in cases {
        let status = reply.status;
        receiver.reply_token(reply);
        let report = sink.deliver(&batch("b", &events)).await;
        assert_eq!(report.outcome, want, "token endpoint HTTP {status}: {report:?}");
        assert_eq!(report.status, Some(status));
        let error = report.error.clone().unwrap();
        assert!(error.contains(&format!("answered HTTP {status}")), "{error}");
        assert_no_secrets(&report);
    }
    assert!(receiver.ingestion_requests().is_empty());

    // No answer at all: refused and reset connections are retried.
    let refused = li_sink(&li_config(
        &receiver.base(),
        &format!("http://127.0.0.1:{}", closed_port().await),
    ));
    let report = refused.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (retry(None), None),
        "{report:?}"
    );
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .starts_with("token request to 127.0.0.1:"),
        "{report:?}"
    );
    let (reset_addr, _task) = resetting_server().await;
    let reset = li_sink(&li_config(&receiver.base(), &format!("http://{reset_addr}")));
    let report = reset.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (retry(None), None),
        "{report:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Logs Ingestion: classification of the ingestion endpoint's answers.

#[tokio::test]
async fn ingestion_classification_table() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = events("acme", 1..=2);
    // Warm up: the token is cached, so a 401 below is a cached token refused.
    assert_eq!(sink.deliver(&batch("warm", &events)).await.outcome, Outcome::Delivered);
    let azure_error = |code: &str| json!({"error": {"code": code, "message": "from the test"}}).to_string();
    let cases: Vec<(Reply, Outcome)> = vec![
        (Reply::new(200, ""), Outcome::Delivered),
        (Reply::new(204, ""), Outcome::Delivered),
        (
            Reply::new(301, "").header("location", "https://elsewhere.example.com/"),
            Outcome::Reject,
        ),
        (Reply::new(307, ""), Outcome::Reject),
        (Reply::new(400, azure_error("InvalidPayload")), Outcome::Reject),
        (Reply::new(401, azure_error("InvalidAuthenticationToken")), retry(None)),
        (Reply::new(403, azure_error("OperationFailed")), Outcome::Misconfigured),
        (Reply::new(404, azure_error("NotFound")), Outcome::Misconfigured),
        (Reply::new(408, "timeout"), retry(None)),
        (Reply::new(410, "gone"), Outcome::Misconfigured),
        (
            Reply::new(413, azure_error("ContentLengthLimitExceeded")),
            Outcome::Reject,
        ),
        (
            Reply::new(429, azure_error("TooManyRequests")).header("retry-after", "30"),
            retry(Some(30)),
        ),
        (Reply::new(500, "oops"), retry(None)),
        (
            Reply::new(503, azure_error("ServiceUnavailable")).header("retry-after", "5"),
            retry(Some(5)),
        ),
    ];
    for (reply, want) in cases {
        let status = reply.status;
        receiver.reply_ingest(reply);
        let report = sink.deliver(&batch("b", &events)).await;
        assert_eq!(report.outcome, want, "HTTP {status}: {report:?}");
        assert_eq!(report.status, Some(status));
        assert_eq!(report.error.is_none(), want == Outcome::Delivered, "{report:?}");
        assert_no_secrets(&report);
    }
    // The 401 cost exactly one new token.
    assert_eq!(receiver.token_requests().len(), 2);

    // No answer: a reset connection and a closed port are retried.
    let (reset_addr, _task) = resetting_server().await;
    let reset = li_sink(&li_config(&format!("http://{reset_addr}"), &receiver.base()));
    let report = reset.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (retry(None), None),
        "{report:?}"
    );
    assert!(report.error.as_deref().unwrap().contains("reset"), "{report:?}");
    let refused = li_sink(&li_config(
        &format!("http://127.0.0.1:{}", closed_port().await),
        &receiver.base(),
    ));
    let report = refused.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (retry(None), None),
        "{report:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Logs Ingestion: calls of at most 1 MB.

#[tokio::test]
async fn batches_over_1_mb_are_split_into_calls_within_the_limit() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    // 30 records of ~90 KB: about 2.7 MB.
    let events: Vec<StoredEvent> = (1..=30).map(|o| sized_event(o, 90_000)).collect();
    let report = sink.deliver(&batch("big", &events)).await;
    assert_eq!(report, AttemptReport::delivered(Some(204)));

    let calls = receiver.ingestion_requests();
    assert_eq!(calls.len(), 3, "2.7 MB in calls of at most 1 MB");
    let mut ids = Vec::new();
    for call in &calls {
        assert!(call.body.len() <= MAX_CALL_BYTES, "{} bytes", call.body.len());
        assert_eq!(call.header("content-length"), call.body.len().to_string());
        assert_eq!(call.header("authorization"), "Bearer tok-1");
        ids.extend(ids_in(&call.body));
    }
    let want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want, "every event once, in order");
    // Packed greedily: no call could have taken the next call's first record.
    for pair in calls.windows(2) {
        let first_next: Vec<Value> = serde_json::from_slice(&pair[1].body).unwrap();
        let next_len = serde_json::to_vec(&first_next[0]).unwrap().len();
        assert!(pair[0].body.len() + 1 + next_len > MAX_CALL_BYTES);
    }
    assert_eq!(receiver.token_requests().len(), 1, "one token for all calls");
}

#[tokio::test]
async fn a_failing_call_retries_only_the_events_not_yet_delivered() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events: Vec<StoredEvent> = (1..=30).map(|o| sized_event(o, 90_000)).collect();
    receiver.reply_ingest(Reply::new(204, ""));
    receiver.reply_ingest(Reply::new(503, "busy").header("retry-after", "5"));
    let report = sink.deliver(&batch("big", &events)).await;
    let delivered = ids_in(&receiver.ingestion_requests()[0].body).len();
    let Outcome::Partial { retry, after, rejected } = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(*retry, (delivered..30).collect::<Vec<_>>());
    assert_eq!(*after, Some(Duration::from_secs(5)));
    assert!(rejected.is_empty());
    assert_eq!(report.status, Some(503));
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .starts_with("call 2 of 3: HTTP 503: busy"),
        "{report:?}"
    );
    assert_eq!(receiver.ingestion_requests().len(), 2, "sending stopped at the failure");

    // One call refused (400): only its events are dead-lettered, the others delivered.
    receiver.reply_ingest(Reply::new(204, ""));
    receiver.reply_ingest(Reply::new(
        400,
        r#"{"error":{"code":"InvalidPayload","message":"bad"}}"#,
    ));
    let report = sink.deliver(&batch("big", &events)).await;
    let calls = receiver.ingestion_requests();
    assert_eq!(calls.len(), 5, "all three calls sent");
    let first = ids_in(&calls[2].body).len();
    let second = ids_in(&calls[3].body).len();
    let Outcome::Partial { retry, rejected, .. } = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(retry.is_empty());
    let idx: Vec<usize> = rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, (first..first + second).collect::<Vec<_>>());
    assert!(rejected[0].1.contains("InvalidPayload"), "{rejected:?}");
}

#[tokio::test]
async fn a_record_over_1_mb_is_dead_lettered_alone() {
    let receiver = AzureReceiver::start().await;
    let sink = receiver_sink(&receiver);
    let events = vec![sized_event(1, 100), sized_event(2, 1_100_000), sized_event(3, 100)];
    let report = sink.deliver(&batch("b", &events)).await;
    let Outcome::Partial { retry, rejected, .. } = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(retry.is_empty());
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 1);
    assert!(rejected[0].1.contains("at most 1000000 bytes"), "{}", rejected[0].1);
    let calls = receiver.ingestion_requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(ids_in(&calls[0].body), ["evt_0001", "evt_0003"]);
}

#[tokio::test]
async fn ocsf_records_get_time_generated_too() {
    let receiver = AzureReceiver::start().await;
    let sink = SentinelSink::new(
        &li_config(&receiver.base(), &receiver.base()),
        &secrets(&[("client_secret", CLIENT_SECRET)]),
        Format::Ocsf,
        &open_env(),
    )
    .unwrap();
    let events = events("acme", 1..=2);
    let report = sink.deliver(&batch("b", &events)).await;
    // The OCSF encoder is written in parallel: until it lands, the sink pauses with a clear
    // error (and sends nothing) rather than dead-lettering events.
    match report.outcome {
        Outcome::Delivered => {
            let calls = receiver.ingestion_requests();
            let records: Vec<Value> = serde_json::from_slice(&calls[0].body).unwrap();
            assert_eq!(records.len(), 2);
            for r in &records {
                assert_eq!(r["TimeGenerated"], "2026-06-01T10:13:20.000Z");
                assert!(r["class_uid"].is_u64(), "{r}");
            }
        }
        Outcome::Misconfigured => {
            assert!(report.error.as_deref().unwrap().contains("not built"), "{report:?}");
            assert!(receiver.requests().is_empty());
        }
        other => panic!("{other:?}"),
    }
}
