//! The `s3` sink against a real S3-compatible server: `moto` in server mode (PyPI, installed by
//! `scripts/test-peers`), started with `INITIAL_NO_AUTH_ACTION_COUNT` so it checks every SigV4
//! signature, and read back with `boto3` (`tests/peers/s3_read.py`). A moto that cannot start
//! FAILS the test. moto keeps everything in memory: what survives a restart of the receiver is
//! not ours to test; the outage test checks that delivery fails as `Retry` while it is down and
//! succeeds once it is back. The classification table runs against a scripted loopback receiver.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::moto;
use auditrelay_testkit::scripted_receiver as scripted;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_sinks::{build, validate_config, Outcome, Sink};
use common::{batch, events, open_env, secrets};
use moto::Moto;
use scripted::{Reply, ScriptedReceiver};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sink(moto: &Moto, bucket: &str, creds: &(String, String), extra: Value) -> Arc<dyn Sink> {
    let mut config = json!({"bucket": bucket, "endpoint": moto.endpoint(), "region": "us-east-1"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let secrets = secrets(&[("access_key_id", &creds.0), ("secret_access_key", &creds.1)]);
    build("s3", &config, &secrets, "json", &open_env()).unwrap()
}

/// Checks every object: each line's offset within the object's range in order, and returns the
/// event ids seen (with their count, so duplicates show).
fn ids_in(objects: &BTreeMap<String, (Value, Value, Vec<Value>)>) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for (key, (_, _, lines)) in objects {
        let offsets: Vec<u64> = lines.iter().map(|l| l["offset"].as_u64().unwrap()).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{key}: offsets out of order");
        let name = format!("{:09}-{:09}", offsets[0], offsets[offsets.len() - 1]);
        assert!(key.contains(&name), "{key} does not name its range {name}");
        for l in lines {
            *ids.entry(l["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_ten_objects_each_event_once_retry_overwrites() {
    let moto = Moto::start(true);
    let creds = moto.setup("audit");
    let gz = sink(&moto, "audit", &creds, json!({}));
    let all = events("acme", 1..=10_000);
    let started = Instant::now();
    for (n, chunk) in all.chunks(1000).enumerate() {
        let report = gz.deliver(&batch(&format!("b{n}"), chunk)).await;
        assert_eq!(report.outcome, Outcome::Delivered, "batch {n}: {report:?}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "s3: 10,000 events in 10 objects in {elapsed:?} ({:.0} events/s, gzip, moto on 127.0.0.1)",
        10_000.0 / elapsed.as_secs_f64()
    );
    // The engine retries a batch whose answer it never saw: same key, same object.
    let report = gz.deliver(&batch("b3", &all[3000..4000])).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");

    // An uncompressed sink for another tenant lands beside it, under its own prefix.
    let plain = sink(&moto, "audit", &creds, json!({"compression": "none"}));
    let beta = events("beta", 1..=5);
    let report = plain
        .deliver(&auditrelay_sinks::Batch {
            sink_id: "snk_test",
            tenant_id: "beta",
            batch_id: "b-beta",
            events: &beta,
        })
        .await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");

    // And a zstd one: `.zst`, `Content-Encoding: zstd`, decompressed by Python's `zstandard`.
    let zst = sink(&moto, "audit", &creds, json!({"compression": "zstd"}));
    let gamma = events("gamma", 1..=5);
    let report = zst
        .deliver(&auditrelay_sinks::Batch {
            sink_id: "snk_test",
            tenant_id: "gamma",
            batch_id: "b-gamma",
            events: &gamma,
        })
        .await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");

    let objects = moto.read("audit", &creds);
    let keys: Vec<&String> = objects.keys().collect();
    let mut want: Vec<String> = (0..10u64)
        .map(|n| {
            format!(
                "tenant=acme/date=2026-06-01/{:09}-{:09}.jsonl.gz",
                n * 1000 + 1,
                n * 1000 + 1000
            )
        })
        .collect();
    want.push("tenant=beta/date=2026-06-01/000000001-000000005.jsonl".to_owned());
    want.push("tenant=gamma/date=2026-06-01/000000001-000000005.jsonl.zst".to_owned());
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    let (ctype, encoding, _) = &objects[&want[0]];
    assert_eq!(
        (ctype.as_str(), encoding.as_str()),
        (Some("application/x-ndjson"), Some("gzip"))
    );
    assert!(
        objects[&want[10]].1.is_null(),
        "no Content-Encoding without compression"
    );
    let (_, encoding, lines) = &objects[&want[11]];
    assert_eq!(encoding.as_str(), Some("zstd"));
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], serde_json::from_str::<Value>(&gamma[0].to_json()).unwrap());

    // Event ids repeat across tenants in these fixtures: count per tenant.
    let acme: BTreeMap<_, _> = objects
        .iter()
        .filter(|(k, _)| k.starts_with("tenant=acme/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ids = ids_in(&acme);
    let dups: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let expected: BTreeSet<String> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // Byte-exact: each line is the `json` format of the event.
    let first = &objects[&want[0]].2[0];
    assert_eq!(first, &serde_json::from_str::<Value>(&all[0].to_json()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_missing_bucket_are_misconfigured() {
    let moto = Moto::start(true);
    let creds = moto.setup("audit");
    let evs = events("acme", 1..=3);

    let wrong_secret = (creds.0.clone(), "hunter2-not-the-secret".to_owned());
    let report = sink(&moto, "audit", &wrong_secret, json!({}))
        .deliver(&batch("b", &evs))
        .await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert_eq!(report.status, Some(403));
    let error = report.error.unwrap();
    assert!(error.contains("SignatureDoesNotMatch"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    let wrong_id = ("AKIAUNKNOWN000000000".to_owned(), creds.1.clone());
    let report = sink(&moto, "audit", &wrong_id, json!({}))
        .deliver(&batch("b", &evs))
        .await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert!(
        report.error.as_deref().unwrap().contains("InvalidAccessKeyId"),
        "{report:?}"
    );

    let report = sink(&moto, "no-such-bucket", &creds, json!({}))
        .deliver(&batch("b", &evs))
        .await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
    assert_eq!(report.status, Some(404));
    assert!(report.error.as_deref().unwrap().contains("NoSuchBucket"), "{report:?}");

    // Nothing was written by the failed attempts.
    assert!(moto.read("audit", &creds).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_retried_then_delivered() {
    // Without IAM: moto generates a new key pair on every setup, and the point here is the same
    // sink carrying on after the receiver comes back.
    let mut moto = Moto::start(false);
    let creds = moto.setup("audit");
    let s3 = sink(&moto, "audit", &creds, json!({}));
    let all = events("acme", 1..=2000);
    let report = s3.deliver(&batch("b0", &all[..500])).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report:?}");

    moto.kill();
    let report = s3.deliver(&batch("b1", &all[500..1000])).await;
    assert_eq!(report.outcome, Outcome::Retry { after: None }, "{report:?}");
    assert!(
        report.error.as_deref().unwrap().contains("connection refused"),
        "{report:?}"
    );

    // moto is in-memory: after the restart the bucket is re-created (the receiver's own
    // durability is not ours to test), then the engine's retry of the same batch goes through.
    moto.spawn();
    moto.setup("audit");
    for (n, range) in [(1, 500..1000), (2, 1000..1500), (3, 1500..2000)] {
        let report = s3.deliver(&batch(&format!("b{n}"), &all[range])).await;
        assert_eq!(report.outcome, Outcome::Delivered, "batch {n}: {report:?}");
    }
    let objects = moto.read("audit", &creds);
    assert_eq!(objects.len(), 3);
    let ids = ids_in(&objects);
    assert_eq!(ids.len(), 1500);
    assert!(ids.values().all(|n| *n == 1));
    assert!(ids.contains_key(&all[500].id) && ids.contains_key(&all[1999].id));
}

#[tokio::test]
async fn validation_names_the_field() {
    let env = open_env();
    let ok = json!({"bucket": "audit", "endpoint": "http://127.0.0.1:9"});
    let mut s = secrets(&[("access_key_id", "AKIA1"), ("secret_access_key", "s")]);
    assert!(validate_config("s3", &ok, &mut s, &env).await.unwrap().is_empty());
    for (config, field) in [
        (json!({"endpoint": "http://127.0.0.1:9"}), "config.bucket"),
        (
            json!({"bucket": "audit", "compression": "brotli"}),
            "config.compression",
        ),
        (
            json!({"bucket": "audit", "key_template": "{tenant}/{hour}/{first}"}),
            "config.key_template",
        ),
        (
            json!({"bucket": "audit", "key_template": "all.jsonl"}),
            "config.key_template",
        ),
        (json!({"bucket": "audit", "acl": "private"}), "config.acl"),
    ] {
        let e = validate_config("s3", &config, &mut s, &env).await.unwrap_err();
        assert_eq!(e.field, field, "{config}: {e}");
    }
    let mut only_id = secrets(&[("access_key_id", "AKIA1")]);
    let e = validate_config("s3", &ok, &mut only_id, &env).await.unwrap_err();
    assert_eq!(e.field, "secrets.secret_access_key");
    let mut unknown = secrets(&[("token", "x")]);
    let e = validate_config("s3", &ok, &mut unknown, &env).await.unwrap_err();
    assert_eq!(e.field, "secrets.token");
    // The SSRF guard applies to the endpoint.
    let guarded = common::guarded_env();
    let e = validate_config("s3", &ok, &mut s, &guarded).await.unwrap_err();
    assert_eq!(e.field, "config.endpoint");
    let e = build("s3", &json!({"bucket": "audit"}), &s, "cef", &env).err().unwrap();
    assert_eq!(e.field, "format");
}

fn xml(status: u16, code: &str) -> Reply {
    Reply::Answer {
        status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>m</Message></Error>"
        ),
    }
}

/// The classification table against a loopback receiver, S3's XML codes included, and the
/// request as it arrives on the wire.
#[tokio::test]
async fn classification_table_and_wire_request() {
    let retry = |s: Option<u64>| Outcome::Retry {
        after: s.map(Duration::from_secs),
    };
    let cases: Vec<(&str, Reply, Outcome, Option<u16>)> = vec![
        ("200", Reply::status(200), Outcome::Delivered, Some(200)),
        ("204", Reply::status(204), Outcome::Delivered, Some(204)),
        (
            "301",
            Reply::status(301).with_header("location", "http://x.example/"),
            Outcome::Reject,
            Some(301),
        ),
        (
            "301 PermanentRedirect",
            xml(301, "PermanentRedirect"),
            Outcome::Misconfigured,
            Some(301),
        ),
        ("400", Reply::status(400), Outcome::Reject, Some(400)),
        (
            "400 EntityTooLarge",
            xml(400, "EntityTooLarge"),
            Outcome::Reject,
            Some(400),
        ),
        (
            "400 AuthorizationHeaderMalformed",
            xml(400, "AuthorizationHeaderMalformed"),
            Outcome::Misconfigured,
            Some(400),
        ),
        ("400 RequestTimeout", xml(400, "RequestTimeout"), retry(None), Some(400)),
        ("401", Reply::status(401), Outcome::Misconfigured, Some(401)),
        (
            "403 SignatureDoesNotMatch",
            xml(403, "SignatureDoesNotMatch"),
            Outcome::Misconfigured,
            Some(403),
        ),
        (
            "403 InvalidAccessKeyId",
            xml(403, "InvalidAccessKeyId"),
            Outcome::Misconfigured,
            Some(403),
        ),
        (
            "404 NoSuchBucket",
            xml(404, "NoSuchBucket"),
            Outcome::Misconfigured,
            Some(404),
        ),
        ("408", Reply::status(408), retry(None), Some(408)),
        ("410", Reply::status(410), Outcome::Misconfigured, Some(410)),
        ("413", Reply::status(413), Outcome::Reject, Some(413)),
        (
            "429 Retry-After",
            Reply::status(429).with_header("retry-after", "30"),
            retry(Some(30)),
            Some(429),
        ),
        ("500 InternalError", xml(500, "InternalError"), retry(None), Some(500)),
        (
            "503 SlowDown",
            xml(503, "SlowDown").with_header("retry-after", "5"),
            retry(Some(5)),
            Some(503),
        ),
        ("503", Reply::status(503), retry(None), Some(503)),
        ("connection reset", Reply::Reset, retry(None), None),
    ];
    let evs = events("acme", 1..=2);
    let secret = "hunter2-secret-key";
    for (name, reply, want, status) in cases {
        let receiver = ScriptedReceiver::always(reply).await;
        let config = json!({"bucket": "audit", "endpoint": receiver.url("/").trim_end_matches('/')});
        let sink = build(
            "s3",
            &config,
            &secrets(&[("access_key_id", "AKIATEST"), ("secret_access_key", secret)]),
            "json",
            &open_env(),
        )
        .unwrap();
        let report = sink.deliver(&batch("b", &evs)).await;
        assert_eq!(report.outcome, want, "{name}: {report:?}");
        assert_eq!(report.status, status, "{name}");
        let error = report.error.unwrap_or_default();
        assert_eq!(error.is_empty(), want == Outcome::Delivered, "{name}: {error}");
        assert!(!error.contains(secret), "{name}: no secret in errors");
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1, "{name}");
        let r = &requests[0];
        assert_eq!(r.method, "PUT");
        assert_eq!(
            r.target,
            "/audit/tenant%3Dacme/date%3D2026-06-01/000000001-000000002.jsonl.gz"
        );
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let digest: String = Sha256::digest(&r.body).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.header("x-amz-content-sha256"), Some(digest.as_str()));
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIATEST/")
                && auth.contains(
                    "/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
                ),
            "{auth}"
        );
        assert!(!r.headers.iter().any(|(_, v)| v.contains(secret)));
    }
}
