//! The webhook sink end to end over loopback HTTP, with signatures checked by the reference
//! `standardwebhooks` Python library (run `scripts/test-peers` first).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use auditrelay_sinks::webhook::{self, WebhookSink, PREVIOUS_SIGNING_SECRET, PREVIOUS_SIGNING_SECRET_EXPIRES_AT};
use auditrelay_sinks::{build, validate_config, Outcome, Secrets, Sink};
use common::*;
use serde_json::{json, Value};

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sink(url: &str, secrets: &Secrets, extra: Value) -> WebhookSink {
    let mut config = json!({ "url": url });
    if let Value::Object(extra) = extra {
        config.as_object_mut().unwrap().extend(extra);
    }
    WebhookSink::new(&config, secrets, "json", &open_env()).unwrap()
}

#[tokio::test]
async fn delivers_the_batch_with_standard_webhooks_headers() {
    let receiver = Receiver::start().await;
    let secret = webhook::generate_secret();
    let sink = sink(
        &receiver.url("/hook?team=soc"),
        &secrets(&[("signing_secret", &secret)]),
        json!({"headers": {"X-Team": "soc", "X-Env": "test"}}),
    );
    let events = events("acme", 41..=43);
    let before = now_secs();
    let report = sink.deliver(&batch("bat_0001", &events)).await;
    let after = now_secs();
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");
    assert_eq!((report.status, report.error), (Some(204), None));

    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.header("content-length"), req.body.len().to_string());
    assert_eq!(req.header("webhook-id"), "bat_0001");
    assert_eq!(req.header("x-team"), "soc");
    assert_eq!(req.header("x-env"), "test");
    assert!(
        req.header("user-agent").starts_with("auditrelay/"),
        "{}",
        req.header("user-agent")
    );
    let ts: i64 = req.header("webhook-timestamp").parse().unwrap();
    assert!((before..=after).contains(&ts), "{ts} not in {before}..={after}");
    let expected = webhook::sign(&secret, "bat_0001", ts, &req.body).unwrap();
    assert_eq!(req.header("webhook-signature"), expected);

    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "batch_id",
            "tenant_id",
            "first_offset",
            "last_offset",
            "count",
            "events"
        ]
    );
    assert_eq!(body["batch_id"], "bat_0001");
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(
        (body["first_offset"].as_u64(), body["last_offset"].as_u64()),
        (Some(41), Some(43))
    );
    assert_eq!(body["count"], 3);
    // Each event exactly as the API serves it (offset first, stored bytes after).
    let expected_events = events.iter().map(|e| e.to_json()).collect::<Vec<_>>().join(",");
    assert!(req.body_str().ends_with(&format!("\"events\":[{expected_events}]}}")));
    assert_eq!(body["events"][0]["actor"]["name"], "Zoë \"quoted\" <b>");
}

#[tokio::test]
async fn webhook_id_is_stable_across_attempts_and_timestamp_is_per_attempt() {
    let receiver = Receiver::start().await;
    let secret = webhook::generate_secret();
    let sink = sink(
        &receiver.url("/status/503"),
        &secrets(&[("signing_secret", &secret)]),
        json!({}),
    );
    let events = events("acme", 1..=1);
    for _ in 0..2 {
        let report = sink.deliver(&batch("bat_retry", &events)).await;
        assert_eq!(report.outcome, Outcome::Retry { after: None });
    }
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    assert_eq!(reqs[0].body, reqs[1].body);
    for req in &reqs {
        let ts: i64 = req.header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            req.header("webhook-signature"),
            webhook::sign(&secret, "bat_retry", ts, &req.body).unwrap()
        );
    }
}

