//! The elastic sink over loopback HTTP: the exact `_bulk` request, per-item results, and the
//! classification table.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::scripted_receiver as scripted;

use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_format::Format;
use auditrelay_sinks::elastic::ElasticSink;
use auditrelay_sinks::{build, validate_config, AttemptReport, Outcome, Secrets, Sink};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{batch, events, open_env, secrets};
use scripted::{Reply, ScriptedReceiver};
use serde_json::{json, Value};

const ENCODED_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

fn key() -> Secrets {
    secrets(&[("api_key", ENCODED_KEY)])
}

fn sink_with(url: &str, extra: Value, secrets: &Secrets, format: Format) -> ElasticSink {
    let mut config = json!({ "url": url });
    if let Value::Object(extra) = extra {
        config.as_object_mut().unwrap().extend(extra);
    }
    ElasticSink::new(&config, secrets, format, &open_env()).unwrap()
}

fn sink(url: &str) -> ElasticSink {
    sink_with(url, json!({}), &key(), Format::Json)
}

/// A `_bulk` answer with one item per status.
fn bulk_answer(action: &str, items: &[(u16, Option<(&str, &str)>)]) -> String {
    let errors = items.iter().any(|(s, _)| !(200..300).contains(s));
    let items: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (status, error))| {
            let mut item = json!({"_index": "auditrelay-acme", "_id": format!("evt_{:04}", i + 1), "status": status});
            if let Some((kind, reason)) = error {
                item["error"] = json!({"type": kind, "reason": reason, "index": "auditrelay-acme"});
            } else {
                item["result"] = json!("created");
            }
            let mut wrapped = serde_json::Map::new();
            wrapped.insert(action.to_owned(), item);
            Value::Object(wrapped)
        })
        .collect();
    json!({"took": 3, "errors": errors, "items": items}).to_string()
}

#[tokio::test]
async fn bulk_request_is_exact() {
    let evs = events("acme", 1..=3);
    let answer = bulk_answer("create", &[(201, None), (201, None), (201, None)]);
    let receiver = ScriptedReceiver::always(Reply::json(200, &answer)).await;
    let sink = sink_with(
        &receiver.url("/es/?pipeline=auditrelay"),
        json!({"index": "audit-{tenant}-{type}-{yyyy}.{MM}.{dd}"}),
        &key(),
        Format::Json,
    );
    let report = sink.deliver(&batch("bat_1", &evs)).await;
    assert_eq!(report, AttemptReport::delivered(Some(200)));
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    insta::assert_snapshot!("elastic_bulk_request", req.snapshot());

    // The same bytes, spelled out: NDJSON, action then document, final line ending in `\n`.
    let mut want = String::new();
    for e in &evs {
        want.push_str(&format!(
            "{{\"create\":{{\"_index\":\"audit-acme-user.login-2026.06.01\",\"_id\":\"{}\"}}}}\n{}\n",
            e.id,
            e.to_json()
        ));
    }
    assert_eq!(req.body_str(), want);
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/es/_bulk?pipeline=auditrelay");
    assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("ApiKey {ENCODED_KEY}").as_str())
    );
}

