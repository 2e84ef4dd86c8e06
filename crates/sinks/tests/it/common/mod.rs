//! Test helpers: a recording HTTP receiver on 127.0.0.1, the Python `standardwebhooks` verifier,
//! and sample batches. Each test binary uses a different subset.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::process::{Command, Stdio};

use auditrelay_core::StoredEvent;
use auditrelay_sinks::{Batch, Secrets, SinkEnv};
use serde_json::{json, Value};

pub use auditrelay_testkit::recording_receiver::{Receiver, Recorded};
pub use auditrelay_testkit::{peer_python, repo_root};

/// Loopback receivers need private networks allowed.
pub fn open_env() -> SinkEnv {
    SinkEnv {
        allow_private_networks: true,
        ..SinkEnv::default()
    }
}

pub fn guarded_env() -> SinkEnv {
    SinkEnv::default()
}

/// Verifies each `(secret, headers, body)` with the reference `standardwebhooks` library;
/// returns `ok` or `fail: <error>` per item.
pub fn python_verify(items: &[(String, Value, String)]) -> Vec<String> {
    let script = repo_root().join("tests/peers/verify_webhook.py");
    let mut child = Command::new(peer_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (secret, headers, body) in items {
            let line = json!({"secret": secret, "headers": headers, "body": body});
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "verify_webhook.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), items.len(), "one answer per input: {lines:?}");
    lines
}

pub fn events(tenant: &str, offsets: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
    offsets
        .map(|offset| {
            let id = format!("evt_{offset:04}");
            StoredEvent {
                tenant_id: tenant.to_owned(),
                offset,
                id: id.clone(),
                event_type: "user.login".to_owned(),
                body: json!({
                    "id": id,
                    "tenant_id": tenant,
                    "type": "user.login",
                    "occurred_at": "2026-06-01T10:13:20.000Z",
                    "actor": {"id": "usr_1", "name": "Zoë \"quoted\" <b>"},
                    "severity": 5
                })
                .to_string(),
                chain: None,
            }
        })
        .collect()
}

pub fn batch<'a>(batch_id: &'a str, events: &'a [StoredEvent]) -> Batch<'a> {
    Batch {
        sink_id: "snk_test",
        tenant_id: "acme",
        batch_id,
        events,
    }
}

pub fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
