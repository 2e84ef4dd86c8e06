//! Self-audit: every administrative action becomes an event in the reserved `system` tenant,
//! with its actor, target and acting tenant, and never a secret value.

use crate::common;

use std::time::Duration;

use common::receiver::{Fault, Receiver};
use common::{assert_error, send, TestServer};
use serde_json::{json, Value};

async fn ok(_s: &TestServer, req: reqwest::RequestBuilder, status: u16) -> Value {
    if status == 204 {
        let resp = req.send().await.expect("sending");
        let got = resp.status().as_u16();
        assert_eq!(got, 204, "{}", resp.text().await.unwrap_or_default());
        return Value::Null;
    }
    let (got, body) = send(req).await;
    assert_eq!(got, status, "{body}");
    body
}

async fn dead_letters(s: &TestServer, sink: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = ok(
            s,
            s.http
                .get(s.url(&format!("/v1/sinks/{sink}/dead-letters")))
                .bearer_auth(&s.admin),
            200,
        )
        .await;
        let items = page["items"].as_array().expect("items");
        if items.len() >= n {
            return items.iter().map(|d| d["id"].as_str().expect("id").to_owned()).collect();
        }
        assert!(std::time::Instant::now() < deadline, "{n} dead letters did not appear");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_admin_action_is_an_event_in_the_system_tenant_without_secrets() {
    let mut s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    let r = Receiver::start().await;
    r.set_default(Some(Fault::status(400)));

    // The system tenant exists and is reserved.
    let refused = send(
        s.http
            .post(s.url("/v1/tenants"))
            .bearer_auth(&s.admin)
            .json(&json!({ "id": "system" })),
    )
    .await;
    assert_error(&refused, 409, "conflict");
    let forged = s
        .post_events_to(
            "/v1/events?tenant=system",
            &s.admin,
            r#"{"type":"tenant.created"}"#,
            "application/json",
        )
        .await;
    assert_error(&forged, 403, "forbidden");

    s.create_tenant("acme").await;
    let (key_id, manage) = s.create_key_full("acme", &["manage", "ingest", "read"]).await;
    let signing = "whsec_c2VsZi1hdWRpdC1maXJzdC1zZWNyZXQtdmFsdWU=";
    let rotated = "whsec_c2VsZi1hdWRpdC1zZWNvbmQtc2VjcmV0LXZhbHVl";
    let sink = ok(
        &s,
        s.http.post(s.url("/v1/sinks")).bearer_auth(&manage).json(&json!({
            "name": "audited", "kind": "webhook",
            "config": { "url": r.url() }, "secrets": { "signing_secret": signing },
            "start_at": "earliest", "batch": { "max_events": 1, "flush_interval_ms": 0 },
            "retry": { "max_attempts": 1, "initial_backoff_ms": 1, "max_backoff_ms": 1 },
        })),
        201,
    )
    .await;
    let sink = sink["id"].as_str().expect("sink id").to_owned();
    ok(
        &s,
        s.http
            .patch(s.url(&format!("/v1/sinks/{sink}")))
            .bearer_auth(&manage)
            .json(&json!({ "secrets": { "signing_secret": rotated }, "timeout_ms": 900 })),
        200,
    )
    .await;
    ok(
        &s,
        s.http
            .post(s.url(&format!("/v1/sinks/{sink}/pause")))
            .bearer_auth(&manage),
        200,
    )
    .await;
    ok(
        &s,
        s.http
            .post(s.url(&format!("/v1/sinks/{sink}/resume")))
            .bearer_auth(&manage),
        200,
    )
    .await;
    // Two refused batches → two dead letters.
    for i in 0..2 {
        assert_eq!(
            s.post_json(&manage, &json!({ "type": "x.y", "metadata": { "i": i } }))
                .await
                .0,
            202
        );
    }
    let dls = dead_letters(&s, &sink, 2).await;
    r.set_default(None);
    ok(
        &s,
        s.http
            .post(s.url(&format!("/v1/sinks/{sink}/dead-letters/{}/retry", dls[0])))
            .bearer_auth(&s.admin),
        200,
    )
    .await;
    ok(
        &s,
        s.http
            .delete(s.url(&format!("/v1/sinks/{sink}/dead-letters/{}", dls[1])))
            .bearer_auth(&manage),
        204,
    )
    .await;
    ok(
        &s,
        s.http
            .post(s.url(&format!("/v1/sinks/{sink}/replay")))
            .bearer_auth(&manage)
            .json(&json!({ "from": 1 })),
        202,
    )
    .await;
    ok(
        &s,
        s.http.delete(s.url(&format!("/v1/sinks/{sink}"))).bearer_auth(&manage),
        204,
    )
    .await;
    ok(
        &s,
        s.http
            .delete(s.url(&format!("/v1/tenants/acme/keys/{key_id}")))
            .bearer_auth(&s.admin),
        204,
    )
    .await;
    let old_admin = s.admin.clone();
    let rotation = ok(
        &s,
        s.http.post(s.url("/v1/admin/token/rotate")).bearer_auth(&s.admin),
        200,
    )
    .await;
    s.admin = rotation["token"].as_str().expect("token").to_owned();

    // A tenant key cannot read the system trail.
    let reader = s.create_key("acme", &["read"]).await;
    assert_error(&s.poll(&reader, "tenant=system").await, 404, "not_found");

    let trail = s.read_log("system").await;
    let operator = json!({ "type": "operator", "id": "operator" });
    let key_actor = json!({ "type": "api_key", "id": key_id, "name": format!("key {key_id} of tenant acme") });
    // (type, actor, target type, target id or "" when generated, acting tenant)
    let expected: Vec<(&str, &Value, &str, String, Value)> = vec![
        ("tenant.created", &operator, "tenant", "acme".into(), Value::Null),
        ("key.created", &operator, "api_key", key_id.clone(), Value::Null),
        ("sink.created", &key_actor, "sink", sink.clone(), json!("acme")),
        ("sink.updated", &key_actor, "sink", sink.clone(), json!("acme")),
        ("sink.paused", &key_actor, "sink", sink.clone(), json!("acme")),
        ("sink.resumed", &key_actor, "sink", sink.clone(), json!("acme")),
        ("dead_letter.retried", &operator, "sink", sink.clone(), Value::Null),
        ("dead_letter.deleted", &key_actor, "sink", sink.clone(), json!("acme")),
        ("sink.replayed", &key_actor, "sink", sink.clone(), json!("acme")),
        ("sink.deleted", &key_actor, "sink", sink.clone(), json!("acme")),
        ("key.revoked", &operator, "api_key", key_id.clone(), Value::Null),
        (
            "operator_token.rotated",
            &operator,
            "operator_token",
            "operator".into(),
            Value::Null,
        ),
        ("key.created", &operator, "api_key", String::new(), Value::Null),
    ];
    let types: Vec<&str> = trail.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
    let want: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(types, want, "the system trail:\n{trail:#?}");
    for (event, (ty, actor, target_type, target_id, acting)) in trail.iter().zip(&expected) {
        assert_eq!(event["tenant_id"], "system", "{event}");
        assert_eq!(&event["actor"], *actor, "{ty}: actor");
        assert_eq!(event["target"]["type"], *target_type, "{ty}: target");
        if !target_id.is_empty() {
            assert_eq!(event["target"]["id"], target_id.as_str(), "{ty}: target id");
        }
        assert_eq!(event["metadata"]["acting_tenant"], *acting, "{ty}: acting tenant");
        assert_eq!(event["source"]["service"], "auditrelay", "{ty}: source");
    }
    let by_type = |t: &str| trail.iter().find(|e| e["type"] == t).expect(t).clone();
    assert_eq!(
        by_type("sink.created")["metadata"]["secrets_set"],
        json!(["signing_secret"])
    );
    assert_eq!(by_type("sink.created")["target"]["name"], "audited");
    assert_eq!(
        by_type("sink.updated")["metadata"]["secrets_changed"],
        json!(["signing_secret"])
    );
    assert_eq!(by_type("sink.updated")["metadata"]["changed"], json!(["timeout_ms"]));
    assert_eq!(
        by_type("dead_letter.retried")["metadata"]["dead_letter_id"],
        dls[0].as_str()
    );
    assert_eq!(by_type("dead_letter.retried")["outcome"], "success");
    assert_eq!(
        by_type("dead_letter.deleted")["metadata"]["dead_letter_id"],
        dls[1].as_str()
    );
    assert_eq!(
        by_type("key.created")["metadata"]["scopes"],
        json!(["manage", "ingest", "read"])
    );
    assert_eq!(by_type("sink.replayed")["metadata"]["from_offset"], 1);

    // No secret value anywhere in the trail.
    let text = serde_json::to_string(&trail).expect("json");
    for secret in [
        signing,
        rotated,
        manage.as_str(),
        reader.as_str(),
        old_admin.as_str(),
        s.admin.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret value is in the system trail");
    }

    // The trail is durable: it is there after a restart.
    assert!(s.sigterm().await.success());
    s.restart();
    assert_eq!(s.read_log("system").await.len(), expected.len());
}

#[tokio::test]
async fn a_sink_naming_system_forwards_the_trail_and_sinks_over_all_tenants_do_not() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    let siem = Receiver::start().await;
    let customer = Receiver::start().await;
    let sink = |name: &str, url: String, tenants: Option<Value>| {
        let mut body = json!({
            "name": name, "kind": "webhook", "config": { "url": url }, "start_at": "earliest",
            "batch": { "max_events": 10, "flush_interval_ms": 0 },
        });
        if let Some(t) = tenants {
            body["tenants"] = t;
        }
        s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&body)
    };
    ok(&s, sink("siem", siem.url(), Some(json!(["system"]))), 201).await;
    ok(&s, sink("everything", customer.url(), None), 201).await;
    s.create_tenant("acme").await;
    assert_eq!(
        s.post_json(&s.admin, &json!({ "type": "app.event", "tenant_id": "acme" }))
            .await
            .0,
        202
    );

    // The SIEM sink gets both sink.created events and tenant.created.
    assert!(
        siem.wait_for(3, Duration::from_secs(10)).await,
        "the trail was not forwarded"
    );
    let types: Vec<Value> = siem.accepted_events().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(
        types,
        [json!("sink.created"), json!("sink.created"), json!("tenant.created")]
    );
    assert!(siem.accepted_events().iter().all(|e| e["tenant_id"] == "system"));

    // The sink over all tenants gets the customer's event and nothing of the system trail.
    assert!(
        customer.wait_for(1, Duration::from_secs(10)).await,
        "the customer event did not arrive"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = customer.accepted_events();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["tenant_id"], "acme");
}