#[tokio::test]
async fn python_standardwebhooks_verifies_our_signature_and_rejects_tampering() {
    let receiver = Receiver::start().await;
    let secret = webhook::generate_secret();
    let sink = sink(
        &receiver.url("/hook"),
        &secrets(&[("signing_secret", &secret)]),
        json!({}),
    );
    let events = events("acme", 1..=3);
    assert_eq!(
        sink.deliver(&batch("bat_py", &events)).await.outcome,
        Outcome::Delivered
    );
    let req = &receiver.requests()[0];
    let headers = req.headers_json();
    let body = req.body_str().to_owned();
    let tampered = body.replacen("evt_0002", "evt_0009", 1);
    assert_ne!(tampered, body);
    let mut stale = headers.clone();
    stale["webhook-timestamp"] = Value::from((now_secs() - 3600).to_string());
    let answers = python_verify(&[
        (secret.clone(), headers.clone(), body.clone()),
        (secret.clone(), headers.clone(), tampered),
        (webhook::generate_secret(), headers.clone(), body.clone()),
        (secret.clone(), stale, body.clone()),
    ]);
    assert_eq!(answers[0], "ok", "the reference verifier must accept our signature");
    assert_eq!(answers[1], "fail: No matching signature found", "tampered body");
    assert_eq!(answers[2], "fail: No matching signature found", "wrong secret");
    assert_eq!(answers[3], "fail: Message timestamp too old", "stale timestamp");
}

