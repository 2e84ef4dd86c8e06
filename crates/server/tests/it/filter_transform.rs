//! Per-sink filter and transform (api.md "Per-sink filter and transform"), end to end: the real
//! binary, a webhook sink to a loopback receiver. What arrives is checked against facts the
//! test computes itself: which events the condition selects, and HMAC-SHA256 of each hashed
//! value under the key the server handed out once (the `hmac` crate, not the server's code).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::receiver::Receiver;
use crate::common::{assert_error, send, TestServer};
use crate::delivery_support::{get, health, post, server, wait_until, webhook};

fn hmac_hex(key: &str, value: &Value) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(serde_jcs::to_string(value).unwrap().as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

async fn ingest(s: &TestServer, tenant: &str, events: Value) -> Vec<u64> {
    let (status, answer) = send(
        s.http
            .post(s.url(&format!("/v1/events?tenant={tenant}")))
            .bearer_auth(&s.admin)
            .json(&events),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    crate::common::accepted_ids(&answer)
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

fn events() -> Value {
    json!([
        {"type": "user.login", "severity": 9, "actor": {"id": "u1", "email": "a@x.io", "ip_address": "10.0.0.1"}, "metadata": {"domain": "finance"}},
        {"type": "user.login", "severity": 2, "actor": {"id": "u2", "email": "b@x.io"}, "metadata": {"domain": "finance"}},
        {"type": "user.login", "severity": 8, "actor": {"id": "u1", "email": "a@x.io"}, "metadata": {"domain": "hr"}},
        {"type": "user.login", "severity": 9, "actor": {"id": "u3"}, "metadata": {"domain": "sales"}},
        {"type": "user.login", "severity": 9, "actor": {"id": "u4"}},
        {"type": "user.login", "severity": 7, "actor": {"id": "u5", "email": "c@x.io"}, "metadata": {"domain": "hr"}},
    ])
}

#[tokio::test]
async fn only_matching_events_arrive_transformed_and_the_cursor_passes_the_rest() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    let sink = webhook(
        &s,
        "acme",
        &r,
        json!({
            "filter": "event.severity >= 7 && event.metadata.domain in [\"finance\", \"hr\"]",
            "transform": {"drop": ["actor.email"], "redact": ["actor.ip_address"], "hash": ["actor.id"],
                          "rename": {"metadata.domain": "metadata.folder"}, "set": {"metadata.env": "prod"}},
        }),
    )
    .await;
    let id = sink["id"].as_str().unwrap();
    assert_eq!(
        sink["filter"],
        json!("event.severity >= 7 && event.metadata.domain in [\"finance\", \"hr\"]")
    );
    let key = sink["generated_secrets"]["hash_key"]
        .as_str()
        .expect("a generated hash_key, shown once")
        .to_owned();
    assert!(sink["secrets_set"].as_array().unwrap().contains(&json!("hash_key")));
    let (_, again) = s.get_as_operator(&format!("/v1/sinks/{id}")).await;
    assert!(
        again.get("generated_secrets").is_none() && !again.to_string().contains(&key),
        "the key is write-only"
    );

    let offsets = ingest(&s, "acme", events()).await;
    // Offsets 1, 3 and 6 match; 4 is the wrong domain, 2 too low, 5 has no domain (an error).
    assert!(
        r.wait_for(3, Duration::from_secs(10)).await,
        "three matching events arrive"
    );
    wait_until("the cursor passes every event", Duration::from_secs(10), || async {
        health(&s, id).await["tenants"][0]["cursor"] == json!(offsets[5])
    })
    .await;
    let got = r.accepted_events();
    let got_offsets: Vec<u64> = got.iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    assert_eq!(got_offsets, [offsets[0], offsets[2], offsets[5]]);
    for e in &got {
        assert_eq!(e["transformed"], json!(true), "{e}");
        assert!(e["actor"].get("email").is_none(), "dropped: {e}");
        assert!(
            e["metadata"].get("domain").is_none() && e["metadata"]["folder"].is_string(),
            "{e}"
        );
        assert_eq!(e["metadata"]["env"], json!("prod"));
        assert!(
            e["chain"].as_str().is_some_and(|c| c.len() == 64),
            "the log's chain value stays: {e}"
        );
    }
    assert_eq!(got[0]["actor"]["ip_address"], json!("[REDACTED]"));
    // The same value hashes the same, under the key handed out, so a SIEM can still correlate.
    assert_eq!(got[0]["actor"]["id"], json!(hmac_hex(&key, &json!("u1"))));
    assert_eq!(got[1]["actor"]["id"], got[0]["actor"]["id"]);
    assert_eq!(got[2]["actor"]["id"], json!(hmac_hex(&key, &json!("u5"))));
    let h = health(&s, id).await;
    assert_eq!(
        (h["filtered_events"].as_u64(), h["filter_errors"].as_u64()),
        (Some(2), Some(1)),
        "{h}"
    );
    // The stored log is untouched.
    let log = s.read_log("acme").await;
    assert_eq!(log[0]["actor"]["email"], json!("a@x.io"));
    assert!(log[0].get("transformed").is_none());

    // Changing the filter applies to what comes next; `null` removes it.
    let (status, patched) = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({"filter": null, "transform": null})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert!(
        patched.get("filter").is_none() && patched.get("transform").is_none(),
        "{patched}"
    );
    ingest(
        &s,
        "acme",
        json!([{"type": "user.login", "severity": 1, "actor": {"id": "u9", "email": "z@x.io"}}]),
    )
    .await;
    assert!(r.wait_for(4, Duration::from_secs(10)).await);
    let last = r.accepted_events().pop().unwrap();
    assert_eq!(last["actor"]["email"], json!("z@x.io"));
    assert!(last.get("transformed").is_none());
}

#[tokio::test]
async fn bad_filters_and_transforms_are_refused_with_the_field_and_position() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let base = json!({"name": "x", "kind": "webhook", "tenant": "acme", "config": {"url": "http://127.0.0.1:9/hook"}});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let create = |body: Value| {
        let s = &s;
        async move { send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&body)).await }
    };
    let got = create(with(json!({"filter": "event.severity >="}))).await;
    assert_error(&got, 400, "invalid_request");
    assert_eq!(got.1["error"]["detail"]["field"], "filter", "{}", got.1);
    assert!(
        got.1["error"]["detail"]["line"].is_u64() && got.1["error"]["detail"]["column"].is_u64(),
        "{}",
        got.1
    );
    let got = create(with(json!({"filter": "event.severity + 1"}))).await;
    assert_eq!(
        (got.0, got.1["error"]["detail"]["field"].clone()),
        (400, json!("filter")),
        "not a condition: {}",
        got.1
    );
    for (transform, field) in [
        (json!({"scramble": ["a"]}), "transform.scramble"),
        (json!({"drop": "actor.email"}), "transform.drop"),
        (json!({"redact": ["offset"]}), "transform.redact[0]"),
        (json!({"hash": ["a..b"]}), "transform.hash[0]"),
    ] {
        let got = create(with(json!({ "transform": transform }))).await;
        assert_error(&got, 400, "invalid_request");
        assert_eq!(got.1["error"]["detail"]["field"], field, "{transform}: {}", got.1);
    }
    // A PATCH is checked the same way, and nothing is changed by a refused one.
    let (status, sink) = create(with(json!({"filter": "event.severity > 1"}))).await;
    assert_eq!(status, 201, "{sink}");
    let id = sink["id"].as_str().unwrap();
    let got = send(
        s.http
            .patch(s.url(&format!("/v1/sinks/{id}")))
            .bearer_auth(&s.admin)
            .json(&json!({"filter": "((" })),
    )
    .await;
    assert_eq!(got.1["error"]["detail"]["field"], "filter", "{}", got.1);
    assert_eq!(
        get(&s, &format!("/v1/sinks/{id}")).await["filter"],
        "event.severity > 1"
    );
}

