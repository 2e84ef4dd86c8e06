//! A real embedded store in a temporary directory, sinks stored the way the server stores them
//! (a normalised `SinkSpec` as JSON, secrets sealed under the engine's keyring), and engines
//! started through the public API with the scripted sink factory.

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::{parse_request, BodyFormat, Limits};
use auditrelay_engine::spec::SinkSpec;
use auditrelay_engine::{Engine, EngineConfig, Keyring, SinkFactory};
use auditrelay_sinks::{Secrets, SinkEnv};
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::{Catalog, Cursors, DeadLetter, DeadLetters, EventLog, SinkRow, SinkStore, Store};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::journal::{Journal, JournalStore, LeaseMode};
use crate::scripted::{ScriptedSink, ScriptedSinks};

/// How long any awaited condition may take before the test fails. Generous: the machine is
/// shared, and a passing test never waits for it.
pub const DEADLINE: Duration = Duration::from_secs(10);
pub const TENANT: &str = "acme";

pub struct Harness {
    dir: TempDir,
    pub store: Arc<JournalStore>,
    pub journal: Arc<Journal>,
    pub sinks: Arc<ScriptedSinks>,
    keyring: Keyring,
    exclusive_leases: bool,
}

fn open(dir: &TempDir, journal: &Arc<Journal>, exclusive_leases: bool) -> Arc<JournalStore> {
    let sqlite = SqliteStore::open(dir.path(), None).expect("open the embedded store");
    let mode = if exclusive_leases {
        LeaseMode::Exclusive
    } else {
        LeaseMode::Inner
    };
    Arc::new(JournalStore::new(Arc::new(sqlite), journal.clone(), mode))
}

impl Harness {
    /// A fresh store with the tenant [`TENANT`].
    pub async fn new() -> Harness {
        Self::build(false).await
    }

    /// Like [`new`](Self::new), with leases that one engine at a time holds (as on PostgreSQL).
    pub async fn with_exclusive_leases() -> Harness {
        Self::build(true).await
    }

    async fn build(exclusive_leases: bool) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = Arc::new(Journal::default());
        let store = open(&dir, &journal, exclusive_leases);
        store.create_tenant(TENANT, "Acme").await.expect("create tenant");
        Harness {
            dir,
            store,
            sinks: Arc::new(ScriptedSinks::new(journal.clone())),
            journal,
            keyring: Keyring::new(&[7u8; 32]),
            exclusive_leases,
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn config(&self, factory: Arc<dyn SinkFactory>) -> EngineConfig {
        EngineConfig {
            env: SinkEnv::default(),
            keyring: self.keyring.clone(),
            delivery_log_retention: Duration::from_secs(3600),
            sink_factory: Some(factory),
        }
    }

    /// An engine over this store whose sinks are the scripted ones.
    pub fn engine(&self) -> Engine {
        Engine::start(self.store(), self.config(self.sinks.clone()))
    }

    /// The store as a restarted process finds it: closed (queued writes finished) and opened
    /// again from the data dir. The journal carries on.
    pub async fn reopen(&mut self) {
        self.store.close().await;
        self.store = open(&self.dir, &self.journal, self.exclusive_leases);
    }

    /// Appends `n` events to `tenant` in one request; returns their offsets.
    pub async fn append(&self, tenant: &str, n: usize) -> RangeInclusive<u64> {
        let body = Value::Array(
            (0..n)
                .map(|i| json!({"type": "user.login", "action": format!("a{i}")}))
                .collect(),
        );
        let events = parse_request(body.to_string().as_bytes(), BodyFormat::Json, &Limits::default())
            .expect("valid test events")
            .into_iter()
            .map(|p| p.into_new_event(tenant.to_owned(), &auditrelay_core::time::now_rfc3339()))
            .collect();
        let out = self.store.append(events).await.expect("append");
        let first = out.first().expect("appended events").offset;
        let last = out.last().expect("appended events").offset;
        first..=last
    }

    /// Stores a sink as `POST /v1/sinks` would: the body is `base_body()` merged with
    /// `overrides`, over the defaults of `SinkSpec::with_defaults`, secrets sealed for its id.
    pub async fn create_sink(&self, overrides: Value) -> (SinkRow, Arc<ScriptedSink>) {
        let mut spec = serde_json::to_value(SinkSpec::with_defaults("scripted", "webhook", "json")).expect("a spec");
        merge(&mut spec, base_body());
        merge(&mut spec, overrides);
        let spec = SinkSpec::from_stored(&spec.to_string()).expect("a valid sink definition");
        spec.check(&["json"]).expect("a valid sink definition");
        let id = auditrelay_core::ids::new_prefixed_id("snk");
        let mut secrets = Secrets::new();
        secrets.insert("signing_secret".into(), format!("whsec_{id}"));
        let now = auditrelay_core::time::now_rfc3339();
        let row = SinkRow {
            sealed_secrets: self.keyring.seal(&id, &secrets).expect("seal secrets"),
            id: id.clone(),
            owner_tenant: None,
            spec: serde_json::to_string(&spec).expect("spec as JSON"),
            paused: false,
            pause_reason: None,
            created_at: now.clone(),
            updated_at: now,
            revision: 1,
        };
        let sink = self.sinks.register(&id);
        self.store.create_sink(row.clone()).await.expect("create sink");
        (row, sink)
    }

    pub async fn row(&self, id: &str) -> SinkRow {
        self.store.sink(id).await.expect("read sink").expect("the sink exists")
    }

    pub async fn cursor(&self, id: &str, tenant: &str) -> Option<u64> {
        self.store.cursor(id, tenant).await.expect("read cursor")
    }

    pub async fn dead_letters(&self, id: &str) -> Vec<DeadLetter> {
        self.store
            .list_dead_letters(id, None, 1000)
            .await
            .expect("list dead letters")
    }

    /// Waits until the committed cursor reaches `at` (or beyond).
    pub async fn wait_cursor(&self, id: &str, tenant: &str, at: u64) {
        let reached = tokio::time::timeout(DEADLINE, async {
            while self.cursor(id, tenant).await.is_none_or(|c| c < at) {
                // Cursor commits have no signal of their own: poll.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .is_ok();
        assert!(
            reached,
            "timed out waiting for the cursor of {id}/{tenant} to reach {at}: cursor {:?}, row {:?}, \
             calls {:#?}, journal {:#?}",
            self.cursor(id, tenant).await,
            self.store.sink(id).await,
            self.sinks.calls_of(id),
            self.journal.entries()
        );
    }

    /// Waits until the stored row says paused.
    pub async fn wait_paused(&self, id: &str) -> SinkRow {
        eventually(
            "the sink to be paused",
            move || async move { self.row(id).await.paused },
        )
        .await;
        self.row(id).await
    }
}

/// A sink definition with small timings, so the crate's tests stay fast: no flush wait, tiny
/// backoffs, a breaker that does not trip unless a test asks for it.
pub fn base_body() -> Value {
    json!({
        "name": "scripted",
        "kind": "webhook",
        "config": {"url": "https://receiver.example/hook"},
        "start_at": "earliest",
        "batch": {"max_events": 10, "flush_interval_ms": 0},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 1, "max_backoff_ms": 5},
        "breaker": {"failure_threshold": 1000, "cooldown_ms": 100},
        "timeout_ms": 5000,
        "max_in_flight": 1,
    })
}

/// Objects merge key by key; anything else replaces.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Polls a store-side condition (cursors, pauses and dead letters have no notification) every
/// 5 ms until it holds; panics naming `what` after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