#[tokio::test]
async fn index_action_and_shared_index_ids() {
    let evs = events("acme", 1..=1);
    let receiver = ScriptedReceiver::always(Reply::json(200, &bulk_answer("index", &[(200, None)]))).await;
    let sink = sink_with(
        &receiver.url(""),
        json!({"index": "audit", "action": "index"}),
        &key(),
        Format::Json,
    );
    assert_eq!(sink.deliver(&batch("b", &evs)).await.outcome, Outcome::Delivered);
    let req = &receiver.requests()[0];
    assert_eq!(req.target, "/_bulk");
    // No `{tenant}` in the index: ids carry the tenant, so tenants cannot collide.
    assert!(
        req.body_str()
            .starts_with(r#"{"index":{"_index":"audit","_id":"acme:evt_0001"}}"#),
        "{}",
        req.body_str()
    );
}

#[tokio::test]
async fn auth_header_both_ways() {
    let evs = events("acme", 1..=1);
    let ok = bulk_answer("create", &[(201, None)]);
    let receiver = ScriptedReceiver::always(Reply::json(200, &ok)).await;
    let url = receiver.url("");
    let basic = sink_with(
        &url,
        json!({"auth": "basic", "username": "elastic"}),
        &secrets(&[("password", "pa:ss wörd")]),
        Format::Json,
    );
    let api = sink_with(
        &url,
        json!({"auth": "api_key"}),
        &secrets(&[("api_key", "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")]),
        Format::Json,
    );
    assert_eq!(basic.deliver(&batch("b", &evs)).await.outcome, Outcome::Delivered);
    assert_eq!(api.deliver(&batch("b", &evs)).await.outcome, Outcome::Delivered);
    let reqs = receiver.requests();
    let basic_value = reqs[0].header("authorization").unwrap();
    let decoded = STANDARD.decode(basic_value.strip_prefix("Basic ").unwrap()).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "elastic:pa:ss wörd");
    // `id:api_key` is sent in its encoded form, as Elasticsearch expects.
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("ApiKey {ENCODED_KEY}").as_str())
    );
    // Neither sink, nor a request it builds, shows a credential in Debug.
    let built = format!("{:?}", api.request(&batch("b", &evs)).unwrap());
    assert!(
        built.contains("authorization") && built.contains("Sensitive"),
        "{built}"
    );
    for s in [format!("{basic:?}"), format!("{api:?}"), built] {
        assert!(
            !s.contains("pa:ss") && !s.contains("ui2lp") && !s.contains(ENCODED_KEY),
            "{s}"
        );
    }
}

#[tokio::test]
async fn partial_answer_retries_429_and_5xx_and_rejects_the_rest() {
    let evs = events("acme", 1..=5);
    let answer = bulk_answer(
        "create",
        &[
            (201, None),
            (
                409,
                Some((
                    "version_conflict_engine_exception",
                    "[evt_0002]: version conflict, document already exists (current version [1])",
                )),
            ),
            (
                429,
                Some((
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation",
                )),
            ),
            (
                503,
                Some(("unavailable_shards_exception", "primary shard is not active")),
            ),
            (
                400,
                Some((
                    "document_parsing_exception",
                    "[1:12] failed to parse field [severity] of type [long]\nin document",
                )),
            ),
        ],
    );
    let receiver = ScriptedReceiver::always(Reply::json(200, &answer).with_header("retry-after", "7")).await;
    let report = sink(&receiver.url("")).deliver(&batch("bat_p", &evs)).await;
    assert_eq!(
        report.outcome,
        Outcome::Partial {
            retry: vec![2, 3],
            after: Some(Duration::from_secs(7)),
            rejected: vec![(
                4,
                "400 document_parsing_exception: [1:12] failed to parse field [severity] of type [long] in document"
                    .to_owned()
            )],
        }
    );
    assert_eq!(report.status, Some(200));
    assert_eq!(
        report.error.as_deref(),
        Some(
            "_bulk: 2 of 5 events to retry, 1 rejected; first: event #2 (retry): 429 \
             es_rejected_execution_exception: rejected execution of coordinating operation"
        )
    );
}

#[tokio::test]
async fn all_success_answer_with_items() {
    let evs = events("acme", 1..=2);
    let receiver =
        ScriptedReceiver::always(Reply::json(200, &bulk_answer("create", &[(201, None), (201, None)]))).await;
    assert_eq!(
        sink(&receiver.url("")).deliver(&batch("b", &evs)).await,
        AttemptReport::delivered(Some(200))
    );
    // `errors: true` where every item is 2xx or 409 (a re-delivery): delivered too.
    let answer = bulk_answer(
        "create",
        &[
            (409, Some(("version_conflict_engine_exception", "exists"))),
            (201, None),
        ],
    );
    let receiver = ScriptedReceiver::always(Reply::json(200, &answer)).await;
    assert_eq!(
        sink(&receiver.url("")).deliver(&batch("b", &evs)).await,
        AttemptReport::delivered(Some(200))
    );
}

