#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! `GET /v1/sink-kinds`: every kind with its formats, secrets, `config` schema and defaults, for
//! any valid token; and what it says matches what the server does with a definition.

use crate::common;

use common::{assert_error, send, TestServer};
use serde_json::{json, Value};

const KINDS: [&str; 16] = [
    "webhook",
    "splunk_hec",
    "sentinel",
    "elastic",
    "datadog",
    "generic_https",
    "kafka",
    "s3",
    "syslog",
    "otlp",
    "cloudwatch_logs",
    "kinesis",
    "firehose",
    "eventbridge",
    "security_lake",
    "pubsub",
];

async fn kinds(s: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = send(s.http.get(s.url("/v1/sink-kinds")).bearer_auth(token)).await;
    assert_eq!(status, 200, "{body}");
    body["kinds"].as_array().unwrap().clone()
}

fn find<'a>(kinds: &'a [Value], kind: &str) -> &'a Value {
    kinds.iter().find(|k| k["kind"] == kind).unwrap()
}

#[tokio::test]
async fn every_kind_is_listed_with_its_schema_and_defaults() {
    let s = TestServer::spawn();
    let kinds = kinds(&s, &s.admin).await;
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, KINDS);
    for k in &kinds {
        let schema = &k["config_schema"];
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{k}");
        assert!(
            schema["type"] == "object" || schema["if"].is_object(),
            "{}: {schema}",
            k["kind"]
        );
        let formats = k["formats"].as_array().unwrap();
        assert!(!formats.is_empty());
        assert_eq!(k["default_format"], formats[0]);
        assert_eq!(k["defaults"]["format"], formats[0]);
        assert_eq!(k["defaults"]["start_at"], "now");
        assert_eq!(k["defaults"]["on_exhausted"], "dead_letter");
        for secret in k["secrets"].as_array().unwrap() {
            assert!(
                secret["name"].is_string() && secret["required"].is_boolean(),
                "{secret}"
            );
        }
    }
    let webhook = find(&kinds, "webhook");
    assert_eq!(webhook["formats"], json!(["json"]));
    assert_eq!(
        webhook["secrets"],
        json!([
            {"name": "signing_secret", "required": false, "note": "`whsec_…`; generated when absent and shown once"},
            {"name": "hash_key", "required": false, "note": "the HMAC key of `transform.hash`; generated (and shown once) when a transform hashes and none is given"}
        ])
    );
    let props: Vec<&String> = webhook["config_schema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(props, ["url", "headers", "rotation_grace_secs"]);
    assert_eq!(webhook["config_schema"]["required"], json!(["url"]));
    assert_eq!(webhook["config_schema"]["additionalProperties"], false);
    assert_eq!(
        find(&kinds, "splunk_hec")["secrets"],
        json!([{"name": "token", "required": true}, {"name": "hash_key", "required": false, "note": "the HMAC key of `transform.hash`; generated (and shown once) when a transform hashes and none is given"}])
    );
    assert_eq!(
        find(&kinds, "syslog")["secrets"],
        json!([{"name": "hash_key", "required": false, "note": "the HMAC key of `transform.hash`; generated (and shown once) when a transform hashes and none is given"}])
    );
    // Sentinel's two modes: the schema picks the keys by `mode`.
    let sentinel = &find(&kinds, "sentinel")["config_schema"];
    assert_eq!(sentinel["if"]["properties"]["mode"]["const"], "data_collector");
    assert!(sentinel["$defs"].as_object().unwrap().len() >= 2, "{sentinel}");
}

#[tokio::test]
async fn needs_a_valid_token_of_any_kind() {
    let s = TestServer::spawn();
    let got = send(s.http.get(s.url("/v1/sink-kinds"))).await;
    assert_error(&got, 401, "unauthorized");
    let got = send(s.http.get(s.url("/v1/sink-kinds")).bearer_auth("not-a-token")).await;
    assert_error(&got, 401, "unauthorized");
    // A tenant key with no sink scope at all reads the same document as the operator.
    s.create_tenant("acme").await;
    let ingest_only = s.create_key("acme", &["ingest"]).await;
    assert_eq!(kinds(&s, &ingest_only).await, kinds(&s, &s.admin).await);
}

#[tokio::test]
async fn the_server_does_what_the_document_says() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let kinds = kinds(&s, &s.admin).await;
    let webhook = find(&kinds, "webhook");
    // A definition that leaves everything out gets the listed defaults.
    let (status, created) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&json!({
        "name": "d", "kind": "webhook", "tenant": "acme", "config": {"url": "http://127.0.0.1:9/h"}
    })))
    .await;
    assert_eq!(status, 201, "{created}");
    let defaults = &webhook["defaults"];
    for field in [
        "format",
        "event_types",
        "batch",
        "retry",
        "timeout_ms",
        "max_in_flight",
        "on_exhausted",
        "breaker",
    ] {
        assert_eq!(created[field], defaults[field], "{field}: {created}");
    }
    // A key the schema does not list is refused, named as the schema would name it.
    let got = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&json!({
        "name": "x", "kind": "webhook", "tenant": "acme",
        "config": {"url": "http://127.0.0.1:9/h", "rotation_grace": 5}
    })))
    .await;
    assert_error(&got, 400, "invalid_request");
    assert_eq!(got.1["error"]["detail"]["field"], "config.rotation_grace");
    // A value outside the schema's range is refused on the same field.
    let max = webhook["config_schema"]["properties"]["rotation_grace_secs"]["maximum"]
        .as_u64()
        .unwrap();
    let got = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&json!({
        "name": "x", "kind": "webhook", "tenant": "acme",
        "config": {"url": "http://127.0.0.1:9/h", "rotation_grace_secs": max + 1}
    })))
    .await;
    assert_error(&got, 400, "invalid_request");
    assert_eq!(got.1["error"]["detail"]["field"], "config.rotation_grace_secs");
}
