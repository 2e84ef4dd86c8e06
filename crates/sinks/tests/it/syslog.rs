//! The `syslog` sink against a real syslog-ng (Debian's, installed by `scripts/test-peers`):
//! RFC 5424 messages, octet-counted over TCP and TLS, written by syslog-ng to a JSON-lines file
//! that the tests read back. A syslog-ng that cannot start FAILS the test.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::common;
use auditrelay_testkit::peer_process;
use auditrelay_testkit::syslog_ng;

use std::collections::BTreeMap;
use std::time::Duration;

use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};
use auditrelay_sinks::{build, kind_spec, validate_config, Outcome, Secrets, Sink};
use common::{batch, events, guarded_env, open_env};
use peer_process::free_port;
use serde_json::{json, Value};
use syslog_ng::{cert_dir, SyslogNg};

fn sd<'a>(line: &'a Value, key: &str) -> &'a str {
    line["_SDATA"]["audit@32473"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no SD param `{key}` in {line}"))
}

fn sink(config: Value, format: &str) -> std::sync::Arc<dyn Sink> {
    build("syslog", &config, &Secrets::new(), format, &open_env()).unwrap()
}

async fn deliver_all(sink: &dyn Sink, events: &[StoredEvent], per_batch: usize) {
    for (i, chunk) in events.chunks(per_batch).enumerate() {
        let id = format!("b{i}");
        let report = sink.deliver(&batch(&id, chunk)).await;
        assert_eq!(report.outcome, Outcome::Delivered, "batch {i}: {report:?}");
    }
}