#[tokio::test]
async fn malformed_200_is_retried() {
    let evs = events("acme", 1..=2);
    for body in [
        "<html>proxy says hi</html>",
        r#"{"errors":true,"items":[{"create":{"status":201}}]}"#,
        "",
    ] {
        let receiver = ScriptedReceiver::always(Reply::json(200, body)).await;
        let report = sink(&receiver.url("")).deliver(&batch("b", &evs)).await;
        assert_eq!(report.outcome, Outcome::Retry { after: None }, "{body}");
        assert_eq!(report.status, Some(200));
        let e = report.error.unwrap();
        assert!(e.starts_with("HTTP 200 but the answer is unreadable"), "{e}");
    }
}

#[tokio::test]
async fn classification_table() {
    let evs = events("acme", 1..=2);
    let retry = |s: Option<u64>| Outcome::Retry {
        after: s.map(Duration::from_secs),
    };
    let all_429 = bulk_answer(
        "create",
        &[
            (429, Some(("es_rejected_execution_exception", "busy"))),
            (429, Some(("es_rejected_execution_exception", "busy"))),
        ],
    );
    let all_400 = bulk_answer(
        "create",
        &[
            (400, Some(("mapper_parsing_exception", "a"))),
            (404, Some(("index_not_found_exception", "b"))),
        ],
    );
    let cases: Vec<(&str, Reply, Outcome, Option<u16>)> = vec![
        (
            "200 errors:false",
            Reply::json(200, r#"{"errors":false,"items":[]}"#),
            Outcome::Delivered,
            Some(200),
        ),
        (
            "201",
            Reply::json(201, r#"{"errors":false}"#),
            Outcome::Delivered,
            Some(201),
        ),
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
        // `_bulk`'s own cases.
        ("200 every item 429", Reply::json(200, &all_429), retry(None), Some(200)),
        (
            "200 every item refused",
            Reply::json(200, &all_400),
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: vec![
                    (0, "400 mapper_parsing_exception: a".into()),
                    (1, "404 index_not_found_exception: b".into()),
                ],
            },
            Some(200),
        ),
        ("200 not JSON", Reply::json(200, "ok"), retry(None), Some(200)),
    ];
    for (name, reply, want, status) in cases {
        let receiver = ScriptedReceiver::always(reply).await;
        let report = sink(&receiver.url("")).deliver(&batch("b", &evs)).await;
        assert_eq!(report.outcome, want, "{name}: {report:?}");
        assert_eq!(report.status, status, "{name}");
        assert_eq!(report.error.is_none(), want == Outcome::Delivered, "{name}: {report:?}");
        assert!(
            !report.error.unwrap_or_default().contains(ENCODED_KEY),
            "{name}: no secret in errors"
        );
        assert_eq!(receiver.requests().len(), 1, "{name}: one request per attempt");
    }
}

#[tokio::test]
async fn raw_events_go_on_one_line_and_bad_ones_are_refused_alone() {
    let mut evs = events("acme", 1..=3);
    // The `raw` format delivers the stored body; these stand in for bodies the server would
    // never store, to check the guard.
    evs[0].body = "{\n  \"type\": \"user.login\",\n  \"note\": \"two\\nlines\"\n}".into();
    evs[1].body = "not json".into();
    evs[2].body = r#"{"type":"user.login"}"#.into();
    let receiver = ScriptedReceiver::always(Reply::json(200, r#"{"errors":false,"items":[]}"#)).await;
    let report = sink_with(&receiver.url(""), json!({}), &key(), Format::Raw)
        .deliver(&batch("b", &evs))
        .await;
    assert_eq!(
        report.outcome,
        Outcome::Partial {
            retry: vec![],
            after: None,
            rejected: vec![(1, "event 2 as stored is not valid JSON".into())],
        }
    );
    let body = receiver.requests()[0].body_str().to_owned();
    let lines: Vec<&str> = body.split_terminator('\n').collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert_eq!(lines[1], r#"{   "type": "user.login",   "note": "two\nlines" }"#);
    assert_eq!(lines[3], r#"{"type":"user.login"}"#);
    assert!(body.ends_with('\n'));

    // A stored event goes as its stored body.
    let stored: Vec<StoredEvent> = events("acme", 1..=1);
    let report = sink_with(&receiver.url(""), json!({}), &key(), Format::Raw)
        .deliver(&batch("b", &stored))
        .await;
    assert_eq!(report.outcome, Outcome::Delivered);
    let body = receiver.requests()[1].body_str().to_owned();
    assert_eq!(body.split_terminator('\n').nth(1), Some(stored[0].body.as_str()));
}

#[tokio::test]
async fn a_whole_request_failure_still_rejects_events_refused_before_sending() {
    let mut evs = events("acme", 1..=2);
    evs[0].body = "[]".into();
    evs[1].body = "{}".into();
    let receiver = ScriptedReceiver::always(Reply::status(503).with_header("retry-after", "2")).await;
    let report = sink_with(&receiver.url(""), json!({}), &key(), Format::Raw)
        .deliver(&batch("b", &evs))
        .await;
    assert_eq!(
        report.outcome,
        Outcome::Partial {
            retry: vec![1],
            after: Some(Duration::from_secs(2)),
            rejected: vec![(0, "event 1 as stored is not a JSON object".into())],
        }
    );
}

#[tokio::test]
async fn validation_names_the_field() {
    let env = open_env();
    let url = "http://127.0.0.1:9200";
    let field = |config: Value, secrets: Secrets| {
        let env = env.clone();
        async move {
            let mut secrets = secrets;
            validate_config("elastic", &config, &mut secrets, &env)
                .await
                .unwrap_err()
                .field
        }
    };
    let mut ok = key();
    assert!(validate_config("elastic", &json!({"url": url}), &mut ok, &env)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(field(json!({}), key()).await, "config.url");
    assert_eq!(field(json!({"url": "http://u:p@127.0.0.1"}), key()).await, "config.url");
    assert_eq!(field(json!({"url": url, "index": "A"}), key()).await, "config.index");
    assert_eq!(
        field(json!({"url": url, "index": "a-{month}"}), key()).await,
        "config.index"
    );
    assert_eq!(
        field(json!({"url": url, "action": "delete"}), key()).await,
        "config.action"
    );
    assert_eq!(field(json!({"url": url, "auth": "token"}), key()).await, "config.auth");
    assert_eq!(field(json!({"url": url, "extra": 1}), key()).await, "config.extra");
    assert_eq!(field(json!({"url": url}), Secrets::new()).await, "secrets.api_key");
    assert_eq!(
        field(json!({"url": url, "auth": "basic", "username": "u"}), Secrets::new()).await,
        "secrets.password"
    );
    assert_eq!(
        field(json!({"url": url}), secrets(&[("signing_secret", "x")])).await,
        "secrets.signing_secret"
    );
    // The SSRF guard applies at save time.
    let mut s = key();
    let e = validate_config("elastic", &json!({"url": url}), &mut s, &common::guarded_env())
        .await
        .unwrap_err();
    assert_eq!(e.field, "config.url");

    // Formats: JSON documents only.
    let config = json!({"url": url});
    assert_eq!(
        build("elastic", &config, &key(), "cef", &env).err().unwrap().field,
        "format"
    );
    for format in ["json", "ocsf", "raw"] {
        assert!(build("elastic", &config, &key(), format, &env).is_ok(), "{format}");
    }
}
