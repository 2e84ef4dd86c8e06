#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The SIEM matrix: one stream of 1,000 mixed events fanned out to every SIEM sink at once, in
//! a mix of formats (HEC carries CEF, Datadog LEEF, Elastic and Sentinel OCSF, the webhook and
//! generic HTTPS JSON); each receiver ends with all 1,000, identified by event id.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::siem::Siem;
use common::{accepted_ids, send, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn one_stream_reaches_every_siem_sink_complete() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let siem = Siem::start().await;
    let base = siem.base();
    let sinks = [
        json!({ "kind": "webhook", "config": { "url": format!("{base}/hook") } }),
        json!({ "kind": "splunk_hec", "format": "cef", "config": { "url": base, "index": "audit" }, "secrets": { "token": "hec-token" } }),
        json!({ "kind": "elastic", "format": "ocsf", "config": { "url": base, "auth": "api_key" }, "secrets": { "api_key": "es-key" } }),
        json!({ "kind": "datadog", "format": "leef", "config": { "url": format!("{base}/api/v2/logs"), "service": "billing" }, "secrets": { "api_key": "dd-key" } }),
        json!({ "kind": "sentinel", "format": "ocsf", "config": { "mode": "logs_ingestion", "endpoint": base, "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
                 "stream": "Custom-AuditRelay_CL", "authority_url": base, "azure_tenant_id": "tid", "client_id": "cid" },
                "secrets": { "client_secret": "shh" } }),
        json!({ "kind": "generic_https", "config": { "url": format!("{base}/generic"), "auth_header": "X-Api-Key" },
                "secrets": { "auth_value": "generic-key" } }),
    ];
    for (i, mut body) in sinks.into_iter().enumerate() {
        body["name"] = json!(format!("matrix-{i}"));
        body["tenant"] = json!("acme");
        body["start_at"] = json!("earliest");
        body["batch"] = json!({ "max_events": 100, "flush_interval_ms": 50 });
        body["retry"] = json!({ "max_attempts": 20, "initial_backoff_ms": 10, "max_backoff_ms": 200 });
        let (status, answer) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&body)).await;
        assert_eq!(status, 201, "{}: {answer}", body["kind"]);
    }
    // 1,000 mixed events: logins, CRUD, hostile strings.
    let types = [
        "auth.login",
        "user.created",
        "decision.rejected",
        "record.updated",
        "file.deleted",
    ];
    let mut accepted = Vec::new();
    for chunk in 0..10 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                let action = ["login", "create", "reject", "update", "delete"][n % 5];
                let outcome = ["success", "failure"][n % 2];
                json!({
                    "type": types[n % types.len()],
                    "action": action,
                    "actor": { "id": format!("usr_{n}"), "name": "Zoë | \\ = \n\t^ <b>", "ip_address": "203.0.113.7" },
                    "target": { "type": "record", "id": format!("rec_{n}") },
                    "outcome": outcome,
                    "severity": n % 11,
                    "request_id": format!("req-{n}"),
                    "metadata": { "n": n },
                })
            })
            .collect();
        let (status, answer) = send(
            s.http
                .post(s.url("/v1/events?tenant=acme"))
                .bearer_auth(&s.admin)
                .json(&events),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        accepted.extend(accepted_ids(&answer).into_iter().map(|(id, _)| id));
    }
    let want: HashSet<String> = accepted.into_iter().collect();
    assert_eq!(want.len(), 1000);
    let intakes = [
        "webhook",
        "splunk_hec",
        "elastic",
        "datadog",
        "sentinel",
        "generic_https",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = intakes.iter().all(|i| siem.ids(i).is_superset(&want));
        if done {
            break;
        }
        if Instant::now() > deadline {
            let counts: Vec<String> = intakes
                .iter()
                .map(|i| format!("{i}: {}", siem.ids(i).intersection(&want).count()))
                .collect();
            panic!("not every SIEM got all 1,000 events: {}", counts.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
