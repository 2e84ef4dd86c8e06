#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Sink management over HTTP: write-only secrets, encryption at rest, tenant isolation, scopes,
//! the SSRF guard at save time, and clear errors for bad definitions.

use crate::common;

use common::{assert_error, send, TestServer};
use serde_json::{json, Value};

fn hook(url: &str) -> Value {
    json!({ "name": "soc", "kind": "webhook", "config": { "url": url } })
}

async fn post_sink(s: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    send(s.http.post(s.url("/v1/sinks")).bearer_auth(token).json(body)).await
}

#[tokio::test]
async fn secrets_are_write_only_generated_once_and_encrypted_at_rest() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let mut body = hook("http://127.0.0.1:9/hook");
    body["tenant"] = json!("acme");
    let (status, created) = post_sink(&s, &s.admin, &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("snk_"));
    let secret = created["generated_secrets"]["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["secrets_set"], json!(["signing_secret"]));
    assert!(created.get("secrets").is_none());
    // Defaults are explicit in the answer.
    assert_eq!(
        created["retry"],
        json!({ "max_attempts": 8, "initial_backoff_ms": 1000, "max_backoff_ms": 60000 })
    );
    assert_eq!(created["timeout_ms"], 10000);
    assert_eq!(created["on_exhausted"], "dead_letter");
    assert_eq!(created["tenant"], "acme");

    let (status, got) = send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(&s.admin)).await;
    assert_eq!(status, 200);
    assert!(!got.to_string().contains(&secret), "GET leaked the secret");
    assert!(got.get("generated_secrets").is_none());
    let (_, list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&s.admin)).await;
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // PATCH without secrets keeps the stored one; PATCH with a new one rotates.
    let (status, patched) = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({ "name": "renamed", "config": { "headers": { "x-team": "soc" } } })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["config"]["url"], "http://127.0.0.1:9/hook");
    assert_eq!(patched["secrets_set"], json!(["signing_secret"]));
    assert!(patched.get("secret_rotation").is_none());
    let (status, rotated) = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({ "secrets": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } })),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert!(
        rotated["secret_rotation"]["signing_secret"]["previous_valid_until"].is_string(),
        "{rotated}"
    );

    // Neither secret appears in the database file or anywhere in the data dir.
    for entry in std::fs::read_dir(s.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [secret.as_bytes(), b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".as_slice()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "secret in {}",
                    path.display()
                );
            }
        }
    }
    assert!(!s.log().contains(&secret), "secret in the server log");

    let resp = s
        .http
        .delete(s.url(&format!("/v1/sinks/{id}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(&s.admin)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tenant_keys_see_only_their_own_sinks_and_need_manage() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    s.create_tenant("globex").await;
    let acme = s.create_key("acme", &["manage"]).await;
    let globex = s.create_key("globex", &["manage"]).await;
    let ingest_only = s.create_key("acme", &["ingest", "read"]).await;

    let (status, sink) = post_sink(&s, &acme, &hook("http://127.0.0.1:9/a")).await;
    assert_eq!(status, 201, "{sink}");
    assert_eq!(sink["tenant"], "acme", "a tenant key's sink belongs to its tenant");
    let id = sink["id"].as_str().unwrap();

    // Another tenant: 404 everywhere, exactly like a missing sink.
    for (method, path) in [
        ("GET", format!("/v1/sinks/{id}")),
        ("GET", format!("/v1/sinks/{id}/health")),
        ("GET", format!("/v1/sinks/{id}/dead-letters")),
        ("POST", format!("/v1/sinks/{id}/pause")),
        ("POST", format!("/v1/sinks/{id}/test")),
        ("DELETE", format!("/v1/sinks/{id}")),
    ] {
        let req = s
            .http
            .request(method.parse().unwrap(), s.url(&path))
            .bearer_auth(&globex);
        let got = send(req).await;
        assert_error(&got, 404, "not_found");
        let missing = send(
            s.http
                .request(method.parse().unwrap(), s.url(&path.replace(id, "snk_missing")))
                .bearer_auth(&globex),
        )
        .await;
        assert_eq!(
            got.1["error"]["message"].as_str().unwrap().replace(id, "X"),
            missing.1["error"]["message"]
                .as_str()
                .unwrap()
                .replace("snk_missing", "X")
        );
    }
    let (_, list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&globex)).await;
    assert_eq!(list["items"], json!([]));
    // Naming another tenant when creating: 404.
    let mut body = hook("http://127.0.0.1:9/a");
    body["tenant"] = json!("acme");
    assert_error(&post_sink(&s, &globex, &body).await, 404, "not_found");
    // Without manage: 403.
    assert_error(
        &post_sink(&s, &ingest_only, &hook("http://127.0.0.1:9/a")).await,
        403,
        "forbidden",
    );
    let got = send(s.http.get(s.url(&format!("/v1/sinks/{id}"))).bearer_auth(&ingest_only)).await;
    assert_error(&got, 403, "forbidden");
    // No token: 401.
    let got = send(s.http.get(s.url("/v1/sinks"))).await;
    assert_error(&got, 401, "unauthorized");
    // The owner sees it.
    let (_, list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&acme)).await;
    assert_eq!(list["items"][0]["id"], id);
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/x",
        "http://192.168.1.1/x",
    ] {
        let mut body = hook(url);
        body["tenant"] = json!("acme");
        let got = post_sink(&s, &s.admin, &body).await;
        assert_error(&got, 400, "invalid_request");
        assert_eq!(got.1["error"]["detail"]["field"], "config.url", "{url}: {}", got.1);
    }
}

