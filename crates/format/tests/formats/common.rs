//! Shared test machinery: the Python peers, representative events (through the real ingest
//! path), and the generators of hostile events for the property tests.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use auditrelay_core::{parse_request, BodyFormat, Limits, StoredEvent};
use auditrelay_format::{FormatOptions, LEEF_DELIMITERS};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// The workspace root (where `scripts/test-peers` puts `.peers/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The peers' Python. Missing FAILS the test: skipping would let a broken encoder pass.
pub fn peer_python() -> PathBuf {
    let python = repo_root().join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/test-peers` first (installs cefp, ocsf-json-schema and jsonschema)",
        python.display()
    );
    python
}

/// One long-lived helper from `tests/peers`, asked one line at a time (one Python start per
/// test instead of per case keeps the property tests fast).
pub struct Peer {
    script: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    pub fn start(script: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(peer_python())
            .arg(repo_root().join("tests/peers").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            script: script.into(),
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one line (the caller guarantees it holds no LF) and reads the JSON answer.
    pub fn ask(&mut self, line: &[u8]) -> Value {
        assert!(!line.contains(&b'\n'), "a record for {} holds a raw LF", self.script);
        self.stdin.write_all(line).unwrap();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        let n = self.stdout.read_line(&mut answer).unwrap();
        assert!(n > 0, "{} exited early", self.script);
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{}: bad answer {answer:?}: {e}", self.script))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Our own child, by handle; it would also exit on EOF when the test binary ends.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const TENANT: &str = "acme";
pub const RECEIVED_AT: &str = "2026-06-01T10:13:21.000Z";

/// One event through the real validator and canonical renderer, as the log would store it.
pub fn ingest(event: Value, offset: u64) -> StoredEvent {
    let body = event.to_string();
    let mut parsed = parse_request(body.as_bytes(), BodyFormat::Json, &Limits::default()).unwrap();
    assert_eq!(parsed.len(), 1);
    let new = parsed.remove(0).into_new_event(TENANT.into(), RECEIVED_AT);
    StoredEvent {
        tenant_id: new.tenant_id,
        offset,
        id: new.id,
        event_type: new.event_type,
        body: new.body,
        // A fixed chain value: the formats carry it, whatever it is (docs/integrity.md).
        chain: Some([0xc4; 32]),
    }
}

/// Representative events for the snapshots, each with a name.
pub fn fixtures() -> Vec<(&'static str, StoredEvent)> {
    let hostile = "pipe| back\\slash eq= cr\r lf\n tab\t caret^ nul\0 esc\u{1b} é€😀 ls\u{2028} end";
    vec![
        (
            "full",
            ingest(
                json!({
                    "id": "evt-0001",
                    "type": "decision.rejected",
                    "occurred_at": "2026-06-01T12:13:20.123+02:00",
                    "actor": {"id": "usr_123", "type": "user", "name": "Alice Example", "email": "alice@example.com",
                              "ip_address": "203.0.113.42", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                    "action": "reject",
                    "target": {"type": "decision", "id": "dec_9", "name": "Loan 9"},
                    "outcome": "success",
                    "severity": 9,
                    "request_id": "req-abc-123",
                    "changes": {"status": ["pending", "rejected"]},
                    "metadata": {"reason": "risk", "score": 0.93},
                    "source": {"service": "billing-api", "version": "2.0.0", "instance": "inst_7"}
                }),
                1,
            ),
        ),
        ("minimal", ingest(json!({"id": "evt-0002", "type": "health.ping"}), 2)),
        (
            "hostile",
            ingest(
                json!({
                    "id": "evt-0003|=\\^",
                    "type": "doc.updated",
                    "occurred_at": "2026-06-01T10:13:20Z",
                    "actor": {"id": hostile, "type": hostile, "name": hostile, "email": "not an email",
                              "ip_address": "2001:db8::1", "user_agent": hostile},
                    "action": hostile,
                    "target": {"type": hostile, "id": hostile, "name": hostile},
                    "outcome": "failure",
                    "severity": 0,
                    "request_id": hostile,
                    "changes": {hostile: [hostile, null]},
                    "metadata": {"k": hostile},
                    "source": {"service": hostile, "version": hostile, "instance": hostile}
                }),
                3,
            ),
        ),
        (
            "login_ipv6",
            ingest(
                json!({
                    "id": "evt-0004",
                    "type": "auth.login",
                    "occurred_at": "2026-06-01T10:13:20.5Z",
                    "actor": {"id": "usr_7", "type": "user", "email": "bob@example.org", "ip_address": "::ffff:198.51.100.7"},
                    "outcome": "failure",
                    "severity": 6,
                    "source": {"service": "sso"}
                }),
                4,
            ),
        ),
        (
            "account_created",
            ingest(
                json!({
                    "id": "evt-0005",
                    "type": "user.created",
                    "occurred_at": "2026-06-01T10:13:20Z",
                    "actor": {"id": "adm_1", "type": "admin", "name": "root", "ip_address": "2001:db8::42"},
                    "action": "create",
                    "target": {"type": "user", "id": "usr_99", "name": "carol"},
                    "outcome": "success",
                    "severity": 3,
                    "request_id": "req-5"
                }),
                5,
            ),
        ),
        (
            "long_values",
            ingest(
                json!({
                    "id": "evt-0006",
                    "type": "x.y",
                    "occurred_at": "2026-06-01T10:13:20Z",
                    "actor": {"name": "n".repeat(1018) + "€€"},
                    "action": "a".repeat(60) + "ééé",
                    "target": {"id": "i".repeat(1024)},
                    "severity": 10
                }),
                6,
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Generated events for the property tests. Bodies are built directly (not through the
// validator) so even the fields ingest constrains (id, type, ip_address, outcome) can carry
// hostile strings: a format must survive any body.

#[derive(Debug, Clone, Default)]
pub struct GenActor {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GenTarget {
    pub kind: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GenSource {
    pub service: Option<String>,
    pub version: Option<String>,
    pub instance: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GenEvent {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub offset: u64,
    pub occurred_ms: Option<i64>,
    pub received_ms: Option<i64>,
    pub actor: Option<GenActor>,
    pub action: Option<String>,
    pub target: Option<GenTarget>,
    pub outcome: Option<String>,
    pub severity: Option<Value>,
    pub request_id: Option<String>,
    pub changes: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    pub source: Option<GenSource>,
}

pub fn rfc3339(ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap();
    format!("{ts:.3}")
}

fn put(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), Value::String(v.clone()));
    }
}

impl GenEvent {
    /// The canonical body (api.md order) and the stored row.
    pub fn stored(&self) -> StoredEvent {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("tenant_id".into(), json!(self.tenant_id));
        m.insert("type".into(), json!(self.event_type));
        if let Some(ms) = self.occurred_ms {
            m.insert("occurred_at".into(), json!(rfc3339(ms)));
        }
        if let Some(ms) = self.received_ms {
            m.insert("received_at".into(), json!(rfc3339(ms)));
        }
        if let Some(a) = &self.actor {
            let mut o = Map::new();
            put(&mut o, "id", &a.id);
            put(&mut o, "type", &a.kind);
            put(&mut o, "name", &a.name);
            put(&mut o, "email", &a.email);
            put(&mut o, "ip_address", &a.ip_address);
            put(&mut o, "user_agent", &a.user_agent);
            m.insert("actor".into(), Value::Object(o));
        }
        put(&mut m, "action", &self.action);
        if let Some(t) = &self.target {
            let mut o = Map::new();
            put(&mut o, "type", &t.kind);
            put(&mut o, "id", &t.id);
            put(&mut o, "name", &t.name);
            m.insert("target".into(), Value::Object(o));
        }
        put(&mut m, "outcome", &self.outcome);
        if let Some(s) = &self.severity {
            m.insert("severity".into(), s.clone());
        }
        put(&mut m, "request_id", &self.request_id);
        if let Some(c) = &self.changes {
            m.insert("changes".into(), Value::Object(c.clone()));
        }
        if let Some(c) = &self.metadata {
            m.insert("metadata".into(), Value::Object(c.clone()));
        }
        if let Some(s) = &self.source {
            let mut o = Map::new();
            put(&mut o, "service", &s.service);
            put(&mut o, "version", &s.version);
            put(&mut o, "instance", &s.instance);
            m.insert("source".into(), Value::Object(o));
        }
        StoredEvent {
            tenant_id: self.tenant_id.clone(),
            offset: self.offset,
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            body: Value::Object(m).to_string(),
            chain: None,
        }
    }

    /// 0–10 when the body holds a valid severity.
    pub fn severity(&self) -> Option<u64> {
        self.severity.as_ref().and_then(Value::as_u64).filter(|s| *s <= 10)
    }

    /// `occurred_at`, else `received_at`, in ms.
    pub fn time_ms(&self) -> Option<i64> {
        self.occurred_ms.or(self.received_ms)
    }
}

/// Text that is present and non-empty (the formats treat an empty string as absent).
pub fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Characters that break line formats or parsers, plus ordinary ones.
fn hostile_char() -> impl Strategy<Value = char> + Clone {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => Just(' '),
        3 => prop::sample::select(vec![
            '|', '\\', '=', '\r', '\n', '\t', '^', '\0', '"', '\'', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
            '\u{2028}', '\u{2029}', 'é', '€', '😀', '\u{FFFD}', '~', ';', ',', '@', '#', '%', '&', '.', '-', ':',
        ]),
        1 => any::<char>(),
    ]
}

/// Arbitrary strings, short and very long (across every cap: 40, 63, 255, 512, 1023 bytes).
pub fn hostile() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        12 => vec(hostile_char(), 0..24).prop_map(|v| v.into_iter().collect()),
        2 => vec(hostile_char(), 30..90).prop_map(|v| v.into_iter().collect()),
        1 => (vec(hostile_char(), 1..6), 200usize..1400).prop_map(|(unit, n)| {
            let unit: String = unit.into_iter().collect();
            unit.repeat(n / unit.chars().count().max(1) + 1).chars().take(n).collect()
        }),
    ]
}

fn opt<T: std::fmt::Debug + Clone>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)]
}

/// Event types: every OCSF class and activity rule, random valid types, and hostile ones.
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "auth.login", "auth.logout", "user.login_failed", "session.created", "session.expired", "auth.token_issued",
            "auth.failed", "auth.mfa_challenge", "user.created", "user.deleted", "account.locked", "user.unlocked",
            "password.changed", "password.reset", "mfa.enabled", "mfa.disabled", "role.assigned", "role.revoked",
            "user.enabled", "user.suspended", "doc.created", "doc.viewed", "doc.updated", "doc.deleted",
            "decision.rejected", "ping",
        ])
        .prop_map(String::from),
        2 => "[a-z0-9_-]{1,12}(\\.[a-z0-9_-]{1,12}){0,3}",
        1 => hostile(),
    ]
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        2 => any::<std::net::Ipv6Addr>().prop_map(|ip| ip.to_string()),
        1 => any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_ipv6_mapped().to_string()),
        1 => hostile(),
    ]
}

fn email() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z0-9._%+-]{1,10}@[a-z0-9-]{1,8}\\.[a-z]{2,4}",
        1 => hostile(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => hostile().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(
        hostile(),
        prop_oneof![
            3 => json_leaf(),
            1 => vec(json_leaf(), 0..3).prop_map(Value::Array),
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

pub fn gen_event() -> impl Strategy<Value = GenEvent> {
    // The earliest and latest instants RFC 3339 can write (years 0001 … 9999).
    let ms = -62_135_596_800_000i64..=253_402_300_799_999;
    let actor = (
        opt(hostile()),
        opt(prop_oneof![
            Just("user".to_string()),
            Just("admin".to_string()),
            Just("service".to_string()),
            hostile()
        ]),
        opt(hostile()),
        opt(email()),
        opt(ip()),
        opt(hostile()),
    )
        .prop_map(|(id, kind, name, email, ip_address, user_agent)| GenActor {
            id,
            kind,
            name,
            email,
            ip_address,
            user_agent,
        });
    let target = (
        opt(prop_oneof![
            Just("user".to_string()),
            Just("account".to_string()),
            hostile()
        ]),
        opt(hostile()),
        opt(hostile()),
    )
        .prop_map(|(kind, id, name)| GenTarget { kind, id, name });
    let source = (opt(hostile()), opt(hostile()), opt(hostile())).prop_map(|(service, version, instance)| GenSource {
        service,
        version,
        instance,
    });
    let severity = prop_oneof![
        6 => (0u64..=10).prop_map(Value::from),
        1 => (11u64..1000).prop_map(Value::from),
        1 => hostile().prop_map(Value::String),
    ];
    let outcome = prop_oneof![
        3 => prop::sample::select(vec!["success", "failure", "unknown"]).prop_map(String::from),
        1 => hostile(),
    ];
    (
        (
            hostile(),
            hostile(),
            event_type(),
            any::<u64>(),
            opt(ms.clone()),
            opt(ms),
        ),
        (
            opt(actor),
            opt(hostile()),
            opt(target),
            opt(outcome),
            opt(severity),
            opt(hostile()),
        ),
        (opt(json_object()), opt(json_object()), opt(source)),
    )
        .prop_map(
            |(
                (id, tenant_id, event_type, offset, occurred_ms, received_ms),
                (actor, action, target, outcome, severity, request_id),
                (changes, metadata, source),
            )| GenEvent {
                id,
                tenant_id,
                event_type,
                offset,
                occurred_ms,
                received_ms,
                actor,
                action,
                target,
                outcome,
                severity,
                request_id,
                changes,
                metadata,
                source,
            },
        )
}

/// Format options as a caller could build them by hand: hostile names, any delimiter (the
/// encoder must fall back from an invalid one), sometimes the defaults.
pub fn gen_options() -> impl Strategy<Value = FormatOptions> {
    let delimiter = prop_oneof![
        4 => prop::sample::select(LEEF_DELIMITERS.to_vec()),
        1 => hostile_char(),
    ];
    prop_oneof![
        1 => Just(FormatOptions::default()),
        3 => (hostile(), hostile(), hostile(), delimiter, hostile()).prop_map(
            |(vendor, product, product_version, leef_delimiter, ocsf_version)| FormatOptions {
                vendor,
                product,
                product_version,
                leef_delimiter,
                ocsf_version,
            }
        ),
    ]
}

/// An independent statement of the line formats' character rule: control characters and the
/// Unicode line/paragraph separators become U+FFFD.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The longest prefix of at most `max` UTF-8 bytes made of whole characters.
pub fn cap(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// The canonical form of an address the way `std` prints it (IPv4-mapped IPv6 as IPv4).
pub fn canonical_ip(s: &str) -> Option<std::net::IpAddr> {
    s.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Runs `cases` generated values through `test`, reporting the minimal failing input.
pub fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases,
        // Shrinking re-asks the peer many times; a bounded search still gives a small case.
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}
