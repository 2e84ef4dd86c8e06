//! The SSRF guard end to end: a table of hostile sink URLs, each refused at save (400 naming the
//! field) by a default server, refused at send by the guarded client without a connection, and
//! accepted by a server that allows private networks; an allow-list CIDR admits its range only;
//! a redirect is never followed.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_sinks::{build, Batch, Outcome, Secrets, SinkEnv};
use common::receiver::{Fault, Receiver};
use common::{send, TestServer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A hostile URL and whether the address it means lies in 127.0.0.0/8 (for the allow-list).
struct Hostile {
    url: String,
    in_loopback_v4: bool,
}

/// At least 40 hostile URLs. `port` is a loopback listener that must never see a connection.
fn hostile_urls(port: u16) -> Vec<Hostile> {
    let lo = |u: &str| Hostile {
        url: u.replace("{P}", &port.to_string()),
        in_loopback_v4: true,
    };
    let other = |u: &str| Hostile {
        url: u.replace("{P}", &port.to_string()),
        in_loopback_v4: false,
    };
    vec![
        // Loopback, plainly and in the spellings the WHATWG URL parser (and inet_aton) accept.
        lo("http://127.0.0.1:{P}/hook"),
        lo("http://127.0.0.2:{P}/"),
        lo("http://127.1:{P}/"),
        lo("http://2130706433:{P}/"),
        lo("http://0x7f000001:{P}/"),
        lo("http://0x7f.1:{P}/"),
        lo("http://0177.0.0.1:{P}/"),
        lo("http://0177.1:{P}/"),
        lo("http://127.0.0.1.:{P}/"),
        lo("http://[::ffff:127.0.0.1]:{P}/"),
        lo("http://[::ffff:7f00:1]:{P}/"),
        lo("http://[0:0:0:0:0:ffff:127.0.0.1]:{P}/"),
        // A name that resolves to a loopback address (only 127.0.0.1 here; see /etc/hosts).
        lo("http://localhost:{P}/"),
        lo("https://LOCALHOST:{P}/"),
        other("http://localhost.:{P}/"),
        other("http://[::1]:{P}/"),
        other("http://[::127.0.0.1]:{P}/"),
        // Unspecified: connects to the local host on most stacks.
        other("http://0.0.0.0:{P}/"),
        other("http://0:{P}/"),
        other("http://[::]:{P}/"),
        // Private, CGNAT, link-local and the cloud metadata services.
        other("http://10.0.0.1/"),
        other("https://10.255.255.254:8443/in"),
        other("http://172.16.0.1/"),
        other("http://172.31.255.255/"),
        other("http://192.168.1.1/"),
        other("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        other("http://169.254.1.1/"),
        other("http://[fd00:ec2::254]/latest/meta-data/"),
        other("http://100.64.0.1/"),
        other("http://100.100.100.200/latest/meta-data/"),
        other("http://[::ffff:169.254.169.254]/"),
        other("http://[::ffff:a9fe:a9fe]/"),
        other("http://0xa9fea9fe/"),
        other("http://2852039166/"),
        // Multicast, broadcast, reserved, benchmarking, documentation, IETF assignments.
        other("http://224.0.0.1/"),
        other("http://239.255.255.250:1900/"),
        other("http://255.255.255.255/"),
        other("http://240.0.0.1/"),
        other("http://198.18.0.1/"),
        other("http://192.0.2.10/"),
        other("http://198.51.100.10/"),
        other("http://203.0.113.10/"),
        other("http://192.0.0.170/"),
        // IPv6 private, link-local, site-local, multicast, documentation.
        other("http://[fc00::1]/"),
        other("http://[fe80::1]/"),
        other("http://[fec0::1]/"),
        other("http://[ff02::1]/"),
        other("http://[2001:db8::1]/"),
        // IPv6 forms that carry a forbidden IPv4 address: NAT64, 6to4, SIIT, Teredo.
        other("http://[64:ff9b::7f00:1]:{P}/"),
        other("http://[64:ff9b::a9fe:a9fe]/"),
        other("http://[64:ff9b:1::a00:1]/"),
        other("http://[2002:7f00:1::1]:{P}/"),
        other("http://[2002:a9fe:a9fe::1]/"),
        other("http://[::ffff:0:a00:1]/"),
        other("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/"),
    ]
}

/// A loopback listener that counts connections: none may arrive from a guarded sink.
async fn tripwire() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, hits)
}

