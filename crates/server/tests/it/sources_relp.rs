//! The syslog source speaking RELP with a real rsyslog (`omrelp`, librelp) as the sender: every
//! message once, and a SIGKILL of auditrelay mid-stream loses nothing, because a message is
//! acknowledged only once its event is durable and rsyslog sends again what it holds no
//! acknowledgement for. (Plain TCP syslog cannot promise that: see `sources_syslog`.)

use std::collections::BTreeMap;
use std::time::Duration;

use auditrelay_testkit::peer_process::free_port;
use auditrelay_testkit::rsyslog::Rsyslog;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::TestServer;
use crate::delivery_support::wait_until;
use crate::sources_api::{create, wait_health};

const MESSAGES: usize = 20_000;

/// rsyslog takes numbered messages on `imtcp` and forwards them with `omrelp`, retrying forever
/// (rsyslog's default gives an action one try and then drops what it could not send).
fn rsyslog_relp(input: u16, relp_port: u16) -> Rsyslog {
    let conf = format!(
        r#"module(load="imtcp")
module(load="omrelp")
input(type="imtcp" address="127.0.0.1" port="{input}" ruleset="fwd")
ruleset(name="fwd" queue.type="LinkedList" queue.size="100000") {{
  action(type="omrelp" target="127.0.0.1" port="{relp_port}"
         template="RSYSLOG_SyslogProtocol23Format"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#
    );
    Rsyslog::start(&conf, &[input])
}

fn numbered(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..n {
        out.extend_from_slice(
            format!("<134>1 2026-06-01T10:01:00.000Z app01 seqapp - seq.test [n@32473 i=\"{k}\"] message {k}\n")
                .as_bytes(),
        );
    }
    out
}

/// How many events carry each message number.
fn counts(events: &[Value]) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let i: usize = e["metadata"]["syslog"]["structured_data"]["n@32473"]["i"]
            .as_str()
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a numbered message: {e}"));
        *out.entry(i).or_insert(0) += 1;
    }
    out
}

/// Reads the log until every message number is in it (fails after 120 s).
async fn wait_all(s: &TestServer) -> Vec<Value> {
    wait_until("every RELP message in the log", Duration::from_secs(120), || async {
        counts(&s.read_log("relp").await).len() >= MESSAGES
    })
    .await;
    s.read_log("relp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_over_relp_loses_nothing_across_a_sigkill() {
    let mut s = TestServer::spawn();
    s.create_tenant("relp").await;
    let relp_port = free_port();
    let (status, src) = create(
        &s,
        &json!({"name": "relp", "kind": "syslog", "tenant": "relp",
                "config": {"listen": format!("127.0.0.1:{relp_port}"), "relp": true}}),
    )
    .await;
    assert_eq!(status, 201, "{src}");
    let id = src["id"].as_str().unwrap().to_owned();

    let input = free_port();
    let _rsyslog = rsyslog_relp(input, relp_port); // killed on drop, at the end
    let mut feed = tokio::net::TcpStream::connect(("127.0.0.1", input)).await.unwrap();
    feed.write_all(&numbered(MESSAGES)).await.unwrap();
    feed.shutdown().await.unwrap();

    // SIGKILL once part of the stream is durable, then start again on the same data dir (the
    // source listens on the same port again).
    wait_health(&s, &id, "a part of the stream appended", |h| {
        h["appended"].as_u64().unwrap_or(0) >= 2_000
    })
    .await;
    s.kill_9().await;
    s.restart();

    let events = wait_all(&s).await;
    let counts = counts(&events);
    assert_eq!(counts.len(), MESSAGES, "every message arrived");
    assert_eq!(counts.keys().next_back(), Some(&(MESSAGES - 1)));
    let repeated = counts.values().filter(|c| **c > 1).count();
    // What was durable but whose acknowledgement the kill cut off is sent again: at most
    // rsyslog's RELP window (128 messages by default) may repeat.
    assert!(repeated <= 128, "{repeated} messages arrived more than once");
    assert!(events.iter().all(|e| e["type"] == "seq.test"), "nothing malformed");
    println!("relp: {MESSAGES} messages, none lost across a SIGKILL, {repeated} repeated");
}

#[tokio::test]
async fn a_client_that_is_not_relp_is_disconnected() {
    let s = TestServer::spawn();
    s.create_tenant("relp").await;
    let port = free_port();
    let (status, src) = create(
        &s,
        &json!({"name": "relp", "kind": "syslog", "tenant": "relp",
                "config": {"listen": format!("127.0.0.1:{port}"), "relp": true}}),
    )
    .await;
    assert_eq!(status, 201, "{src}");
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(b"<13>1 2026-06-01T10:00:00Z h a - - - plain syslog\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut c, &mut answer).await.unwrap();
    assert_eq!(answer, b"0 serverclose 0\n", "the server hints and closes");
    assert_eq!(s.read_log("relp").await.len(), 0, "nothing was appended");
}
