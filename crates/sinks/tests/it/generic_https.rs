//! The generic_https sink over loopback HTTP: the exact requests in both modes, the digest
//! recomputed independently (sha2 here, Python's hashlib in the docs' snippet), per-event
//! partial delivery, and the classification table.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::scripted_receiver as scripted;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use auditrelay_format::{encode, Format, FormatOptions};
use auditrelay_sinks::generic_https::GenericHttpsSink;
use auditrelay_sinks::{build, validate_config, Outcome, Secrets, Sink};
use common::{batch, events, open_env, secrets};
use scripted::{Reply, ScriptedReceiver};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const AUTH: &str = "k3y-s3cret";

fn auth() -> Secrets {
    secrets(&[("auth_value", AUTH)])
}

fn sink_with(url: &str, extra: Value, secrets: &Secrets, format: Format) -> GenericHttpsSink {
    let mut config = json!({ "url": url });
    if let Value::Object(extra) = extra {
        config.as_object_mut().unwrap().extend(extra);
    }
    GenericHttpsSink::new(&config, secrets, format, &open_env()).unwrap()
}

fn batched(url: &str) -> GenericHttpsSink {
    sink_with(url, json!({"auth_header": "X-Api-Key"}), &auth(), Format::Json)
}

fn per_event(url: &str) -> GenericHttpsSink {
    sink_with(
        url,
        json!({"auth_header": "Authorization", "per_event": true}),
        &secrets(&[("auth_value", "Bearer tok")]),
        Format::Json,
    )
}