fn webhook_body(url: &str) -> Value {
    json!({
        "name": "ssrf", "kind": "webhook", "tenant": "acme",
        "config": { "url": url },
        "secrets": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
    })
}

async fn post_sink(s: &TestServer, body: &Value) -> (u16, Value) {
    send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(body)).await
}

fn event() -> StoredEvent {
    StoredEvent {
        tenant_id: "acme".into(),
        offset: 1,
        id: "evt_1".into(),
        event_type: "user.login".into(),
        body: json!({"id": "evt_1", "tenant_id": "acme", "type": "user.login", "severity": 5}).to_string(),
        chain: None,
    }
}

fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// One attempt by a sink built from `kind`/`config` under `env`, bounded so a connection
/// attempt to an unroutable address would show up as a timeout instead of a quick refusal.
async fn attempt(
    kind: &str,
    config: Value,
    secrets: &Secrets,
    format: &str,
    env: &SinkEnv,
) -> auditrelay_sinks::AttemptReport {
    let sink = build(kind, &config, secrets, format, env).unwrap_or_else(|e| panic!("{kind} {config}: {e}"));
    let events = [event()];
    let batch = Batch {
        sink_id: "snk_ssrf",
        tenant_id: "acme",
        batch_id: "b1",
        events: &events,
    };
    tokio::time::timeout(Duration::from_secs(5), sink.deliver(&batch))
        .await
        .unwrap_or_else(|_| panic!("{kind} {config}: the attempt did not end at once (did it try to connect?)"))
}

#[tokio::test]
async fn every_hostile_url_is_refused_at_save_naming_the_field() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let (port, hits) = tripwire().await;
    let table = hostile_urls(port);
    assert!(table.len() >= 40, "the table has {} URLs", table.len());
    for h in &table {
        let (status, body) = post_sink(&s, &webhook_body(&h.url)).await;
        assert_eq!(status, 400, "{} was accepted: {body}", h.url);
        assert_eq!(body["error"]["detail"]["field"], "config.url", "{}: {body}", h.url);
        let message = body["error"]["message"].as_str().unwrap_or_default().to_owned() + &body.to_string();
        assert!(
            message.contains("--allow-private-networks") || message.contains("does not resolve"),
            "{}: the refusal should say why: {body}",
            h.url
        );
    }

    // Every other field that names an endpoint is checked the same way.
    let ssrf_targets = [
        "http://169.254.169.254/",
        "http://localhost/",
        "http://[::ffff:10.0.0.1]/",
        "http://0x7f.1/",
    ];
    for target in ssrf_targets {
        let cases = [
            (
                json!({ "kind": "splunk_hec", "config": { "url": target }, "secrets": { "token": "t" } }),
                "config.url",
            ),
            (
                json!({ "kind": "elastic", "config": { "url": target, "auth": "api_key" }, "secrets": { "api_key": "k" } }),
                "config.url",
            ),
            (
                json!({ "kind": "datadog", "config": { "url": target }, "secrets": { "api_key": "k" } }),
                "config.url",
            ),
            (
                json!({ "kind": "generic_https", "config": { "url": target, "auth_header": "X-Key" }, "secrets": { "auth_value": "v" } }),
                "config.url",
            ),
            (
                json!({ "kind": "sentinel", "config": { "mode": "logs_ingestion", "endpoint": target, "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
                "stream": "Custom-AuditRelay_CL", "azure_tenant_id": "tid", "client_id": "cid" }, "secrets": { "client_secret": "x" } }),
                "config.endpoint",
            ),
            (
                json!({ "kind": "sentinel", "config": { "mode": "logs_ingestion", "endpoint": "https://93.184.216.34", "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
                "stream": "Custom-AuditRelay_CL", "authority_url": target, "azure_tenant_id": "tid", "client_id": "cid" }, "secrets": { "client_secret": "x" } }),
                "config.authority_url",
            ),
            (
                json!({ "kind": "sentinel", "config": { "mode": "data_collector", "url": target, "workspace_id": "00000000-0000-0000-0000-000000000000", "log_type": "AuditRelay" },
                "secrets": { "shared_key": "c2hhcmVk" } }),
                "config.url",
            ),
            (
                json!({ "kind": "s3", "config": { "bucket": "audit", "region": "us-east-1", "endpoint": target },
                "secrets": { "access_key_id": "AKID", "secret_access_key": "sak" } }),
                "config.endpoint",
            ),
            (
                json!({ "kind": "security_lake", "config": { "bucket": "audit-lake", "region": "us-east-1", "endpoint": target,
                "source_name": "auditrelay", "account_id": "123456789012" },
                "secrets": { "access_key_id": "AKID", "secret_access_key": "sak" } }),
                "config.endpoint",
            ),
        ];
        for (mut body, field) in cases {
            body["name"] = json!("ssrf");
            body["tenant"] = json!("acme");
            let (status, answer) = post_sink(&s, &body).await;
            assert_eq!(status, 400, "{body} was accepted: {answer}");
            assert_eq!(answer["error"]["detail"]["field"], field, "{body}: {answer}");
        }
    }
    for host in [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "169.254.169.254",
        "::ffff:10.0.0.1",
        "fd00::1",
    ] {
        let body = json!({ "name": "ssrf", "kind": "syslog", "tenant": "acme", "format": "cef",
            "config": { "host": host, "port": port } });
        let (status, answer) = post_sink(&s, &body).await;
        assert_eq!(status, 400, "syslog host {host} was accepted: {answer}");
        assert_eq!(answer["error"]["detail"]["field"], "config.host", "{host}: {answer}");
    }
    let (_, list) = send(s.http.get(s.url("/v1/sinks")).bearer_auth(&s.admin)).await;
    assert_eq!(list["items"], json!([]), "no refused sink was stored");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "saving never connects");
}