#[tokio::test]
async fn python_accepts_the_spec_vector_and_padded_and_unpadded_secrets() {
    // The spec vector, re-signed at a current timestamp so the verifier's 5-minute window holds.
    let spec_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let generated = webhook::generate_secret();
    let unpadded = generated.trim_end_matches('=').to_owned();
    let body = r#"{"email":"test@example.com","username":"test_user"}"#;
    let ts = now_secs();
    let items: Vec<(String, Value, String)> = [spec_secret, generated.as_str(), unpadded.as_str()]
        .iter()
        .map(|secret| {
            let sig = webhook::sign(secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", ts, body.as_bytes()).unwrap();
            let headers = json!({
                "webhook-id": "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                "webhook-timestamp": ts.to_string(),
                "webhook-signature": sig,
            });
            ((*secret).to_owned(), headers, body.to_owned())
        })
        .collect();
    assert_eq!(python_verify(&items), ["ok", "ok", "ok"]);
}

fn rotating_secrets(current: &str, previous: &str, expires_at: &str) -> Secrets {
    secrets(&[
        ("signing_secret", current),
        (PREVIOUS_SIGNING_SECRET, previous),
        (PREVIOUS_SIGNING_SECRET_EXPIRES_AT, expires_at),
    ])
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_grace_then_only_the_new_one() {
    let receiver = Receiver::start().await;
    let (new, old) = (webhook::generate_secret(), webhook::generate_secret());
    let events = events("acme", 1..=2);
    let in_grace = sink(
        &receiver.url("/grace"),
        &rotating_secrets(&new, &old, "2999-01-01T00:00:00Z"),
        json!({}),
    );
    let expired = sink(
        &receiver.url("/expired"),
        &rotating_secrets(&new, &old, "2020-01-01T00:00:00+02:00"),
        json!({}),
    );
    assert_eq!(
        in_grace.deliver(&batch("bat_rot", &events)).await.outcome,
        Outcome::Delivered
    );
    assert_eq!(
        expired.deliver(&batch("bat_rot", &events)).await.outcome,
        Outcome::Delivered
    );
    let reqs = receiver.requests();
    let (grace, after) = (&reqs[0], &reqs[1]);

    let ts: i64 = grace.header("webhook-timestamp").parse().unwrap();
    let sig_new = webhook::sign(&new, "bat_rot", ts, &grace.body).unwrap();
    let sig_old = webhook::sign(&old, "bat_rot", ts, &grace.body).unwrap();
    assert_eq!(
        grace.header("webhook-signature"),
        format!("{sig_new} {sig_old}"),
        "current first"
    );
    let ts: i64 = after.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        after.header("webhook-signature"),
        webhook::sign(&new, "bat_rot", ts, &after.body).unwrap()
    );

    let check = |secret: &str, req: &Recorded| (secret.to_owned(), req.headers_json(), req.body_str().to_owned());
    let answers = python_verify(&[
        check(&new, grace),
        check(&old, grace),
        check(&new, after),
        check(&old, after),
    ]);
    assert_eq!(answers[0], "ok", "receiver already on the new secret");
    assert_eq!(
        answers[1], "ok",
        "receiver still on the old secret during the grace period"
    );
    assert_eq!(answers[2], "ok");
    assert_eq!(
        answers[3], "fail: No matching signature found",
        "old secret after expiry"
    );
}

/// The Python receiver other suites use for end-to-end runs: starts, verifies, logs.
#[tokio::test]
async fn python_webhook_receiver_verifies_and_logs_deliveries() {
    let dir = std::env::temp_dir().join(format!("auditrelay-sinks-recv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("received.jsonl");
    let _ = std::fs::remove_file(&out);
    let secret = webhook::generate_secret();
    let mut child = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/webhook_receiver.py"))
        .args(["--port", "0", "--secret", &secret, "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("listening ").expect(&line).parse().unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");

    let events = events("acme", 5..=7);
    let good = sink(&url, &secrets(&[("signing_secret", &secret)]), json!({}));
    let bad = sink(
        &url,
        &secrets(&[("signing_secret", &webhook::generate_secret())]),
        json!({}),
    );
    let ok = good.deliver(&batch("bat_good", &events)).await;
    let refused = bad.deliver(&batch("bat_bad", &events[..1])).await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!((ok.outcome, ok.status), (Outcome::Delivered, Some(204)));
    assert_eq!((refused.outcome, refused.status), (Outcome::Reject, Some(400)));
    assert_eq!(refused.error.as_deref(), Some("HTTP 400: No matching signature found"));
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        json!({"verified": true, "error": null, "webhook_id": "bat_good",
               "event_ids": ["evt_0005", "evt_0006", "evt_0007"], "offsets": [5, 6, 7]})
    );
    assert_eq!(lines[1]["verified"], false);
    assert_eq!(lines[1]["webhook_id"], "bat_bad");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn validate_generates_a_secret_when_absent_and_names_bad_fields() {
    let env = open_env();
    let config = json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "soc"}});

    let mut secrets = Secrets::new();
    let generated = validate_config("webhook", &config, &mut secrets, &env).await.unwrap();
    let secret = generated.get("signing_secret").expect("generated secret returned");
    assert_eq!(secrets.get("signing_secret"), Some(secret), "and inserted");
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "{secret}");
    assert!(webhook::sign(secret, "m", 1, b"x").unwrap().starts_with("v1,"));
    // The stored definition builds a working sink.
    assert!(build("webhook", &config, &secrets, "json", &env).is_ok());

    let given = webhook::generate_secret();
    let mut secrets = common::secrets(&[("signing_secret", &given)]);
    assert!(validate_config("webhook", &config, &mut secrets, &env)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(secrets["signing_secret"], given, "a given secret is kept");

    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("webhook", &config, &mut secrets, &env)
                .await
                .unwrap_err()
                .field
        }
    };
    let url = "http://127.0.0.1:9/";
    assert_eq!(field(json!({}), Secrets::new()).await, "config.url");
    assert_eq!(field(json!({"url": "ftp://x/"}), Secrets::new()).await, "config.url");
    assert_eq!(
        field(json!({"url": url, "extra": 1}), Secrets::new()).await,
        "config.extra"
    );
    assert_eq!(
        field(json!({"url": url, "headers": {"X-Foo": 5}}), Secrets::new()).await,
        "config.headers.X-Foo"
    );
    assert_eq!(
        field(
            json!({"url": url, "headers": {"Webhook-Signature": "v1,x"}}),
            Secrets::new()
        )
        .await,
        "config.headers.Webhook-Signature"
    );
    assert_eq!(
        field(json!({"url": url, "rotation_grace_secs": -5}), Secrets::new()).await,
        "config.rotation_grace_secs"
    );
    assert_eq!(
        field(json!({"url": url}), common::secrets(&[("signing_secret", "hunter2")])).await,
        "secrets.signing_secret"
    );
    assert_eq!(
        field(json!({"url": url}), common::secrets(&[("token", "x")])).await,
        "secrets.token"
    );
    let e = {
        let mut s = common::secrets(&[("signing_secret", "whsec_hunter2")]);
        validate_config("webhook", &json!({"url": url}), &mut s, &env)
            .await
            .unwrap_err()
    };
    assert!(
        !e.to_string().contains("hunter2"),
        "secrets never appear in errors: {e}"
    );
}

#[tokio::test]
async fn build_refuses_formats_other_than_json() {
    let s = secrets(&[("signing_secret", &webhook::generate_secret())]);
    let config = json!({"url": "https://example.com/"});
    let err = build("webhook", &config, &s, "cef", &open_env()).err().unwrap();
    assert_eq!(err.field, "format");
    assert!(build("webhook", &config, &s, "json", &open_env()).is_ok());
}
