//! The `syslog` source with real senders: syslog-ng forwarding RFC 5424 (octet counting) and
//! RFC 3164 (newline framing) over TCP and RFC 5424 over TLS, and loggen (syslog-ng's load
//! generator) for volume. Every message becomes exactly one event; headers, structured data and
//! CEF/LEEF payloads are mapped; what cannot become an event is kept as `syslog.malformed`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditrelay_testkit::peer_process::{free_port, kill};
use auditrelay_testkit::rsyslog::Rsyslog;
use auditrelay_testkit::syslog_ng::{cert_dir, spawn_syslog_ng};
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
        let child = spawn_syslog_ng(d, &[in_5424, in_3164]);
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

/// Numbered RFC 5424 messages (`seq.test`, `[n@32473 i="k"]`, body `message k`) so that every
/// one can be found exactly once in the log.
fn numbered_5424(n: usize) -> Vec<String> {
    (0..n)
        .map(|k| format!(r#"<134>1 2026-06-01T10:01:00.000Z app01 seqapp - seq.test [n@32473 i="{k}"] message {k}"#))
        .collect()
}

/// Every `metadata.syslog.structured_data.n@32473.i` in `events`, sorted; panics on an event
/// without one.
fn numbers(events: &[Value]) -> Vec<usize> {
    let mut out: Vec<usize> = events
        .iter()
        .filter(|e| e["type"] == "seq.test")
        .map(|e| {
            e["metadata"]["syslog"]["structured_data"]["n@32473"]["i"]
                .as_str()
                .unwrap_or_else(|| panic!("no n@32473.i: {e}"))
                .parse()
                .unwrap()
        })
        .collect();
    out.sort_unstable();
    out
}

/// rsyslog (Debian's, from the private root `scripts/test-peers` unpacks) as a real sender:
/// it takes messages on its own `imtcp` inputs and forwards them with `omfwd` the way an
/// rsyslog relay forwards to a SIEM: RFC 5424 (`RSYSLOG_SyslogProtocol23Format`) with octet
/// counting over TCP and over TLS (the `ossl` driver, verifying our certificate against the
/// test CA and its name), and RFC 3164 (`RSYSLOG_TraditionalForwardFormat`) with newline
/// framing. Every message becomes exactly one event with its fields mapped.
#[tokio::test]
async fn rsyslog_over_tcp_and_tls_every_message_one_event() {
    const NUMBERED: usize = 200;
    let s = TestServer::spawn();
    for t in ["rs-plain", "rs-tls", "rs-bsd"] {
        s.create_tenant(t).await;
    }
    let (plain_port, tls_port, bsd_port) = (free_port(), free_port(), free_port());
    let certs = cert_dir();
    for (tenant, body) in [
        ("rs-plain", json!({"listen": format!("127.0.0.1:{plain_port}")})),
        (
            "rs-tls",
            json!({"listen": format!("127.0.0.1:{tls_port}"), "tls": true,
                   "cert_file": certs.join("cert.pem"), "key_file": certs.join("key.pem")}),
        ),
        ("rs-bsd", json!({"listen": format!("127.0.0.1:{bsd_port}")})),
    ] {
        let (status, src) = create(
            &s,
            &json!({"name": tenant, "kind": "syslog", "tenant": tenant, "config": body}),
        )
        .await;
        assert_eq!(status, 201, "{src}");
    }

    let (in_5424, in_3164) = (free_port(), free_port());
    // Retry forever, once a second: rsyslog's default gives an action one try and then drops
    // what it could not send, which would hide a refused connection as a loss.
    let retry = r#"action.resumeRetryCount="-1" action.resumeInterval="1""#;
    let conf = format!(
        r#"global(defaultNetstreamDriverCAFile="{ca}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_5424}" ruleset="r5424")
input(type="imtcp" address="127.0.0.1" port="{in_3164}" ruleset="r3164")
ruleset(name="r5424") {{
  action(type="omfwd" target="127.0.0.1" port="{plain_port}" protocol="tcp"
         template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted" {retry})
  action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp"
         template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"
         streamDriver="ossl" streamDriverMode="1" streamDriverAuthMode="x509/name"
         streamDriverPermittedPeers="localhost" {retry})
}}
ruleset(name="r3164") {{
  action(type="omfwd" target="127.0.0.1" port="{bsd_port}" protocol="tcp"
         template="RSYSLOG_TraditionalForwardFormat" {retry})
}}
"#,
        ca = certs.join("ca.pem").display(),
    );
    let rs = Rsyslog::start(&conf, &[in_5424, in_3164]);

    let numbered = numbered_5424(NUMBERED);
    let mut to_5424: Vec<&str> = vec![SSHD, CEF, LEEF];
    to_5424.extend(numbered.iter().map(String::as_str));
    write_all(in_5424, &octet_counted(&to_5424)).await;
    let mut to_3164 = BSD.to_owned();
    for k in 0..NUMBERED {
        to_3164.push_str(&format!("<38>Jun  1 10:02:00 mail01 postfix[{k}]: numbered {k}\n"));
    }
    write_all(in_3164, to_3164.as_bytes()).await;

    let total = NUMBERED + 3;
    for tenant in ["rs-plain", "rs-tls"] {
        let events = wait_events_or(&s, tenant, total, || rs.diagnostics()).await;
        assert_eq!(events.len(), total, "{tenant}: one event per message");
        assert_eq!(
            numbers(&events),
            (0..NUMBERED).collect::<Vec<_>>(),
            "{tenant}: each numbered message once"
        );
        assert!(
            events.iter().all(|e| e["type"] != "syslog.malformed"),
            "{tenant}: {events:#?}"
        );

        let sshd = by_app(&events, "sshd");
        assert_eq!(sshd["type"], "user.login", "type from MSGID");
        assert_eq!(sshd["occurred_at"], "2026-06-01T10:00:00.000Z");
        assert_eq!(sshd["severity"], 3, "info");
        assert_eq!(sshd["source"], json!({"service": "sshd", "instance": "web01"}));
        let meta = &sshd["metadata"]["syslog"];
        assert_eq!(meta["protocol"], "rfc5424");
        assert_eq!(meta["facility"], 10);
        assert_eq!(meta["procid"], "4242");
        assert_eq!(meta["structured_data"]["meta@32473"]["user"], "ada \"the\" admin");
        assert_eq!(meta["message"], "Accepted password for ada");
        // rsyslog re-emits the message unchanged (its RFC 5424 template keeps the timestamp as
        // received) and ends each octet-counted frame with a LF, as its template says.
        assert_eq!(meta["raw"], format!("{SSHD}\n"), "{tenant}");

        let cef = by_app(&events, "firewall");
        assert_eq!(cef["type"], "net.blocked");
        assert_eq!(cef["actor"], json!({"name": "mallory", "ip_address": "203.0.113.9"}));
        assert_eq!(cef["metadata"]["cef"]["extension"]["msg"], "port = 22");
        let leef = by_app(&events, "qradar");
        assert_eq!(leef["type"], "ids.alert");
        assert_eq!(leef["actor"], json!({"name": "eve", "ip_address": "198.51.100.7"}));
    }

    // RFC 3164, newline framed, exactly as received.
    let events = wait_events_or(&s, "rs-bsd", NUMBERED + 1, || rs.diagnostics()).await;
    assert_eq!(events.len(), NUMBERED + 1);
    let bsd = by_app(&events, "postfix");
    let meta = &bsd["metadata"]["syslog"];
    assert_eq!(meta["protocol"], "rfc3164");
    assert_eq!(meta["hostname"], "mail01");
    assert_eq!(meta["procid"], "77");
    assert_eq!(meta["message"], "connect from unknown");
    assert_eq!(bsd["type"], "syslog.message");
    let mut procids: Vec<usize> = events
        .iter()
        .filter(|e| {
            e["metadata"]["syslog"]["message"]
                .as_str()
                .unwrap()
                .starts_with("numbered ")
        })
        .map(|e| {
            let m = &e["metadata"]["syslog"];
            assert_eq!(
                m["message"],
                format!("numbered {}", m["procid"].as_str().unwrap()),
                "{e}"
            );
            m["procid"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    procids.sort_unstable();
    assert_eq!(procids, (0..NUMBERED).collect::<Vec<_>>(), "each RFC 3164 message once");
}

/// As `wait_events`, with the sender's diagnostics in the failure report.
async fn wait_events_or(s: &TestServer, tenant: &str, n: usize, diagnostics: impl Fn() -> String) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = s.read_log(tenant).await;
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{tenant}: {} of {n} events arrived\n{}",
            events.len(),
            diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The loggen sequence number of an event (`seq: 0000000042, thread: …` in the message).
fn loggen_seq(e: &Value) -> Option<u64> {
    let msg = e["metadata"]["syslog"]["message"].as_str()?;
    msg.split("seq: ").nth(1)?.split(',').next()?.trim().parse().ok()
}

/// syslog-ng's statistics (`syslog-ng-ctl stats`), for failure reports.
fn sng_stats(ctl: &std::path::Path) -> String {
    match Command::new("syslog-ng-ctl").args(["stats", "-c"]).arg(ctl).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        Err(e) => format!("syslog-ng-ctl: {e}"),
    }
}

/// The kernel's socket buffer limits on this machine (`tcp_rmem` and `tcp_wmem` maxima): what a
/// TCP sender may have handed to the kernel without the receiving process having read it.
fn socket_buffer_bytes() -> u64 {
    ["/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap()
        })
        .sum()
}

/// SIGKILL under syslog load: loggen → syslog-ng (a `syslog()` destination with a reliable disk
/// buffer and flow control) → auditrelay's syslog source. The server is killed mid-stream and
/// restarted on the same data dir (the source listens again on the same port); syslog-ng
/// reconnects and sends on from its buffer.
///
/// What plain syslog over TCP (RFC 6587) can promise, and what this test holds us to: it has no
/// application-level acknowledgement, so syslog-ng (3.38) takes a message out of its reliable
/// disk buffer as soon as `write()` to the socket succeeds. What sat in the socket buffers (the
/// server's receive buffer, syslog-ng's send buffer) and what the server had read but not yet
/// made durable (at most two batches of ≤ 320 KiB) is gone when the server dies: the kernel discards it and syslog-ng
/// never learns. That loss is measured, not hidden: the log must hold every message before it
/// and after it in order, the lost messages must be ONE contiguous run at the kill (never
/// anything after the reconnect), and the run must fit in the kernel's socket buffer limits (a
/// larger loss would mean we acknowledged, i.e. read on, before a message was durable).
/// "Nothing lost end to end" needs a protocol with acknowledgements: RELP (`relp: true`, tested
/// with rsyslog's omrelp in `sources_relp`); syslog-ng's ALTP is not in the open-source edition.
///
/// Resent duplicates would show as the run going backwards; they are counted (the source has no
/// message id to deduplicate on: RFC 5424 defines none that is unique).
#[tokio::test]
async fn sigkill_under_syslog_ng_reliable_disk_buffer_loses_only_the_socket_window() {
    const N: u64 = 30_000;
    const RATE: u64 = 3_000;
    const SIZE: u64 = 300;
    let mut s = TestServer::spawn();
    s.create_tenant("crash").await;
    let port = free_port();
    let (status, src) = create(&s, &crate::sources_api::syslog_body("crash", port)).await;
    assert_eq!(status, 201, "{src}");
    let id = src["id"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = free_port();
    // time-reopen(1): reconnect a second after the server went away (the default is 60 s).
    let conf = format!(
        r#"@version: 3.38
options {{ stats-freq(0); time-reopen(1); }};
source s_in {{ syslog(ip(127.0.0.1) port({input}) transport("tcp") log-iw-size(20000)); }};
destination d_ar {{ syslog("127.0.0.1" port({port}) transport("tcp")
    disk-buffer(reliable(yes) dir("{buf}") disk-buf-size(209715200) mem-buf-size(16777216))); }};
log {{ source(s_in); destination(d_ar); flags(flow-control); }};
"#,
        buf = d.display()
    );
    std::fs::write(d.join("conf"), conf).unwrap();
    // Killed on drop, so that a failing assertion does not leave syslog-ng running.
    let sng = Peer(Some(spawn_syslog_ng(d, &[input])));
    let sng_log = || std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default();

    // -I: loggen stops after --interval seconds (default 10) even short of -n; the kill stalls
    // the stream, so give it all the time it needs.
    let mut loggen = Command::new("loggen")
        .args(["--inet", "--stream", "--syslog-proto", "--quiet", "-I", "600"])
        .args(["-s", &SIZE.to_string(), "-r", &RATE.to_string(), "-n", &N.to_string()])
        .args(["127.0.0.1", &input.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running loggen (syslog-ng-core, installed by scripts/test-peers)");

    // Kill once a quarter of the stream is durable, while loggen is still sending.
    let before = wait_health(&s, &id, "a quarter appended", |h| h["appended"].as_u64() >= Some(N / 4)).await;
    assert!(
        loggen.try_wait().unwrap().is_none(),
        "loggen finished before the kill: the kill would not be mid-stream"
    );
    let status = s.kill_9().await;
    assert!(!status.success(), "SIGKILL: {status}");
    s.restart();

    let out = loggen.wait_with_output().unwrap();
    assert!(out.status.success(), "loggen: {}", String::from_utf8_lossy(&out.stderr));

    // Until the last message is in the log (the health counter gates the full reads).
    let deadline = Instant::now() + Duration::from_secs(90);
    let events = loop {
        let (status, h) = s.get_as_operator(&format!("/v1/sources/{id}/health")).await;
        assert_eq!(status, 200, "{h}");
        if h["appended"].as_u64() > Some(0) {
            let events = s.read_log("crash").await;
            if events.last().and_then(loggen_seq) == Some(N - 1) {
                break events;
            }
            assert!(
                Instant::now() < deadline,
                "the last message did not arrive within 90 s; {} events; health {h}\nsyslog-ng stats:\n{}\nsyslog-ng:\n{}",
                events.len(),
                sng_stats(&d.join("ctl")),
                sng_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "nothing appended after the restart; health {h}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    assert!(
        events.iter().all(|e| e["type"] != "syslog.malformed"),
        "no malformed frame at the cut"
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| loggen_seq(e).unwrap_or_else(|| panic!("not a loggen message: {e}")))
        .collect();
    assert_eq!(seqs.first(), Some(&0), "the log starts with the first message");
    // Where the sequence does not go on by one: the kill, and only there.
    let breaks: Vec<(u64, u64)> = seqs
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        breaks.len() <= 1,
        "the stream may break once, at the kill; breaks (before, after): {breaks:?}"
    );
    let (lost, duplicates) = match breaks.first() {
        Some(&(before_kill, after)) if after > before_kill => (after - before_kill - 1, 0),
        Some(&(before_kill, after)) => (0, before_kill - after + 1),
        None => (0, 0),
    };
    // The socket buffers, and what the listener holds read but not yet durable: the batch being
    // committed and the next one (each ≤ READ_AHEAD + READ_CHUNK, sources/syslog/listener.rs).
    let window = socket_buffer_bytes() + 2 * (256 + 64) * 1024;
    assert!(
        lost * SIZE <= window,
        "{lost} messages ({} bytes) lost at the kill: more than the socket buffers can hold ({window} bytes)",
        lost * SIZE
    );
    assert_eq!(seqs.len() as u64, N - lost + duplicates);
    eprintln!(
        "sigkill: killed after ≥ {} appended; {} events in the log: {} of {N} loggen messages, {lost} lost at \
         the kill (the in-flight socket window; ≤ {window} bytes of socket buffers here), {duplicates} resent \
         duplicates; break at {breaks:?}",
        before["appended"],
        events.len(),
        N - lost
    );
    drop(sng);
}

/// A peer process killed (SIGKILL) and reaped on drop, panics included.
struct Peer(Option<Child>);

impl Drop for Peer {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}