#[tokio::test]
async fn every_hostile_url_is_refused_at_send_without_a_connection() {
    let (port, hits) = tripwire().await;
    let guarded = SinkEnv::default();
    let signing = secrets(&[("signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    for h in hostile_urls(port) {
        let report = attempt("webhook", json!({ "url": h.url }), &signing, "json", &guarded).await;
        assert_ne!(report.outcome, Outcome::Delivered, "{}", h.url);
        let error = report.error.clone().unwrap_or_default();
        if h.url.contains("localhost.") {
            // Not a name the resolver knows: a plain resolution failure, still no connection.
            assert!(error.contains("localhost."), "{}: {report:?}", h.url);
        } else {
            assert_eq!(report.outcome, Outcome::Misconfigured, "{}: {report:?}", h.url);
            assert!(error.contains("--allow-private-networks"), "{}: {report:?}", h.url);
        }
        assert_eq!(report.status, None, "{}: nothing answered", h.url);
    }

    // The other kinds' send paths: S3 endpoint, the Sentinel token authority, syslog host.
    let s3 = attempt(
        "s3",
        json!({ "bucket": "audit", "region": "us-east-1", "endpoint": format!("http://127.0.0.1:{port}") }),
        &secrets(&[("access_key_id", "AKID"), ("secret_access_key", "sak")]),
        "json",
        &guarded,
    )
    .await;
    assert_eq!(s3.outcome, Outcome::Misconfigured, "{s3:?}");
    let sentinel = attempt(
        "sentinel",
        json!({ "mode": "logs_ingestion", "endpoint": format!("http://localhost:{port}"), "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
            "stream": "Custom-AuditRelay_CL", "authority_url": format!("http://[::ffff:127.0.0.1]:{port}"), "azure_tenant_id": "tid", "client_id": "cid" }),
        &secrets(&[("client_secret", "x")]),
        "json",
        &guarded,
    )
    .await;
    assert_eq!(sentinel.outcome, Outcome::Misconfigured, "{sentinel:?}");
    for host in ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "::ffff:127.0.0.1"] {
        let report = attempt(
            "syslog",
            json!({ "host": host, "port": port }),
            &Secrets::new(),
            "cef",
            &guarded,
        )
        .await;
        assert_eq!(report.outcome, Outcome::Misconfigured, "syslog {host}: {report:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a guarded sink connected to the tripwire"
    );
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    // The receiver is allow-listed (so the first request goes out); it redirects to the
    // tripwire, which is allow-listed too: even so the client must not follow.
    let (port, hits) = tripwire().await;
    let receiver = Receiver::start().await;
    let env = SinkEnv {
        allowed_private_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        ..SinkEnv::default()
    };
    let signing = secrets(&[("signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    for (code, location) in [
        (307, format!("http://127.0.0.1:{port}/")),
        (302, "http://169.254.169.254/latest/meta-data/".to_owned()),
        (301, format!("http://localhost:{port}/")),
        (308, format!("http://[::1]:{port}/")),
    ] {
        receiver.push([Fault::Status(code, vec![("location", location.clone())])]);
        let report = attempt("webhook", json!({ "url": receiver.url() }), &signing, "json", &env).await;
        assert_eq!(report.status, Some(code), "{report:?}");
        assert_ne!(report.outcome, Outcome::Delivered, "{code} → {location}: {report:?}");
    }
    assert_eq!(receiver.requests().len(), 4, "one request per attempt, none re-sent");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn with_private_networks_allowed_every_hostile_url_is_accepted_at_save() {
    let s = TestServer::spawn_with(&["--allow-private-networks"], &[]);
    s.create_tenant("acme").await;
    let (port, hits) = tripwire().await;
    for h in hostile_urls(port) {
        let (status, body) = post_sink(&s, &webhook_body(&h.url)).await;
        assert_eq!(status, 201, "{} was refused: {body}", h.url);
    }
    // And the open client really connects (to the loopback tripwire).
    let open = SinkEnv {
        allow_private_networks: true,
        ..SinkEnv::default()
    };
    let signing = secrets(&[("signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    // Every loopback spelling really means 127.0.0.x: opened up, each reaches the tripwire, so
    // the refusals above came from the policy and not from an unroutable address.
    let port_text = format!(":{port}/");
    for h in hostile_urls(port)
        .iter()
        // 127.0.0.2 is loopback too, but the tripwire listens on 127.0.0.1 only.
        .filter(|h| h.in_loopback_v4 && h.url.contains(&port_text) && !h.url.contains("127.0.0.2"))
    {
        let before = hits.load(Ordering::SeqCst);
        let report = attempt("webhook", json!({ "url": h.url }), &signing, "json", &open).await;
        assert!(matches!(report.outcome, Outcome::Retry { .. }), "{}: {report:?}", h.url);
        assert!(
            hits.load(Ordering::SeqCst) > before,
            "{} did not reach 127.0.0.1",
            h.url
        );
    }
}

#[tokio::test]
async fn an_allow_listed_cidr_admits_its_range_and_nothing_else() {
    let s = TestServer::spawn_with(&["--allow-private-cidrs", "127.0.0.0/8"], &[]);
    s.create_tenant("acme").await;
    let (port, _hits) = tripwire().await;
    let localhost_all_v4: bool = tokio::net::lookup_host(("localhost", 80))
        .await
        .unwrap()
        .all(|a| matches!(a.ip(), IpAddr::V4(v4) if v4.octets()[0] == 127));
    let (mut accepted, mut refused) = (0, 0);
    for h in hostile_urls(port) {
        let expect = h.in_loopback_v4 && (localhost_all_v4 || !h.url.to_lowercase().contains("localhost"));
        let (status, body) = post_sink(&s, &webhook_body(&h.url)).await;
        if expect {
            assert_eq!(status, 201, "{} is in 127.0.0.0/8: {body}", h.url);
            accepted += 1;
        } else {
            assert_eq!(status, 400, "{} is outside 127.0.0.0/8: {body}", h.url);
            assert_eq!(body["error"]["detail"]["field"], "config.url");
            refused += 1;
        }
    }
    assert!(
        accepted >= 10 && refused >= 30,
        "accepted {accepted}, refused {refused}"
    );

    // At send time too: a sink at an allow-listed receiver delivers.
    let receiver = Receiver::start().await;
    let (status, created) = post_sink(
        &s,
        &json!({ "name": "internal", "kind": "webhook", "tenant": "acme", "config": { "url": receiver.url() },
                 "start_at": "earliest", "batch": { "max_events": 10, "flush_interval_ms": 10 } }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = s.create_key("acme", &["ingest"]).await;
    let (status, _) = s.post_json(&key, &json!({ "type": "user.login" })).await;
    assert_eq!(status, 202);
    assert!(
        receiver.wait_for(1, Duration::from_secs(20)).await,
        "the allow-listed receiver got the event"
    );
}

#[tokio::test]
async fn a_malformed_allow_list_stops_the_server_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-private-cidrs",
            "10.0.0.0/8,0x7f.1/8",
        ])
        .env("AUDITRELAY_DATA_DIR", tempfile::tempdir().unwrap().path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0x7f.1/8") && stderr.contains("not a CIDR range"),
        "{stderr}"
    );
}