#[tokio::test]
async fn preview_shows_what_a_definition_would_send_and_stores_nothing() {
    let s = server();
    s.create_tenant("acme").await;
    let offsets = ingest(&s, "acme", events()).await;
    let sink = json!({"name": "try", "kind": "webhook", "tenant": "acme", "config": {"url": "https://siem.example/x"},
                      "filter": "event.severity >= 8 && event.metadata.domain != \"sales\"", "transform": {"redact": ["actor.email"]}});
    // Without events: the tenant's last ten, with their offsets.
    let (status, answer) = post(&s, "/v1/sinks/preview", json!({ "sink": sink })).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["offset"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        offsets
    );
    let matched: Vec<bool> = results.iter().map(|r| r["matched"].as_bool().unwrap()).collect();
    assert_eq!(matched, [true, false, true, false, false, false]);
    let record: Value = serde_json::from_str(results[0]["record"].as_str().unwrap()).unwrap();
    assert_eq!(
        (record["actor"]["email"].clone(), record["transformed"].clone()),
        (json!("[REDACTED]"), json!(true))
    );
    assert!(results[1]["record"].is_null());
    assert!(results[4]["filter_error"].is_string(), "{}", results[4]);
    // Given events, in another format: the record is what that format renders.
    let mut cef = sink.clone();
    cef["kind"] = json!("syslog");
    cef["format"] = json!("cef");
    cef["config"] = json!({"host": "siem.example", "port": 6514});
    let (status, answer) = post(
        &s,
        "/v1/sinks/preview",
        json!({"sink": cef, "events": [{"type": "user.login", "severity": 9, "actor": {"id": "u1", "email": "a@x.io"}, "metadata": {"domain": "hr"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let only = &answer["results"][0];
    assert_eq!(
        (only["offset"].clone(), only["matched"].clone()),
        (Value::Null, json!(true))
    );
    assert!(only["record"].as_str().unwrap().starts_with("CEF:0|"), "{only}");
    // Nothing was stored or created.
    assert_eq!(s.read_log("acme").await.len(), offsets.len());
    assert_eq!(get(&s, "/v1/sinks").await["items"].as_array().unwrap().len(), 0);
    // A bad definition names the field under `sink`.
    let mut bad = sink.clone();
    bad["filter"] = json!("event.severity >=");
    let got = post(&s, "/v1/sinks/preview", json!({ "sink": bad })).await;
    assert_eq!(
        (got.0, got.1["error"]["detail"]["field"].clone()),
        (400, json!("sink.filter")),
        "{}",
        got.1
    );
    // Another tenant's key cannot preview this tenant's log.
    s.create_tenant("other").await;
    let key = s.create_key("other", &["manage"]).await;
    let got = send(
        s.http
            .post(s.url("/v1/sinks/preview"))
            .bearer_auth(&key)
            .json(&json!({ "sink": sink })),
    )
    .await;
    assert_error(&got, 404, "not_found");
}

/// A transformed copy still proves that nothing is missing: `auditrelay verify` checks every
/// event's place in the chain and names the ones whose content the transform changed.
#[tokio::test]
async fn verify_proves_a_transformed_copy_complete_and_names_what_it_could_not_check() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    webhook(&s, "acme", &r, json!({"transform": {"redact": ["actor.email"]}})).await;
    let offsets = ingest(&s, "acme", events()).await;
    assert!(r.wait_for(offsets.len(), Duration::from_secs(10)).await);
    let copy: Vec<Value> = r.accepted_events();
    let changed: Vec<u64> = copy
        .iter()
        .filter(|e| e["transformed"] == json!(true))
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        changed,
        [offsets[0], offsets[1], offsets[2], offsets[5]],
        "the events with an email"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.ndjson");
    let lines: Vec<String> = copy.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let verify = |path: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
            .args(["verify", "--file", path.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = verify(&file);
    assert!(ok, "{out}");
    assert!(
        out.contains("intact: 6 events") && out.contains("content not checked (offsets 1, 2, 3, 6)"),
        "{out}"
    );
    // Without one event the copy is incomplete, transformed or not.
    std::fs::write(&file, [&lines[..1], &lines[2..]].concat().join("\n")).unwrap();
    let (ok, out) = verify(&file);
    assert!(!ok && out.contains("offset 2 is missing"), "{out}");
}