/// The digest, computed here without the crate's code.
fn expected_digest(tenant: &str, event_id: &str, body: &[u8]) -> String {
    let mut input = format!("{tenant}:{event_id}:").into_bytes();
    input.extend_from_slice(body);
    Sha256::digest(&input).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn batched_json_request_is_exact() {
    let evs = events("acme", 1..=2);
    let receiver = ScriptedReceiver::always(Reply::status(202)).await;
    let report = batched(&receiver.url("/intake?source=auditrelay"))
        .deliver(&batch("bat_7", &evs))
        .await;
    assert_eq!((report.outcome, report.status), (Outcome::Delivered, Some(202)));
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1);
    insta::assert_snapshot!("generic_batched_json", reqs[0].snapshot());
    let want = format!("[{},{}]", evs[0].to_json(), evs[1].to_json());
    assert_eq!(reqs[0].body_str(), want);
    let parsed: Vec<Value> = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(reqs[0].header("x-api-key"), Some(AUTH));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn per_event_requests_are_exact_and_the_digest_matches() {
    let evs = events("acme", 1..=2);
    let receiver = ScriptedReceiver::always(Reply::status(204)).await;
    let report = per_event(&receiver.url("/in")).deliver(&batch("bat_8", &evs)).await;
    assert_eq!((report.outcome, report.status), (Outcome::Delivered, Some(204)));
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 2, "one request per event, in order");
    insta::assert_snapshot!("generic_per_event_json_1", reqs[0].snapshot());
    insta::assert_snapshot!("generic_per_event_json_2", reqs[1].snapshot());
    for (req, ev) in reqs.iter().zip(&evs) {
        assert_eq!(req.body_str(), ev.to_json(), "the record alone, no array");
        assert_eq!(req.header("x-auditrelay-event-id"), Some(ev.id.as_str()));
        assert_eq!(req.header("x-auditrelay-tenant"), Some("acme"));
        assert_eq!(req.header("x-auditrelay-event-type"), Some("user.login"));
        assert_eq!(req.header("authorization"), Some("Bearer tok"));
        let digest = req.header("x-auditrelay-digest").unwrap();
        assert_eq!(digest, expected_digest("acme", &ev.id, &req.body));
        assert_eq!(digest.len(), 64, "bare lowercase hex, no prefix: {digest}");
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}

/// The receiver-side check exactly as docs/sinks/generic_https.md prints it, run by Python.
const DOC_SNIPPET: &str = r#"import hashlib, hmac, urllib.parse
def verify(headers, body: bytes, tenant: str) -> bool:
    event_id = urllib.parse.unquote(headers["X-Auditrelay-Event-Id"])
    want = hashlib.sha256(f"{tenant}:{event_id}:".encode() + body).hexdigest()
    return hmac.compare_digest(want, headers["X-Auditrelay-Digest"])
"#;

#[tokio::test]
async fn the_documented_python_check_verifies_the_digest() {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/sinks/generic_https.md")).unwrap();
    assert!(
        doc.contains(DOC_SNIPPET),
        "the docs' snippet and this test's copy differ"
    );
    let mut evs = events("acme", 1..=2);
    // An id that is not plain ASCII travels percent-encoded; the digest covers the id itself.
    evs[1].id = "évt/2%".into();
    let receiver = ScriptedReceiver::always(Reply::status(200)).await;
    let report = per_event(&receiver.url("/in")).deliver(&batch("b", &evs)).await;
    assert_eq!(report.outcome, Outcome::Delivered);
    let reqs = receiver.requests();
    assert_eq!(reqs[1].header("x-auditrelay-event-id"), Some("%C3%A9vt/2%25"));
    assert_eq!(
        reqs[1].header("x-auditrelay-digest").unwrap(),
        expected_digest("acme", "évt/2%", &reqs[1].body)
    );
    // Each case: headers as a receiver sees them (canonical case), body, tenant it knows.
    let mut cases = Vec::new();
    for req in &reqs {
        let headers = json!({
            "X-Auditrelay-Event-Id": req.header("x-auditrelay-event-id"),
            "X-Auditrelay-Digest": req.header("x-auditrelay-digest"),
        });
        let body = String::from_utf8(req.body.clone()).unwrap();
        cases.push(json!({"headers": headers, "body": body, "tenant": "acme"}));
        cases.push(json!({"headers": headers, "body": body, "tenant": "other"}));
        cases.push(json!({"headers": headers, "body": body.replacen("usr_1", "usr_2", 1), "tenant": "acme"}));
    }
    let driver = format!(
        "{DOC_SNIPPET}import json, sys\nfor line in sys.stdin:\n    c = json.loads(line)\n    \
         print(verify(c['headers'], c['body'].encode(), c['tenant']))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &driver])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for c in &cases {
            writeln!(stdin, "{c}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answers: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers, ["True", "False", "False", "True", "False", "False"]);
}

#[tokio::test]
async fn text_formats_are_newline_framed_plain_text() {
    // CEF and LEEF are built by the format crate; until they are, the sink pauses rather than
    // send anything, and this test checks that instead of the framing.
    let evs = events("acme", 1..=2);
    for format in [Format::Cef, Format::Leef] {
        let receiver = ScriptedReceiver::always(Reply::status(200)).await;
        let sink = sink_with(&receiver.url("/in"), json!({}), &Secrets::new(), format);
        let report = sink.deliver(&batch("b", &evs)).await;
        let records: Result<Vec<Vec<u8>>, _> = evs
            .iter()
            .map(|e| encode(format, e, &FormatOptions::default()))
            .collect();
        match records {
            Ok(records) => {
                assert_eq!(report.outcome, Outcome::Delivered);
                let req = &receiver.requests()[0];
                assert_eq!(req.header("content-type"), Some("text/plain; charset=utf-8"));
                let mut want = Vec::new();
                for r in records {
                    want.extend_from_slice(&r);
                    want.push(b'\n');
                }
                assert_eq!(req.body, want);
            }
            Err(e) => {
                assert_eq!(report.outcome, Outcome::Misconfigured, "{format:?}");
                assert!(report.error.unwrap().contains(&e.to_string()));
                assert!(receiver.requests().is_empty());
            }
        }
    }
}

/// Event id → the receiver's reply to it.
type Plan = Vec<(&'static str, Reply)>;

/// Answers by event id: `plan` maps an id to a reply; others get 204.
async fn by_event(plan: Plan) -> ScriptedReceiver {
    ScriptedReceiver::start(move |req| {
        let id = req.header("x-auditrelay-event-id").unwrap_or_default();
        plan.iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r.clone())
            .unwrap_or(Reply::status(204))
    })
    .await
}

#[tokio::test]
async fn per_event_partial_delivery() {
    let evs = events("acme", 1..=5);
    // Event 2 refused, event 4 busy: 1 and 3 delivered, 2 dead-lettered, 4 and 5 go again.
    let receiver = by_event(vec![
        ("evt_0002", Reply::status(400)),
        ("evt_0004", Reply::status(503).with_header("retry-after", "9")),
    ])
    .await;
    let sink = per_event(&receiver.url("/in"));
    let report = sink.deliver(&batch("b", &evs)).await;
    assert_eq!(
        report.outcome,
        Outcome::Partial {
            retry: vec![3, 4],
            after: Some(Duration::from_secs(9)),
            rejected: vec![(1, "event 2 of 5 (evt_0002): HTTP 400: receiver says 400".into())],
        }
    );
    assert_eq!(report.status, Some(503));
    assert_eq!(
        report.error.as_deref(),
        Some("2 of 5 events delivered, then event 4 of 5 (evt_0004): HTTP 503: receiver says 503")
    );
    let sent: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("x-auditrelay-event-id").unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        ["evt_0001", "evt_0002", "evt_0003", "evt_0004"],
        "stopped at the failure"
    );

    // The engine's next attempt carries only the outstanding events.
    let rest = evs[3..].to_vec();
    let receiver = by_event(vec![]).await;
    let report = per_event(&receiver.url("/in")).deliver(&batch("b", &rest)).await;
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn per_event_failure_cases() {
    let evs = events("acme", 1..=3);
    let cases: Vec<(&str, Plan, Outcome)> = vec![
        (
            "first event busy: a plain retry",
            vec![("evt_0001", Reply::status(429).with_header("retry-after", "4"))],
            Outcome::Retry {
                after: Some(Duration::from_secs(4)),
            },
        ),
        (
            "first event unauthorized: pause",
            vec![("evt_0001", Reply::status(401))],
            Outcome::Misconfigured,
        ),
        (
            "a later event unauthorized: the delivered ones are kept, the rest wait",
            vec![("evt_0002", Reply::status(403))],
            Outcome::Partial {
                retry: vec![1, 2],
                after: None,
                rejected: vec![],
            },
        ),
        (
            "a later connection reset",
            vec![("evt_0003", Reply::Reset)],
            Outcome::Partial {
                retry: vec![2],
                after: None,
                rejected: vec![],
            },
        ),
        (
            "every event refused",
            vec![
                ("evt_0001", Reply::status(400)),
                ("evt_0002", Reply::status(422)),
                ("evt_0003", Reply::status(413)),
            ],
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: vec![
                    (0, "event 1 of 3 (evt_0001): HTTP 400: receiver says 400".into()),
                    (1, "event 2 of 3 (evt_0002): HTTP 422: receiver says 422".into()),
                    (2, "event 3 of 3 (evt_0003): HTTP 413: receiver says 413".into()),
                ],
            },
        ),
    ];
    for (name, plan, want) in cases {
        let receiver = by_event(plan).await;
        let report = per_event(&receiver.url("/in")).deliver(&batch("b", &evs)).await;
        assert_eq!(report.outcome, want, "{name}: {report:?}");
    }
    // A batch of one refused event is a plain reject.
    let receiver = by_event(vec![("evt_0001", Reply::status(400))]).await;
    let report = per_event(&receiver.url("/in")).deliver(&batch("b", &evs[..1])).await;
    assert_eq!(report.outcome, Outcome::Reject);
    assert_eq!(
        report.error.as_deref(),
        Some("1 of 1 events refused; first: event 1 of 1 (evt_0001): HTTP 400: receiver says 400")
    );
}

#[tokio::test]
async fn classification_table_both_modes() {
    let retry = |s: Option<u64>| Outcome::Retry {
        after: s.map(Duration::from_secs),
    };
    let cases: Vec<(&str, Reply, Outcome, Option<u16>)> = vec![
        ("200", Reply::status(200), Outcome::Delivered, Some(200)),
        ("202", Reply::status(202), Outcome::Delivered, Some(202)),
        ("204", Reply::status(204), Outcome::Delivered, Some(204)),
        (
            "301",
            Reply::status(301).with_header("location", "http://elsewhere.example/"),
            Outcome::Reject,
            Some(301),
        ),
        ("400", Reply::status(400), Outcome::Reject, Some(400)),
        ("401", Reply::status(401), Outcome::Misconfigured, Some(401)),
        ("403", Reply::status(403), Outcome::Misconfigured, Some(403)),
        ("404", Reply::status(404), Outcome::Misconfigured, Some(404)),
        ("408", Reply::status(408), retry(None), Some(408)),
        ("410", Reply::status(410), Outcome::Misconfigured, Some(410)),
        ("413", Reply::status(413), Outcome::Reject, Some(413)),
        (
            "429 Retry-After",
            Reply::status(429).with_header("retry-after", "30"),
            retry(Some(30)),
            Some(429),
        ),
        ("500", Reply::status(500), retry(None), Some(500)),
        (
            "503",
            Reply::status(503).with_header("retry-after", "5"),
            retry(Some(5)),
            Some(503),
        ),
        ("connection reset", Reply::Reset, retry(None), None),
    ];
    // Per-event mode with one event answers exactly like batched mode.
    let one = events("acme", 1..=1);
    let two = events("acme", 1..=2);
    for (name, reply, want, status) in cases {
        for per in [false, true] {
            let receiver = ScriptedReceiver::always(reply.clone()).await;
            let sink = sink_with(
                &receiver.url("/in"),
                json!({"auth_header": "X-Api-Key", "per_event": per}),
                &auth(),
                Format::Json,
            );
            let evs = if per { &one } else { &two };
            let report = sink.deliver(&batch("b", evs)).await;
            assert_eq!(report.outcome, want, "{name} per_event={per}: {report:?}");
            assert_eq!(report.status, status, "{name} per_event={per}");
            let error = report.error.unwrap_or_default();
            assert_eq!(error.is_empty(), want == Outcome::Delivered, "{name}: {error}");
            assert!(!error.contains(AUTH), "{name}: no secret in errors");
            assert_eq!(receiver.requests().len(), 1, "{name}");
        }
    }
}

#[tokio::test]
async fn validation_names_the_field() {
    let env = open_env();
    let url = "http://127.0.0.1:9/in";
    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("generic_https", &config, &mut secrets, &env)
                .await
                .unwrap_err()
                .field
        }
    };
    let mut s = auth();
    assert!(validate_config(
        "generic_https",
        &json!({"url": url, "auth_header": "X-Api-Key"}),
        &mut s,
        &env
    )
    .await
    .unwrap()
    .is_empty());
    let mut none = Secrets::new();
    assert!(validate_config("generic_https", &json!({"url": url}), &mut none, &env)
        .await
        .is_ok());
    assert_eq!(field(json!({}), Secrets::new()).await, "config.url");
    assert_eq!(field(json!({"url": url}), auth()).await, "config.auth_header");
    assert_eq!(
        field(json!({"url": url, "auth_header": "X-Api-Key"}), Secrets::new()).await,
        "secrets.auth_value"
    );
    assert_eq!(
        field(json!({"url": url, "auth_header": "Content-Length"}), auth()).await,
        "config.auth_header"
    );
    assert_eq!(
        field(json!({"url": url, "auth_header": "Connection"}), auth()).await,
        "config.auth_header"
    );
    assert_eq!(
        field(json!({"url": url, "per_event": 1}), Secrets::new()).await,
        "config.per_event"
    );
    assert_eq!(
        field(json!({"url": url, "headers": {}}), Secrets::new()).await,
        "config.headers"
    );
    assert_eq!(
        field(json!({"url": url}), secrets(&[("api_key", "x")])).await,
        "secrets.api_key"
    );
    let mut s = Secrets::new();
    let e = validate_config("generic_https", &json!({"url": url}), &mut s, &common::guarded_env())
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.url");

    let config = json!({"url": url});
    assert_eq!(
        build("generic_https", &config, &Secrets::new(), "raw", &env)
            .err()
            .unwrap()
            .field,
        "format"
    );
    for format in ["json", "cef", "leef", "ocsf"] {
        assert!(
            build("generic_https", &config, &Secrets::new(), format, &env).is_ok(),
            "{format}"
        );
    }
    let sink = sink_with(url, json!({"auth_header": "X-Api-Key"}), &auth(), Format::Json);
    let debug = format!("{sink:?}");
    assert!(debug.contains("x-api-key") && !debug.contains(AUTH), "{debug}");
    let evs = events("acme", 1..=1);
    for request in [
        sink.batch_request(&batch("b", &evs)).unwrap(),
        sink.event_request(&batch("b", &evs), 0).unwrap(),
    ] {
        let debug = format!("{request:?}");
        assert!(debug.contains("Sensitive") && !debug.contains(AUTH), "{debug}");
    }
}