#[tokio::test]
async fn bad_definitions_get_errors_that_name_the_field() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let cases = [
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme" }),
            "config.url",
        ),
        (
            json!({ "name": "x", "kind": "carrier-pigeon", "tenant": "acme" }),
            "kind",
        ),
        (json!({ "name": "x", "tenant": "acme", "config": {} }), "kind"),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "ftp://x/y" } }),
            "config.url",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/" }, "batch": { "max_events": 0 } }),
            "batch.max_events",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/" }, "format": "cef" }),
            "format",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/" }, "secrets": { "signing_secret": "nope" } }),
            "secrets.signing_secret",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/" }, "evnet_types": [] }),
            "evnet_types",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/" }, "event_types": ["Not A Glob"] }),
            "event_types[0]",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "tenant": "acme", "config": { "url": "http://127.0.0.1/", "colour": "red" } }),
            "config.colour",
        ),
    ];
    for (body, field) in cases {
        let got = post_sink(&s, &s.admin, &body).await;
        assert_error(&got, 400, "invalid_request");
        assert_eq!(got.1["error"]["detail"]["field"], field, "{body} → {}", got.1);
    }
    // An unknown tenant is a 404; a non-JSON body a 400 with its position.
    let got = post_sink(
        &s,
        &s.admin,
        &json!({ "name": "x", "kind": "webhook", "tenant": "nope", "config": { "url": "http://127.0.0.1/" } }),
    )
    .await;
    assert_error(&got, 404, "not_found");
    let got = send(
        s.http
            .post(s.url("/v1/sinks"))
            .bearer_auth(&s.admin)
            .header("content-type", "application/json")
            .body("{\"name\": "),
    )
    .await;
    assert_error(&got, 400, "invalid_json");
    // Nothing was created by any of these.
    let (_, list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&s.admin)).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn every_siem_kind_names_its_missing_or_bad_fields() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let cases = [
        (
            json!({ "kind": "splunk_hec", "config": { "url": "http://127.0.0.1:8088" } }),
            "secrets.token",
        ),
        (
            json!({ "kind": "splunk_hec", "config": { "url": "http://127.0.0.1:8088", "indx": "a" }, "secrets": { "token": "t" } }),
            "config.indx",
        ),
        (
            json!({ "kind": "splunk_hec", "format": "ocsf", "config": { "url": "http://127.0.0.1:8088", "leef_delimiter": "ab" }, "secrets": { "token": "t" } }),
            "config.leef_delimiter",
        ),
        (
            json!({ "kind": "datadog", "config": { "url": "http://127.0.0.1:1/api/v2/logs" } }),
            "secrets.api_key",
        ),
        (
            json!({ "kind": "elastic", "config": { "url": "http://127.0.0.1:9200", "auth": "api_key" } }),
            "secrets.api_key",
        ),
        (
            json!({ "kind": "elastic", "format": "cef", "config": { "url": "http://127.0.0.1:9200" } }),
            "format",
        ),
        (
            json!({ "kind": "sentinel", "config": { "mode": "logs_ingestion" }, "secrets": { "client_secret": "x" } }),
            "config.endpoint",
        ),
        (
            json!({ "kind": "generic_https", "config": { "url": "http://127.0.0.1:1/x", "auth_header": "X-Key" } }),
            "secrets.auth_value",
        ),
        (json!({ "kind": "kafka", "config": {} }), "config.brokers"),
        (
            json!({ "kind": "kafka", "config": { "brokers": ["127.0.0.1:9092"], "topic": "t", "sasl_mechanism": "PLAIN", "sasl_username": "u" } }),
            "secrets.sasl_password",
        ),
    ];
    for (mut body, field) in cases {
        body["name"] = json!("x");
        body["tenant"] = json!("acme");
        let got = post_sink(&s, &s.admin, &body).await;
        assert_error(&got, 400, "invalid_request");
        assert_eq!(got.1["error"]["detail"]["field"], field, "{body} → {}", got.1);
    }
    // A good one of each kind is accepted, and its secrets come back as names only.
    let good = [
        (
            json!({ "kind": "splunk_hec", "format": "cef", "config": { "url": "http://127.0.0.1:8088" }, "secrets": { "token": "hec-secret-value" } }),
            "hec-secret-value",
        ),
        (
            json!({ "kind": "datadog", "config": { "site": "datadoghq.eu" }, "secrets": { "api_key": "dd-secret-value" } }),
            "dd-secret-value",
        ),
        (
            json!({ "kind": "elastic", "format": "ocsf", "config": { "url": "http://127.0.0.1:9200", "auth": "api_key" }, "secrets": { "api_key": "es-secret-value" } }),
            "es-secret-value",
        ),
        (
            json!({ "kind": "generic_https", "format": "leef", "config": { "url": "http://127.0.0.1:1/x", "auth_header": "X-Key" }, "secrets": { "auth_value": "gen-secret-value" } }),
            "gen-secret-value",
        ),
    ];
    for (mut body, secret) in good {
        body["name"] = json!("ok");
        body["tenant"] = json!("acme");
        let (status, created) = post_sink(&s, &s.admin, &body).await;
        assert_eq!(status, 201, "{body} → {created}");
        assert!(!created.to_string().contains(secret), "{created}");
        assert_eq!(created["secrets_set"].as_array().unwrap().len(), 1, "{created}");
    }
}
