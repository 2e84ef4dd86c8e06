//! The sentinel sink's Data Collector mode (compatibility) end to end over loopback HTTP,
//! against an Azure-shaped receiver (`common/sentinel_receiver.rs`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use crate::sentinel_support as support;
use auditrelay_testkit::azure_receiver as azure;

use std::time::Duration;

use auditrelay_format::Format;
use auditrelay_sinks::sentinel::{self, SentinelSink};
use auditrelay_sinks::{AttemptReport, Outcome, Sink};
use azure::{expected_shared_key, resetting_server, AzureReceiver, Reply};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{batch, events, open_env, secrets};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::*;

// ---------------------------------------------------------------------------------------------
// Data Collector (compatibility).

#[test]
fn shared_key_signature_matches_the_protocols_md_vector() {
    let date = "Mon, 04 Apr 2016 08:00:00 GMT";
    let body = br#"[{"a":1}]"#;
    assert_eq!(
        sentinel::shared_key_signature(SHARED_KEY, body.len(), date).unwrap(),
        "i7HKsWseN3qSgBNyDUqE2NKAzSBu+jY8FGM/4iBdNcQ="
    );
    // And independently, with hmac/sha2 directly.
    let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(SHARED_KEY).unwrap()).unwrap();
    mac.update(format!("POST\n9\napplication/json\nx-ms-date:{date}\n/api/logs").as_bytes());
    assert_eq!(
        STANDARD.encode(mac.finalize().into_bytes()),
        "i7HKsWseN3qSgBNyDUqE2NKAzSBu+jY8FGM/4iBdNcQ="
    );
}

#[tokio::test]
async fn data_collector_sends_the_exact_signed_request() {
    let receiver = AzureReceiver::start().await;
    receiver.check_shared_key(WORKSPACE, SHARED_KEY);
    let (clock, _) = manual_clock("2016-04-04T08:00:00Z");
    let sink = dc_sink(&receiver, SHARED_KEY).with_clock(clock);
    let events = events("acme", 7..=8);
    let report = sink.deliver(&batch("bat_dc", &events)).await;
    assert_eq!(
        report,
        AttemptReport::delivered(Some(200)),
        "the receiver verified the signature"
    );

    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1, "no token request in this mode");
    let req = &reqs[0];
    insta::assert_snapshot!("data_collector_request", req.render());
    assert_eq!(req.uri, "/api/logs?api-version=2016-04-01");
    assert_eq!(req.header("log-type"), "AuditRelay");
    assert_eq!(req.header("x-ms-date"), "Mon, 04 Apr 2016 08:00:00 GMT");
    assert_eq!(req.header("time-generated-field"), "TimeGenerated");
    assert_eq!(req.header("content-type"), "application/json");
    // Recomputed here from what arrived, not with the sink's code.
    assert_eq!(
        req.header("authorization"),
        expected_shared_key(req, WORKSPACE, SHARED_KEY)
    );
    let records: Vec<Value> = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(records[0]["TimeGenerated"], "2026-06-01T10:13:20.000Z");
    assert_eq!(records[1]["id"], "evt_0008");
}

#[tokio::test]
async fn data_collector_signs_each_attempt_at_its_own_time() {
    let receiver = AzureReceiver::start().await;
    receiver.check_shared_key(WORKSPACE, SHARED_KEY);
    let sink = dc_sink(&receiver, SHARED_KEY);
    let events = events("acme", 1..=3);
    assert_eq!(sink.deliver(&batch("b", &events)).await.outcome, Outcome::Delivered);
    let req = &receiver.requests()[0];
    let date = httpdate::parse_http_date(req.header("x-ms-date")).unwrap();
    let age = std::time::SystemTime::now().duration_since(date).unwrap_or_default();
    assert!(
        age < Duration::from_secs(5),
        "x-ms-date is now: {}",
        req.header("x-ms-date")
    );
    assert_eq!(
        req.header("authorization"),
        expected_shared_key(req, WORKSPACE, SHARED_KEY)
    );
}

#[tokio::test]
async fn data_collector_with_a_wrong_key_is_misconfigured() {
    let receiver = AzureReceiver::start().await;
    receiver.check_shared_key(WORKSPACE, SHARED_KEY);
    let other_key = STANDARD.encode([7u8; 64]);
    let sink = dc_sink(&receiver, &other_key);
    let report = sink.deliver(&batch("b", &events("acme", 1..=1))).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (Outcome::Misconfigured, Some(403))
    );
    assert!(
        report.error.as_deref().unwrap().contains("InvalidAuthorization"),
        "{report:?}"
    );
    assert!(!report.error.as_deref().unwrap().contains(&other_key));
}

#[tokio::test]
async fn data_collector_classification_table() {
    let receiver = AzureReceiver::start().await;
    let sink = dc_sink(&receiver, SHARED_KEY);
    let events = events("acme", 1..=2);
    let dc_error = |code: &str| json!({"Error": code, "Message": "from the test"}).to_string();
    let cases: Vec<(Reply, Outcome)> = vec![
        (Reply::new(200, ""), Outcome::Delivered),
        (Reply::new(202, ""), Outcome::Delivered),
        (Reply::new(302, ""), Outcome::Reject),
        // The batch's fault: dead-letter it.
        (Reply::new(400, dc_error("InvalidDataFormat")), Outcome::Reject),
        (Reply::new(400, dc_error("InvalidTimeGenerated")), Outcome::Reject),
        (Reply::new(400, "not json"), Outcome::Reject),
        // The sink's configuration: pause it.
        (Reply::new(400, dc_error("InvalidLogType")), Outcome::Misconfigured),
        (Reply::new(400, dc_error("InvalidCustomerId")), Outcome::Misconfigured),
        (Reply::new(400, dc_error("InactiveCustomer")), Outcome::Misconfigured),
        (Reply::new(401, ""), Outcome::Misconfigured),
        (
            Reply::new(403, dc_error("InvalidAuthorization")),
            Outcome::Misconfigured,
        ),
        (Reply::new(404, ""), Outcome::Misconfigured),
        (Reply::new(408, ""), retry(None)),
        (Reply::new(410, ""), Outcome::Misconfigured),
        (Reply::new(413, ""), Outcome::Reject),
        (Reply::new(429, "").header("retry-after", "9"), retry(Some(9))),
        (Reply::new(500, dc_error("UnspecifiedError")), retry(None)),
        (
            Reply::new(503, dc_error("ServiceUnavailable")).header("retry-after", "4"),
            retry(Some(4)),
        ),
    ];
    for (reply, want) in cases {
        let (status, body) = (reply.status, reply.body.clone());
        receiver.reply_collector(reply);
        let report = sink.deliver(&batch("b", &events)).await;
        assert_eq!(report.outcome, want, "HTTP {status} {body}: {report:?}");
        assert_eq!(report.status, Some(status));
        assert_no_secrets(&report);
    }
    let (reset_addr, _task) = resetting_server().await;
    let config =
        json!({"mode": "data_collector", "url": format!("http://{reset_addr}/api/logs"), "workspace_id": WORKSPACE});
    let reset = SentinelSink::new(
        &config,
        &secrets(&[("shared_key", SHARED_KEY)]),
        Format::Json,
        &open_env(),
    )
    .unwrap();
    let report = reset.deliver(&batch("b", &events)).await;
    assert_eq!(
        (report.outcome.clone(), report.status),
        (retry(None), None),
        "{report:?}"
    );
}
