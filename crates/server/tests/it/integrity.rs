#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The hash chain end to end (docs/integrity.md): export, `auditrelay verify` on exports, on a
//! SIEM's copy and on the live store, the independent Python verifier, and tampering of every
//! kind (alter, delete, insert, reorder) caught and named by offset.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::receiver::Receiver;
use common::{assert_error, peer_python, repo_root, send, send_text, TestServer};
use serde_json::{json, Value};

fn server() -> TestServer {
    TestServer::spawn_with(&["--checkpoint-interval-secs", "1", "--allow-private-networks"], &[])
}

/// Events with what canonicalisation must get right: floats, big and small numbers, unicode,
/// escapes, nested objects with keys out of order.
fn varied_events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| {
            json!({
                "type": if k % 3 == 0 { "decision.rejected" } else { "user.login" },
                "actor": { "id": format!("usr_{k}"), "name": "Zoë \"Q\" Ångström\n" },
                "metadata": { "zeta": 1.50, "alpha": [1e21, 0.000001, -0.0, 12345678901234567u64], "€": { "b": true, "a": null }, "k": k },
                "changes": { "status": ["pending", "rejected"] },
            })
        })
        .collect()
}

async fn ingest(s: &TestServer, tenant: &str, events: &[Value]) {
    for chunk in events.chunks(7) {
        let (status, answer) = send(
            s.http
                .post(s.url(&format!("/v1/events?tenant={tenant}")))
                .bearer_auth(&s.admin)
                .json(&Value::Array(chunk.to_vec())),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
}

fn cli(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .args(args)
        .env_remove("AUDITRELAY_TOKEN")
        .env_remove("AUDITRELAY_URL")
        .output()
        .expect("running auditrelay")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `auditrelay verify --file F` → (success, everything printed).
fn verify_file(path: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify", "--file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = cli(&args);
    (out.status.success(), text(&out))
}

/// The independent verifier (tests/peers/verify_chain.py) → (success, everything printed).
fn verify_python(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(peer_python())
        .arg(repo_root().join("tests/peers/verify_chain.py"))
        .arg(path)
        .output()
        .expect("running verify_chain.py");
    (out.status.success(), text(&out))
}

fn export_to(s: &TestServer, tenant: &str, extra: &[&str], path: &Path) {
    let base = s.url("");
    let mut args = vec![
        "export",
        "--url",
        &base,
        "--token",
        &s.admin,
        "--tenant",
        tenant,
        "--output",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = cli(&args);
    assert!(out.status.success(), "export failed: {}", text(&out));
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

async fn wait_for_checkpoint(s: &TestServer, tenant: &str, offset: u64) -> Value {
    for _ in 0..100 {
        let (status, body) = s
            .get_as_operator(&format!("/v1/integrity/checkpoints?tenant={tenant}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(cp) = body["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["offset"] == offset)
        {
            return cp.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no checkpoint at offset {offset} of {tenant} within 10 s");
}

#[tokio::test]
async fn exports_verify_with_both_verifiers_and_every_tampering_is_named() {
    let s = server();
    s.create_tenant("acme").await;
    s.create_tenant("other").await;
    ingest(&s, "acme", &varied_events(30)).await;
    ingest(&s, "other", &varied_events(5)).await;
    // A repeated client id is not stored again and does not touch the chain.
    ingest(
        &s,
        "acme",
        &[
            json!({"type": "a.b", "id": "once"}),
            json!({"type": "a.b", "id": "once"}),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.ndjson");
    export_to(&s, "acme", &[], &file);
    let exported = lines(&file);
    assert_eq!(exported.len(), 31);
    for (i, line) in exported.iter().enumerate() {
        let ev: Value = serde_json::from_str(line).unwrap();
        assert_eq!(ev["offset"], i as u64 + 1);
        assert_eq!(ev["chain"].as_str().unwrap().len(), 64);
    }
    let (ok, out) = verify_file(&file, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("tenant `acme`: intact: 31 events, offsets 1..31"), "{out}");
    let (ok, out) = verify_python(&file);
    assert!(ok, "{out}");
    assert!(out.contains("tenant acme: intact: 31 events, offsets 1..31"), "{out}");

    // Signed checkpoints, checked with the key the server publishes.
    wait_for_checkpoint(&s, "acme", 31).await;
    let base = s.url("");
    let (ok, out) = verify_file(&file, &["--url", &base, "--token", &s.admin, "--tenant", "acme"]);
    assert!(ok, "{out}");
    assert!(out.contains("last checkpoint signed at"), "{out}");

    // A range starts from the checkpoint-less middle: anchored on its first chain value.
    let part = dir.path().join("part.ndjson");
    export_to(&s, "acme", &["--from", "11", "--to", "20"], &part);
    assert_eq!(lines(&part).len(), 10);
    let (ok, out) = verify_file(&part, &[]);
    assert!(ok && out.contains("offsets 11..20") && out.contains("WARNING"), "{out}");

    let tampered = dir.path().join("tampered.ndjson");
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "alter",
            {
                let mut l = exported.clone();
                l[9] = l[9].replace("usr_9", "usr_X");
                l
            },
            "altered or inserted event at offset 10",
            "altered event at offset 10",
        ),
        (
            "delete",
            {
                let mut l = exported.clone();
                l.remove(9);
                l
            },
            "offset 10 is missing",
            "at offset 10",
        ),
        (
            "insert",
            {
                let mut l = exported.clone();
                let mut fake: Value = serde_json::from_str(&l[9]).unwrap();
                fake["actor"]["id"] = json!("intruder");
                let real = l.split_off(9);
                l.push(fake.to_string());
                l.extend(real);
                l
            },
            "altered or inserted event at offset 10",
            "altered event at offset 10",
        ),
        (
            "reorder",
            {
                let mut l = exported.clone();
                l.swap(9, 10);
                l
            },
            "offset 10 is missing here (offset 9 is followed by 11)",
            "at offset 10",
        ),
    ];
    for (what, content, ours, python) in cases {
        write_lines(&tampered, &content);
        let (ok, out) = verify_file(&tampered, &[]);
        assert!(!ok, "{what}: verify accepted it: {out}");
        assert!(out.contains(ours), "{what}: {out}");
        let (ok, out) = verify_python(&tampered);
        assert!(!ok, "{what}: verify_chain.py accepted it: {out}");
        assert!(out.contains(python), "{what}: {out}");
    }

    // A file with both tenants verifies per tenant.
    let other = dir.path().join("other.ndjson");
    export_to(&s, "other", &[], &other);
    let mut both = lines(&other);
    both.extend(exported.clone());
    write_lines(&tampered, &both);
    let (ok, out) = verify_file(&tampered, &[]);
    assert!(
        ok && out.contains("tenant `other`: intact: 5 events, offsets 1..5"),
        "{out}"
    );
}

#[tokio::test]
async fn export_is_ndjson_or_csv_ranged_typed_and_tenant_scoped() {
    let s = server();
    s.create_tenant("acme").await;
    s.create_tenant("other").await;
    ingest(&s, "acme", &varied_events(12)).await;
    let key = s.create_key("acme", &["read"]).await;
    let get = |q: &str, token: &str| {
        s.http
            .get(s.url(&format!("/v1/export{q}")))
            .bearer_auth(token.to_owned())
    };

    let resp = get("?types=decision.*&from=2&to=10", &key).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let body = resp.text().await.unwrap();
    let offsets: Vec<u64> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![4, 7, 10]);

    let resp = get("?format=csv&to=3", &key).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.unwrap();
    let mut rows = csv.split("\r\n");
    assert_eq!(rows.next(), Some("offset,id,type,occurred_at,received_at,chain,event"));
    let first = rows.next().unwrap();
    assert!(first.starts_with("1,"), "{first}");
    assert!(
        first.contains(",\"{\"\"offset\"\":1,"),
        "the event column is the quoted JSON: {first}"
    );
    assert_eq!(csv.matches("\r\n").count(), 4);

    // `verify` reads the CSV export too, and catches an edit of the event or of a column.
    let dir = tempfile::tempdir().unwrap();
    let (_, full) = send_text(get("?format=csv", &key)).await;
    let path = dir.path().join("export.csv");
    std::fs::write(&path, &full).unwrap();
    let (ok, out) = verify_file(&path, &[]);
    assert!(ok && out.contains("intact: 12 events, offsets 1..12"), "{out}");
    for (what, from, to, named) in [
        (
            "event edited",
            "\"\"offset\"\":5,",
            "\"\"offset\"\":5,\"\"x\"\":1,",
            "offset 5",
        ),
        ("offset column edited", "\r\n6,", "\r\n60,", "offset column says 60"),
    ] {
        assert!(full.contains(from), "{what}: {from} not in the export");
        std::fs::write(&path, full.replacen(from, to, 1)).unwrap();
        let (ok, out) = verify_file(&path, &[]);
        assert!(!ok && out.contains(named), "{what}: {out}");
    }

    // Times: everything was received before now and after the epoch.
    let (_, body) = send_text(get("?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z", &key)).await;
    assert_eq!(body.lines().count(), 12);

    // A tenant key sees its own tenant only; another tenant answers like a missing one.
    assert_error(&send(get("?tenant=other", &key)).await, 404, "not_found");
    assert_error(&send(get("?format=xml", &key)).await, 400, "invalid_parameter");
    assert_error(&send(get("?from=yesterday", &key)).await, 400, "invalid_parameter");
    let ingest_only = s.create_key("acme", &["ingest"]).await;
    assert_eq!(send(get("", &ingest_only)).await.0, 403);
    assert_eq!(send(s.http.get(s.url("/v1/export?tenant=acme"))).await.0, 401);

    // The checkpoint routes are scoped the same way.
    wait_for_checkpoint(&s, "acme", 12).await;
    let (status, cps) = send(s.http.get(s.url("/v1/integrity/checkpoints")).bearer_auth(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(cps["checkpoints"][0]["tenant_id"], "acme");
    assert_error(
        &send(
            s.http
                .get(s.url("/v1/integrity/checkpoints?tenant=other"))
                .bearer_auth(&key),
        )
        .await,
        404,
        "not_found",
    );
    let (status, k) = send(s.http.get(s.url("/v1/integrity/key")).bearer_auth(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(k["algorithm"], "Ed25519");
    assert!(k["public_key_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----\n"));
}

/// What a webhook receiver got (re-serialised by a JSON parser on the way) verifies with both
/// verifiers, against the server's signed checkpoints.
#[tokio::test]
async fn a_webhook_receivers_copy_verifies() {
    let s = server();
    s.create_tenant("acme").await;
    let r = Receiver::start().await;
    let (status, sink) = send(s.http.post(s.url("/v1/sinks")).bearer_auth(&s.admin).json(&json!({
        "name": "siem", "kind": "webhook", "tenant": "acme", "format": "json",
        "config": { "url": r.url() }, "start_at": "earliest",
        "batch": { "max_events": 8, "flush_interval_ms": 0 },
    })))
    .await;
    assert_eq!(status, 201, "{sink}");
    ingest(&s, "acme", &varied_events(25)).await;
    for _ in 0..200 {
        if r.accepted_events().len() >= 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received: Vec<String> = r.accepted_events().iter().map(Value::to_string).collect();
    assert!(received.len() >= 25, "the receiver got {} events", received.len());
    let dir = tempfile::tempdir().unwrap();
    let copy: PathBuf = dir.path().join("siem.ndjson");
    write_lines(&copy, &received);
    let (ok, out) = verify_python(&copy);
    assert!(ok && out.contains("offsets 1..25"), "{out}");
    wait_for_checkpoint(&s, "acme", 25).await;
    let key = s.create_key("acme", &["read"]).await;
    let base = s.url("");
    let (ok, out) = verify_file(&copy, &["--url", &base, "--token", &key]);
    assert!(
        ok && out.contains("intact: 25 events, offsets 1..25") && out.contains("last checkpoint"),
        "{out}"
    );
}

/// Tampering with the log's files themselves, caught by `verify --url` on the live server.
#[tokio::test]
async fn tampering_with_the_store_is_caught_by_verify_against_the_live_log() {
    let mut s = server();
    s.create_tenant("acme").await;
    ingest(&s, "acme", &varied_events(20)).await;
    let cp = wait_for_checkpoint(&s, "acme", 20).await;
    assert!(cp["signature"].as_str().is_some());
    let key = s.create_key("acme", &["read"]).await;
    let base = s.url("");
    let verify_live = |base: &str, key: &str| {
        let out = cli(&["verify", "--url", base, "--token", key]);
        (out.status.success(), text(&out))
    };
    let (ok, out) = verify_live(&base, &key);
    assert!(
        ok && out.contains("intact: 20 events, offsets 1..20, last checkpoint signed at"),
        "{out}"
    );
    assert_eq!(s.sigterm().await.code(), Some(0));

    let log = s.data_dir().join("log");
    let backup = s.data_dir().join("log-backup");
    copy_dir(&log, &backup);
    let files = LogFiles::new(&log, "acme");
    type Tamper = Box<dyn Fn(&LogFiles)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "alter",
            Box::new(|f: &LogFiles| {
                let body = f.body(7).replace("usr_6", "usr_X");
                f.set_body(7, &body);
            }),
            "altered or inserted event at offset 7",
        ),
        (
            "delete",
            // Offset 7's index entry now leads to the record after it. The server notices
            // (every record names its tenant and offset) and refuses the read with a 503, so
            // verify fails on the read itself rather than on the chain.
            Box::new(|f: &LogFiles| f.set_position(7, f.position(8))),
            "the event store is unavailable",
        ),
        (
            "reorder",
            Box::new(|f: &LogFiles| {
                let (p7, p8) = (f.position(7), f.position(8));
                f.set_position(7, p8);
                f.set_position(8, p7);
            }),
            "the event store is unavailable",
        ),
        (
            "rewrite history",
            Box::new(|f: &LogFiles| {
                // Alter offset 7 and recompute every later chain value: only a signed checkpoint
                // can tell.
                let mut chain = f.chain(6);
                let body = f.body(7).replace("usr_6", "usr_X");
                f.set_body(7, &body);
                for seq in 7..=20u64 {
                    chain = auditrelay_store::chain::link(&chain, seq, &f.body(seq)).unwrap();
                    f.set_chain(seq, &chain);
                }
            }),
            "disagrees with the signed checkpoint at that offset",
        ),
    ];
    for (what, tamper, expected) in cases {
        tamper(&files);
        s.restart();
        let base = s.url("");
        let (ok, out) = verify_live(&base, &key);
        assert!(!ok, "{what}: verify accepted it: {out}");
        assert!(out.contains(expected), "{what}: {out}");
        assert_eq!(s.sigterm().await.code(), Some(0));
        std::fs::remove_dir_all(&log).unwrap();
        copy_dir(&backup, &log);
    }
    s.restart();
    let (ok, out) = verify_live(&s.url(""), &key);
    assert!(ok, "restored: {out}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The embedded log's files as an attacker with disk access sees them (the layout in
/// `crates/store/src/seglog/frame.rs`), read and patched without the server's code.
struct LogFiles {
    dir: std::path::PathBuf,
    tenant_no: u32,
}

/// Where a record's fields start: length 4, tenant 4, offset 8, received_at 8, flags 1.
const CHAIN_AT: u64 = 25;
const BODY_LEN_AT: u64 = 69;
const BODY_AT: u64 = 73;

impl LogFiles {
    fn new(dir: &std::path::Path, tenant: &str) -> LogFiles {
        let tenants = std::fs::read_to_string(dir.join("tenants")).unwrap();
        let tenant_no = tenants
            .lines()
            .find_map(|l| {
                l.split_once(' ')
                    .filter(|(_, n)| *n == tenant)
                    .map(|(no, _)| no.parse().unwrap())
            })
            .unwrap();
        LogFiles {
            dir: dir.to_owned(),
            tenant_no,
        }
    }
    fn index(&self) -> std::path::PathBuf {
        self.dir.join("index").join(format!("{}.idx", self.tenant_no))
    }
    fn position(&self, offset: u64) -> u64 {
        let bytes = std::fs::read(self.index()).unwrap();
        let at = ((offset - 1) * 8) as usize;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) - 1
    }
    fn set_position(&self, offset: u64, pos: u64) {
        let mut bytes = std::fs::read(self.index()).unwrap();
        let at = ((offset - 1) * 8) as usize;
        bytes[at..at + 8].copy_from_slice(&(pos + 1).to_le_bytes());
        std::fs::write(self.index(), bytes).unwrap();
    }
    /// The segment holding `pos` and `pos` within it.
    fn segment(&self, pos: u64) -> (std::path::PathBuf, usize) {
        let mut bases: Vec<u64> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        bases.sort();
        let base = *bases.iter().rev().find(|b| **b <= pos).unwrap();
        (self.dir.join(format!("{base:020}.seg")), (pos - base) as usize)
    }
    fn patch(&self, offset: u64, f: impl FnOnce(&mut Vec<u8>, usize)) {
        let (path, at) = self.segment(self.position(offset));
        let mut bytes = std::fs::read(&path).unwrap();
        f(&mut bytes, at);
        std::fs::write(&path, bytes).unwrap();
    }
    fn body(&self, offset: u64) -> String {
        let (path, at) = self.segment(self.position(offset));
        let bytes = std::fs::read(path).unwrap();
        let len_at = at + BODY_LEN_AT as usize;
        let len = u32::from_le_bytes(bytes[len_at..len_at + 4].try_into().unwrap()) as usize;
        let body_at = at + BODY_AT as usize;
        String::from_utf8(bytes[body_at..body_at + len].to_vec()).unwrap()
    }
    /// Replaces a body with one of the same length (the records around it stay in place).
    fn set_body(&self, offset: u64, body: &str) {
        assert_eq!(body.len(), self.body(offset).len());
        self.patch(offset, |bytes, at| {
            let body_at = at + BODY_AT as usize;
            bytes[body_at..body_at + body.len()].copy_from_slice(body.as_bytes());
        });
    }
    fn chain(&self, offset: u64) -> [u8; 32] {
        let (path, at) = self.segment(self.position(offset));
        let bytes = std::fs::read(path).unwrap();
        let c = at + CHAIN_AT as usize;
        bytes[c..c + 32].try_into().unwrap()
    }
    fn set_chain(&self, offset: u64, chain: &[u8; 32]) {
        self.patch(offset, |bytes, at| {
            let c = at + CHAIN_AT as usize;
            bytes[c..c + 32].copy_from_slice(chain);
        });
    }
}
