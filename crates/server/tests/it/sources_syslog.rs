//! The `syslog` source with real senders: syslog-ng forwarding RFC 5424 (octet counting) and
//! RFC 3164 (newline framing) over TCP and RFC 5424 over TLS, and loggen (syslog-ng's load
//! generator) for volume. Every message becomes exactly one event; headers, structured data and
//! CEF/LEEF payloads are mapped; what cannot become an event is kept as `syslog.malformed`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditrelay_testkit::peer_process::{free_port, kill, wait_listening};
use auditrelay_testkit::syslog_ng::{cert_dir, syslog_ng_binary};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::TestServer;
use crate::sources_api::{create, wait_health};

/// syslog-ng as a *sender*: it takes messages on its own inputs and forwards them to
/// auditrelay's sources the way it forwards to any SIEM. Killed on drop.
struct Forwarder {
    dir: tempfile::TempDir,
    in_5424: u16,
    in_3164: u16,
    child: Option<Child>,
}

impl Forwarder {
    fn start(plain_port: u16, tls_port: u16) -> Forwarder {
        let dir = tempfile::tempdir().unwrap();
        let (in_5424, in_3164) = (free_port(), free_port());
        let ca = cert_dir().join("ca.pem");
        let conf = format!(
            r#"@version: 3.38
options {{ stats-freq(0); keep-hostname(yes); keep-timestamp(yes); }};
source s_5424 {{ syslog(ip(127.0.0.1) port({in_5424}) transport("tcp")); }};
source s_3164 {{ network(ip(127.0.0.1) port({in_3164}) transport("tcp")); }};
destination d_5424 {{ syslog("127.0.0.1" port({plain_port}) transport("tcp") persist-name("d5424")); }};
destination d_3164 {{ network("127.0.0.1" port({plain_port}) transport("tcp") persist-name("d3164")); }};
destination d_tls {{ syslog("127.0.0.1" port({tls_port}) transport("tls")
    tls(ca-file("{ca}") peer-verify(required-trusted))); }};
log {{ source(s_5424); destination(d_5424); destination(d_tls); }};
log {{ source(s_3164); destination(d_3164); }};
"#,
            ca = ca.display()
        );
        let d = dir.path();
        std::fs::write(d.join("conf"), conf).unwrap();
        let log = File::create(d.join("stderr.log")).unwrap();
        let mut child = Command::new(syslog_ng_binary())
            .args(["-F", "--no-caps", "-f"])
            .arg(d.join("conf"))
            .arg("-R")
            .arg(d.join("persist"))
            .arg("-p")
            .arg(d.join("pid"))
            .arg("-c")
            .arg(d.join("ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting syslog-ng (run scripts/test-peers)");
        wait_listening(
            &mut child,
            "syslog-ng",
            &[in_5424, in_3164],
            Duration::from_secs(15),
            &d.join("stderr.log"),
        );
        Forwarder {
            dir,
            in_5424,
            in_3164,
            child: Some(child),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

async fn write_all(port: u16, bytes: &[u8]) {
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(bytes).await.unwrap();
    c.shutdown().await.unwrap();
}

fn octet_counted(messages: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
    }
    out
}

/// Reads the tenant's log until it holds `n` events (fails after 30 s).
async fn wait_events(s: &TestServer, tenant: &str, n: usize, context: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = s.read_log(tenant).await;
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: {} of {n} events arrived: {events:#?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_app<'a>(events: &'a [Value], app: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["metadata"]["syslog"]["app_name"] == app)
        .unwrap_or_else(|| panic!("no event from {app}: {events:#?}"))
}

const SSHD: &str = r#"<86>1 2026-06-01T10:00:00.000Z web01 sshd 4242 user.login [meta@32473 tenant="t-42" user="ada \"the\" admin"] Accepted password for ada"#;
const CEF: &str = r#"<132>1 2026-06-01T10:00:01.000Z fw01 firewall - - - CEF:0|Acme|Firewall|1.0|net.blocked|Blocked a \| connection|8|act=block src=203.0.113.9 suser=mallory duser=server01 outcome=failure msg=port \= 22"#;
const LEEF: &str = "<132>1 2026-06-01T10:00:02.000Z qr01 qradar - - - LEEF:2.0|Acme|IDS|2.1|ids.alert|^|sev=9^usrName=eve^src=198.51.100.7^action=detect";
const BSD: &str = "<38>Jun  1 10:00:03 mail01 postfix[77]: connect from unknown\n";

#[tokio::test]
async fn syslog_ng_over_tcp_and_tls_every_message_one_event() {
    let s = TestServer::spawn();
    s.create_tenant("plain").await;
    s.create_tenant("secure").await;
    let (plain_port, tls_port) = (free_port(), free_port());
    let certs = cert_dir();
    let (status, plain) = create(
        &s,
        &json!({"name": "tcp", "kind": "syslog", "tenant": "plain", "config": {"listen": format!("127.0.0.1:{plain_port}")}}),
    )
    .await;
    assert_eq!(status, 201, "{plain}");
    let (status, secure) = create(
        &s,
        &json!({"name": "tls", "kind": "syslog", "tenant": "secure", "config": {
            "listen": format!("127.0.0.1:{tls_port}"), "tls": true,
            "cert_file": certs.join("cert.pem"), "key_file": certs.join("key.pem"),
            "type_from": "app_name",
        }}),
    )
    .await;
    assert_eq!(status, 201, "{secure}");

    let sng = Forwarder::start(plain_port, tls_port);
    write_all(sng.in_5424, &octet_counted(&[SSHD, CEF, LEEF])).await;
    write_all(sng.in_3164, BSD.as_bytes()).await;

    let events = wait_events(&s, "plain", 4, "syslog-ng over TCP").await;
    assert_eq!(events.len(), 4, "{events:#?}");

    // RFC 5424: header, structured data, the original kept.
    let sshd = by_app(&events, "sshd");
    assert_eq!(sshd["type"], "user.login", "type from MSGID");
    assert_eq!(sshd["occurred_at"], "2026-06-01T10:00:00.000Z");
    assert_eq!(sshd["severity"], 3, "info");
    assert_eq!(sshd["source"], json!({"service": "sshd", "instance": "web01"}));
    let meta = &sshd["metadata"]["syslog"];
    assert_eq!(meta["protocol"], "rfc5424");
    assert_eq!(meta["facility"], 10);
    assert_eq!(meta["procid"], "4242");
    assert_eq!(meta["structured_data"]["meta@32473"]["tenant"], "t-42");
    assert_eq!(meta["structured_data"]["meta@32473"]["user"], "ada \"the\" admin");
    assert_eq!(meta["message"], "Accepted password for ada");
    // The frame exactly as syslog-ng sent it: it rewrites the timestamp in its own form and
    // ends each octet-counted frame with a LF.
    let resent = SSHD.replace("2026-06-01T10:00:00.000Z", "2026-06-01T10:00:00+00:00");
    assert_eq!(meta["raw"], format!("{resent}\n"));
    assert!(meta["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    // CEF parsed into fields.
    let cef = by_app(&events, "firewall");
    assert_eq!(cef["type"], "net.blocked", "the CEF event class");
    assert_eq!(cef["action"], "block");
    assert_eq!(cef["outcome"], "failure");
    assert_eq!(cef["severity"], 8);
    assert_eq!(cef["actor"], json!({"name": "mallory", "ip_address": "203.0.113.9"}));
    assert_eq!(cef["target"], json!({"name": "server01"}));
    assert_eq!(cef["metadata"]["cef"]["name"], "Blocked a | connection");
    assert_eq!(cef["metadata"]["cef"]["extension"]["msg"], "port = 22");

    // LEEF parsed into fields.
    let leef = by_app(&events, "qradar");
    assert_eq!(leef["type"], "ids.alert");
    assert_eq!(leef["severity"], 9);
    assert_eq!(leef["action"], "detect");
    assert_eq!(leef["actor"], json!({"name": "eve", "ip_address": "198.51.100.7"}));
    assert_eq!(leef["metadata"]["leef"]["vendor"], "Acme");

    // RFC 3164 with newline framing.
    let bsd = by_app(&events, "postfix");
    let meta = &bsd["metadata"]["syslog"];
    assert_eq!(meta["protocol"], "rfc3164");
    assert_eq!(meta["hostname"], "mail01");
    assert_eq!(meta["procid"], "77");
    assert_eq!(meta["message"], "connect from unknown");
    assert_eq!(bsd["type"], "syslog.message", "no MSGID in RFC 3164");
    assert_eq!(bsd["severity"], 3, "info");

    // The same RFC 5424 messages over TLS into the other tenant, typed by APP-NAME.
    let secure_events = wait_events(&s, "secure", 3, "syslog-ng over TLS").await;
    assert_eq!(secure_events.len(), 3, "{secure_events:#?}");
    let sshd = by_app(&secure_events, "sshd");
    assert_eq!(sshd["type"], "syslog.sshd");
    assert_eq!(
        sshd["metadata"]["syslog"]["structured_data"]["meta@32473"]["tenant"],
        "t-42"
    );
    // A CEF payload's class still wins over APP-NAME.
    assert_eq!(by_app(&secure_events, "firewall")["type"], "net.blocked");

    let id = secure["id"].as_str().unwrap();
    let health = wait_health(&s, id, "3 appended", |h| h["appended"] == 3).await;
    assert_eq!(health["malformed"], 0, "{health}");
    assert!(std::fs::metadata(sng.log()).is_ok());
}

#[tokio::test]
async fn what_cannot_become_an_event_is_kept_as_malformed() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let port = free_port();
    let (status, src) = create(
        &s,
        &json!({"name": "raw", "kind": "syslog", "tenant": "acme",
                "config": {"listen": format!("127.0.0.1:{port}"), "max_message_bytes": 256}}),
    )
    .await;
    assert_eq!(status, 201, "{src}");
    // Bytes no daemon would send, written straight to the socket.
    let mut bytes = octet_counted(&["<13>1 yesterday h a - - - bad time"]);
    bytes.extend_from_slice(b"no priority at all\n");
    bytes.extend_from_slice(b"\xff\xfe<13>not utf-8\n");
    bytes.extend_from_slice(format!("<13>1 - h a - - - {}\n", "x".repeat(400)).as_bytes());
    bytes.extend_from_slice(b"<13>1 - h ok - after.all - fine\n");
    write_all(port, &bytes).await;

    let events = wait_events(&s, "acme", 5, "malformed input").await;
    assert_eq!(events.len(), 5, "{events:#?}");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "syslog.malformed",
            "syslog.malformed",
            "syslog.malformed",
            "syslog.malformed",
            "after.all"
        ],
        "in order, nothing dropped"
    );
    let meta = |i: usize| &events[i]["metadata"]["syslog"];
    assert_eq!(meta(0)["raw"], "<13>1 yesterday h a - - - bad time");
    assert!(meta(0)["error"].as_str().unwrap().contains("TIMESTAMP"), "{}", meta(0));
    assert_eq!(meta(1)["raw"], "no priority at all");
    assert_eq!(meta(2)["raw_base64"], "//48MTM+bm90IHV0Zi04");
    assert_eq!(meta(3)["raw"].as_str().unwrap().len(), 256, "cut at the limit, kept");
    assert!(meta(3)["error"].as_str().unwrap().contains("limit"), "{}", meta(3));

    let id = src["id"].as_str().unwrap();
    let health = wait_health(&s, id, "5 appended", |h| h["appended"] == 5).await;
    assert_eq!(health["malformed"], 4, "{health}");
    assert_eq!(health["received"], 5, "{health}");
}

/// loggen (syslog-ng's load generator), RFC 5424 octet-counted: every message exactly once,
/// in order per connection.
#[tokio::test]
async fn loggen_load_every_message_exactly_once() {
    const N: usize = 20_000;
    let s = TestServer::spawn();
    s.create_tenant("load").await;
    let port = free_port();
    let (status, src) = create(&s, &crate::sources_api::syslog_body("load", port)).await;
    assert_eq!(status, 201, "{src}");
    let started = Instant::now();
    let out = Command::new("loggen")
        .args([
            "--inet",
            "--stream",
            "--syslog-proto",
            "--quiet",
            "-r",
            "1000000",
            "-s",
            "300",
        ])
        .args(["-n", &N.to_string(), "127.0.0.1", &port.to_string()])
        .output()
        .expect("running loggen (syslog-ng-core, installed by scripts/test-peers)");
    assert!(out.status.success(), "loggen: {}", String::from_utf8_lossy(&out.stderr));
    let events = wait_events(&s, "load", N, "loggen").await;
    let elapsed = started.elapsed();
    assert_eq!(events.len(), N);
    // loggen numbers its messages: `seq: 0000000000, thread: …`.
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| {
            let msg = e["metadata"]["syslog"]["message"].as_str().unwrap();
            let seq = msg.split("seq: ").nth(1).and_then(|r| r.split(',').next()).unwrap();
            seq.trim().parse().unwrap()
        })
        .collect();
    let expected: Vec<u64> = (0..N as u64).collect();
    assert_eq!(seqs, expected, "every loggen message once, in order");
    assert!(events.iter().all(|e| e["type"] != "syslog.malformed"));
    eprintln!(
        "loggen: {N} messages appended in {elapsed:?} ({:.0}/s, debug build, including reading back)",
        N as f64 / elapsed.as_secs_f64()
    );
}