/// id → how many times it arrived.
fn counts(lines: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(sd(line, "id").to_owned()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_tls_deliver_every_event_once_as_cef() {
    let sng = SyslogNg::start();
    let tcp_events = events("acme", 1..=1000);
    let tls_events = events("beta", 1001..=2000);

    let tcp = sink(
        json!({"host": "127.0.0.1", "port": sng.tcp_port, "app_name": "relay-test"}),
        "cef",
    );
    deliver_all(tcp.as_ref(), &tcp_events, 100).await;
    let ca = cert_dir().join("ca.pem");
    let tls = sink(
        json!({"host": "127.0.0.1", "port": sng.tls_port, "tls": true, "ca_file": ca, "facility": "auth"}),
        "cef",
    );
    deliver_all(tls.as_ref(), &tls_events, 100).await;

    let lines = sng.wait_for(2000);
    let counts = counts(&lines);
    let missing: Vec<&String> = tcp_events
        .iter()
        .chain(&tls_events)
        .map(|e| &e.id)
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let dups: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} missing, first: {:?}",
        missing.len(),
        missing.first()
    );
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    assert_eq!(lines.len(), 2000);

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    let by_id: BTreeMap<&str, &Value> = lines.iter().map(|l| (sd(l, "id"), l)).collect();
    for (events, source, tenant, app, facility) in [
        (&tcp_events, "s_tcp", "acme", "relay-test", "local0"),
        (&tls_events, "s_tls", "beta", "auditrelay", "auth"),
    ] {
        for ev in events.iter() {
            let line = by_id[ev.id.as_str()];
            assert_eq!(line["SOURCE"], source, "{line}");
            assert_eq!(line["MSGID"], "user.login", "{line}");
            assert_eq!(line["PROGRAM"], app, "{line}");
            assert_eq!(line["HOST"], hostname, "{line}");
            assert_eq!(line["FACILITY"], facility, "{line}");
            // Event severity 5 → notice.
            assert_eq!(line["PRIORITY"], "notice", "{line}");
            assert_eq!(sd(line, "tenant"), tenant);
            assert_eq!(sd(line, "offset"), ev.offset.to_string());
            let record = encode(Format::Cef, ev, &FormatOptions::default()).unwrap();
            assert_eq!(
                line["MESSAGE"].as_str().unwrap().as_bytes(),
                record.as_slice(),
                "CEF record changed in transit"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_arrive_intact() {
    let sng = SyslogNg::start();
    let evs = events("acme", 1..=50);
    let s = sink(json!({"host": "127.0.0.1", "port": sng.tcp_port}), "json");
    deliver_all(s.as_ref(), &evs, 25).await;
    let lines = sng.wait_for(50);
    assert_eq!(lines.len(), 50);
    for (line, ev) in lines.iter().zip(&evs) {
        assert_eq!(line["MESSAGE"].as_str().unwrap(), ev.to_json());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mid_stream_over_tcp_retries_then_loses_nothing() {
    outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mid_stream_over_tls_retries_then_loses_nothing() {
    outage(true).await;
}

/// Delivers 3 of 10 batches, crashes syslog-ng, expects `Retry`, restarts it on the same port
/// and delivers the rest (retrying until it listens): every event arrives, duplicates counted.
async fn outage(tls: bool) {
    let mut sng = SyslogNg::start();
    let evs = events("acme", 1..=1000);
    let chunks: Vec<&[StoredEvent]> = evs.chunks(100).collect();
    let config = if tls {
        json!({"host": "127.0.0.1", "port": sng.tls_port, "tls": true, "ca_file": cert_dir().join("ca.pem")})
    } else {
        json!({"host": "127.0.0.1", "port": sng.tcp_port})
    };
    let s = sink(config, "cef");

    deliver_all(s.as_ref(), &evs[..300], 100).await;
    // No application-level ack in syslog: wait until the receiver has written what we flushed,
    // then crash it (see docs/sinks/syslog.md, "Acknowledgement").
    assert_eq!(sng.wait_for(300).len(), 300);
    sng.kill();

    let report = s.deliver(&batch("b3", chunks[3])).await;
    assert!(
        matches!(report.outcome, Outcome::Retry { .. }),
        "delivery with the receiver down: {report:?}"
    );
    assert!(report.error.is_some());

    sng.spawn(); // same ports, same output file
    let mut attempts = 0;
    for (i, chunk) in chunks.iter().enumerate().skip(3) {
        loop {
            attempts += 1;
            assert!(attempts < 50, "no delivery after restart");
            let report = s.deliver(&batch(&format!("b{i}"), chunk)).await;
            match report.outcome {
                Outcome::Delivered => break,
                Outcome::Retry { .. } => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => panic!("batch {i}: {report:?}"),
            }
        }
    }
    let lines = sng.wait_for(1000);
    let counts = counts(&lines);
    let missing: Vec<&String> = evs
        .iter()
        .map(|e| &e.id)
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let dups = counts.values().filter(|n| **n > 1).count();
    assert!(
        missing.is_empty(),
        "{} lost, first: {:?}",
        missing.len(),
        missing.first()
    );
    eprintln!(
        "outage (tls: {tls}): {} events, {dups} duplicated, {} lines",
        evs.len(),
        lines.len()
    );
}

#[tokio::test]
async fn connection_refused_is_retry_and_private_hosts_are_guarded() {
    let port = free_port(); // nothing listens there
    let s = sink(json!({"host": "127.0.0.1", "port": port}), "json");
    let evs = events("acme", 1..=1);
    let report = s.deliver(&batch("b", &evs)).await;
    assert!(matches!(report.outcome, Outcome::Retry { .. }), "{report:?}");

    // Without --allow-private-networks: refused at save time, and Misconfigured at send time.
    let cfg = json!({"host": "127.0.0.1", "port": port});
    let err = validate_config("syslog", &cfg, &mut Secrets::new(), &guarded_env())
        .await
        .unwrap_err();
    assert_eq!(err.field, "config.host", "{err}");
    let guarded = build("syslog", &cfg, &Secrets::new(), "cef", &guarded_env()).unwrap();
    let report = guarded.deliver(&batch("b", &evs)).await;
    assert_eq!(report.outcome, Outcome::Misconfigured, "{report:?}");
}

#[tokio::test]
async fn config_errors_name_the_field() {
    let spec = kind_spec("syslog").unwrap();
    assert_eq!(spec.formats, ["cef", "leef", "json"]);
    assert!(spec.secrets.is_empty());
    let env = open_env();
    let cases = [
        (json!({}), "config.host"),
        (json!({"host": "tcp://x:514"}), "config.host"),
        (json!({"host": "x", "port": 0}), "config.port"),
        (json!({"host": "x", "port": 70000}), "config.port"),
        (json!({"host": "x", "tls": "yes"}), "config.tls"),
        (json!({"host": "x", "ca_file": "/tmp/ca.pem"}), "config.ca_file"),
        (
            json!({"host": "x", "tls": true, "ca_file": "/nonexistent/ca.pem"}),
            "config.ca_file",
        ),
        (json!({"host": "x", "app_name": "has space"}), "config.app_name"),
        (json!({"host": "x", "app_name": "a".repeat(49)}), "config.app_name"),
        (json!({"host": "x", "facility": 24}), "config.facility"),
        (json!({"host": "x", "facility": "local9"}), "config.facility"),
        (json!({"host": "x", "url": "http://x"}), "config.url"),
    ];
    for (cfg, field) in cases {
        let err = validate_config("syslog", &cfg, &mut Secrets::new(), &env)
            .await
            .unwrap_err();
        assert_eq!(err.field, field, "{cfg}: {err}");
    }
    let mut with_secret: Secrets = [("token".to_owned(), "x".to_owned())].into();
    let err = validate_config("syslog", &json!({"host": "x"}), &mut with_secret, &env)
        .await
        .unwrap_err();
    assert_eq!(err.field, "secrets.token");
    let ok = json!({"host": "127.0.0.1", "port": 6514, "tls": true, "ca_file": cert_dir().join("ca.pem"),
                    "app_name": "relay", "facility": "local4"});
    assert!(validate_config("syslog", &ok, &mut Secrets::new(), &env)
        .await
        .unwrap()
        .is_empty());
}
