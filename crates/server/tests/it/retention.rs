#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Retention with a fake clock (docs/retention.md): the server runs in this process with a
//! clock the test moves forward by months, so "90 days later" takes a millisecond.
//!
//! * archived events vanish from `GET /v1/events` and `/v1/stream` but stay in the export;
//! * the purge deletes what is past the window, never what an enabled sink still owes (its
//!   cursor, or a dead letter's range) until the hard limit, records a `retention.purged`
//!   event, and leaves a signed checkpoint from which `auditrelay verify` checks the rest.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::time::FakeClock;
use auditrelay_server::config::ServeArgs;
use auditrelay_server::{Hooks, Running};
use common::receiver::{Fault, Receiver};
use common::{assert_error, send, send_text, ADMIN_TOKEN};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(24 * 3600);

struct InProcess {
    base: String,
    http: reqwest::Client,
    clock: Arc<FakeClock>,
    running: Running,
    shutdown: CancellationToken,
    server: std::thread::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start() -> InProcess {
        InProcess::start_on(None).await
    }

    /// `database_url`: `None` = the embedded SQLite log.
    async fn start_on(database_url: Option<String>) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, format!("admin_token = \"{ADMIN_TOKEN}\"\n")).unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.path().join("data")),
            database_url,
            config: Some(config),
            allow_private_networks: Some(true),
            // Passes run when the test says so, not on a timer.
            retention_interval_secs: Some(3600),
            log: "warn".into(),
            ..Default::default()
        };
        let clock = Arc::new(FakeClock::new());
        let shutdown = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let hooks = Hooks {
            clock: Some(clock.clone()),
            on_listening: Some(tx),
            shutdown: Some(shutdown.clone()),
        };
        // Its own runtime on its own thread, as in the binary (serve's future is not Send).
        let server = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the server")
                .block_on(auditrelay_server::serve_with(args, hooks))
        });
        let running = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("the server did not start in 30 s")
            .expect("the server stopped before listening");
        InProcess {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            clock,
            running,
            shutdown,
            server,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        send(self.http.get(self.url(path)).bearer_auth(ADMIN_TOKEN)).await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        send(
            self.http
                .request(method, self.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body),
        )
        .await
    }

    async fn tenant(&self, id: &str) {
        let (status, body) = self
            .call(reqwest::Method::POST, "/v1/tenants", json!({ "id": id }))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn ingest(&self, tenant: &str, n: usize, tag: &str) {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({ "type": "user.login", "tenant_id": tenant, "id": format!("{tag}-{i}") }))
            .collect();
        let (status, body) = self
            .call(reqwest::Method::POST, "/v1/events", Value::Array(events))
            .await;
        assert_eq!(status, 202, "{body}");
    }

    async fn set_policy(&self, tenant: &str, policy: Value) -> Value {
        let (status, body) = self
            .call(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/retention"), policy)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn sink(&self, tenant: &str, name: &str, url: &str, retry: Value) -> String {
        let spec = json!({
            "name": name, "kind": "webhook", "tenant": tenant, "config": { "url": url },
            "start_at": "earliest", "batch": { "max_events": 100, "flush_interval_ms": 0 },
            "retry": retry, "on_exhausted": "dead_letter",
        });
        let (status, body) = self.call(reqwest::Method::POST, "/v1/sinks", spec).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Offsets the compliance export returns for a tenant (archived events included).
    async fn exported(&self, tenant: &str) -> Vec<u64> {
        let (status, text) = send_text(
            self.http
                .get(self.url(&format!("/v1/export?tenant={tenant}&format=ndjson")))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, 200);
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["offset"].as_u64().unwrap())
            .collect()
    }

    async fn purge(&self) -> Vec<auditrelay_server::retention::PurgeReport> {
        self.running
            .retention
            .purge_once(&CancellationToken::new())
            .await
            .expect("a purge pass")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let server = self.server;
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap()
            .expect("the server thread panicked")
            .expect("the server stopped with an error");
    }
}

fn offsets(events: &Value) -> Vec<u64> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect()
}

/// Waits (real time) until `check` holds for the sink's health.
async fn wait_health(s: &InProcess, sink: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, h) = s.get(&format!("/v1/sinks/{sink}/health")).await;
        if check(&h) {
            return h;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_events_leave_the_consume_routes_but_stay_in_the_export() {
    let s = InProcess::start().await;
    s.tenant("acme").await;
    s.tenant("other").await;
    let answer = s.set_policy("acme", json!({ "active_days": 30 })).await;
    assert_eq!(answer["policy"]["active_days"], 30, "{answer}");
    assert_eq!(answer["policy"]["auto_purge"], false, "{answer}");
    assert_eq!(answer["overrides"], json!({ "active_days": 30 }), "{answer}");

    s.ingest("acme", 5, "old").await;
    s.ingest("other", 5, "old").await;
    s.clock.advance(29 * DAY);
    let (_, page) = s.get("/v1/events?tenant=acme&after=0").await;
    assert_eq!(offsets(&page), [1, 2, 3, 4, 5], "still active on day 29: {page}");
    assert!(page.get("archived_through").is_none(), "{page}");

    s.clock.advance(2 * DAY); // day 31
    s.ingest("acme", 3, "new").await;
    let (status, page) = s.get("/v1/events?tenant=acme&after=0").await;
    assert_eq!(status, 200);
    assert_eq!(offsets(&page), [6, 7, 8], "{page}");
    assert_eq!(page["archived_through"], 5, "the jump is announced: {page}");
    assert_eq!(page["next_cursor"], 8);
    // A cursor already in the active window reads as before.
    let (_, page) = s.get("/v1/events?tenant=acme&after=6").await;
    assert_eq!(offsets(&page), [7, 8]);
    assert!(page.get("archived_through").is_none(), "{page}");
    // The default policy (90 days) still shows the other tenant's events.
    let (_, page) = s.get("/v1/events?tenant=other&after=0").await;
    assert_eq!(offsets(&page), [1, 2, 3, 4, 5], "{page}");

    // SSE from the start: the first event streamed is the first active one.
    let resp = s
        .http
        .get(s.url("/v1/stream?tenant=acme&after=0"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp;
    let mut text = String::new();
    while !text.contains("id: 8") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.chunk())
            .await
            .expect("SSE went quiet")
            .unwrap()
            .expect("SSE ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<&str> = text.lines().filter(|l| l.starts_with("id: ")).collect();
    assert_eq!(ids, ["id: 6", "id: 7", "id: 8"], "{text}");

    // Archive = still exported, still counted.
    assert_eq!(s.exported("acme").await, (1..=8).collect::<Vec<_>>());
    let (_, r) = s.get("/v1/tenants/acme/retention").await;
    assert_eq!(
        r["log"],
        json!({ "head": 8, "archived_through": 5, "purged_through": 0 }),
        "{r}"
    );

    // Tenant keys read their own policy, not another's, and cannot change it.
    let (status, key) = s
        .call(
            reqwest::Method::POST,
            "/v1/tenants/acme/keys",
            json!({ "name": "r", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap();
    let (status, own) = send(s.http.get(s.url("/v1/tenants/acme/retention")).bearer_auth(key)).await;
    assert_eq!((status, own["policy"]["active_days"].clone()), (200, json!(30)));
    let theirs = send(s.http.get(s.url("/v1/tenants/other/retention")).bearer_auth(key)).await;
    assert_error(&theirs, 404, "not_found");
    let put = send(
        s.http
            .put(s.url("/v1/tenants/acme/retention"))
            .bearer_auth(key)
            .json(&json!({ "active_days": 1 })),
    )
    .await;
    assert_error(&put, 403, "forbidden");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_validated_and_reset() {
    let s = InProcess::start().await;
    s.tenant("acme").await;
    let path = "/v1/tenants/acme/retention";
    for (body, field) in [
        (json!({ "active_days": 0 }), "active_days"),
        (json!({ "active_days": 40000 }), "active_days"),
        (json!({ "active_days": 30, "purge_after_days": 10 }), "purge_after_days"),
        (
            json!({ "purge_after_days": 100, "hard_limit_days": 50 }),
            "hard_limit_days",
        ),
        (json!({ "purge_after_days": 30 }), "purge_after_days"), // below the default 90 active
    ] {
        let got = s.call(reqwest::Method::PUT, path, body.clone()).await;
        assert_error(&got, 400, "invalid_request");
        assert_eq!(got.1["error"]["detail"]["field"], field, "{body}: {}", got.1);
    }
    let got = s.call(reqwest::Method::PUT, path, json!({ "keep": "forever" })).await;
    assert_eq!(got.0, 400, "{}", got.1);
    let got = s
        .call(reqwest::Method::PUT, "/v1/tenants/nope/retention", json!({}))
        .await;
    assert_error(&got, 404, "not_found");

    s.set_policy("acme", json!({ "active_days": 7, "auto_purge": true }))
        .await;
    let (status, r) = send(s.http.delete(s.url(path)).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["overrides"], Value::Null);
    assert_eq!(r["policy"], r["defaults"], "{r}");
    assert_eq!(r["policy"]["active_days"], 90);

    // Both changes are in the system trail.
    let (_, trail) = s.get("/v1/events?tenant=system&types=tenant.retention_updated").await;
    let changes: Vec<&Value> = trail["events"].as_array().unwrap().iter().collect();
    assert_eq!(changes.len(), 2, "{trail}");
    assert_eq!(changes[0]["metadata"]["overrides"]["active_days"], 7);
    assert_eq!(changes[1]["metadata"]["overrides"], Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_waits_for_sinks_until_the_hard_limit_and_leaves_a_verifiable_log() {
    purge_waits_for_sinks(InProcess::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_waits_for_sinks_on_postgres_too() {
    let db = common::pg::FreshDatabase::create("retention");
    purge_waits_for_sinks(InProcess::start_on(Some(db.url())).await).await;
}

async fn purge_waits_for_sinks(s: InProcess) {
    s.tenant("acme").await;
    s.set_policy(
        "acme",
        json!({ "active_days": 1, "auto_purge": true, "purge_after_days": 10, "hard_limit_days": 20 }),
    )
    .await;
    let up = Receiver::start().await;
    let down = Receiver::start().await;
    down.set_default(Some(Fault::status(503)));
    let delivered = s
        .sink(
            "acme",
            "up",
            &up.url(),
            json!({ "max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 20 }),
        )
        .await;
    let owing = s
        .sink(
            "acme",
            "down",
            &down.url(),
            json!({ "max_attempts": 100, "initial_backoff_ms": 1000, "max_backoff_ms": 2000 }),
        )
        .await;
    s.ingest("acme", 10, "a").await;
    assert!(
        up.wait_for(10, Duration::from_secs(30)).await,
        "the healthy sink delivers"
    );
    wait_health(&s, &delivered, "the healthy sink commits", |h| h["lag"] == 0).await;
    wait_health(&s, &owing, "the dead SIEM is retried", |h| {
        h["consecutive_failures"].as_u64().unwrap_or(0) >= 1
    })
    .await;

    // Day 11: past purge_after, but the "down" sink has delivered nothing.
    s.clock.advance(11 * DAY);
    assert_eq!(s.purge().await, vec![], "nothing may go while a sink owes it");
    assert_eq!(s.exported("acme").await.len(), 10);

    // Day 21: past the hard limit, the events go anyway, and the trail names the sink.
    s.clock.advance(10 * DAY);
    s.ingest("acme", 2, "b").await; // offsets 11, 12: young, kept
    let reports = s.purge().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!((r.tenant.as_str(), r.from, r.through), ("acme", 1, 10), "{r:?}");
    assert_eq!(r.forced, vec![(owing.clone(), 1)], "{r:?}");
    assert_eq!(s.exported("acme").await, [11, 12]);
    let (_, retention) = s.get("/v1/tenants/acme/retention").await;
    assert_eq!(retention["log"]["purged_through"], 10, "{retention}");

    let (_, metrics) = send_text(s.http.get(s.url("/metrics"))).await;
    for line in [
        "auditrelay_retention_purged_events_total{tenant=\"acme\"} 10",
        "auditrelay_retention_forced_purges_total{tenant=\"acme\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in /metrics:\n{metrics}");
    }

    let (_, trail) = s.get("/v1/events?tenant=system&types=retention.purged").await;
    let purged = &trail["events"][0];
    assert_eq!(purged["actor"]["type"], "system", "{trail}");
    assert_eq!(purged["target"]["id"], "acme");
    assert_eq!(purged["metadata"]["from_offset"], 1);
    assert_eq!(purged["metadata"]["through_offset"], 10);
    assert_eq!(purged["metadata"]["events"], 10);
    assert_eq!(
        purged["metadata"]["forced_past_hard_limit"],
        json!([{ "sink": owing, "first_undelivered_offset": 1 }])
    );

    // The log left behind verifies from the checkpoint signed at the purge boundary.
    let (_, cps) = s.get("/v1/integrity/checkpoints?tenant=acme").await;
    let at: Vec<u64> = cps["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["offset"].as_u64().unwrap())
        .collect();
    assert!(at.contains(&10), "a checkpoint at the boundary: {cps}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .args(["verify", "--url", &s.base, "--token", ADMIN_TOKEN, "--tenant", "acme"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("offsets 11..12"), "{text}");

    // The next forced pass reports only what it took: from 11, not again from 1.
    s.clock.advance(21 * DAY);
    let reports = s.purge().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!((reports[0].from, reports[0].through), (11, 12));
    assert_eq!(reports[0].forced, vec![(owing.clone(), 11)]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_their_range_until_retried_or_deleted() {
    let s = InProcess::start().await;
    s.tenant("acme").await;
    s.set_policy(
        "acme",
        json!({ "active_days": 1, "auto_purge": true, "purge_after_days": 5, "hard_limit_days": 100 }),
    )
    .await;
    let refusing = Receiver::start().await;
    refusing.set_default(Some(Fault::status(400)));
    let sink = s
        .sink("acme", "refusing", &refusing.url(), json!({ "max_attempts": 1 }))
        .await;
    s.ingest("acme", 4, "a").await;
    wait_health(&s, &sink, "the refused batch is dead-lettered", |h| {
        h["dead_letters"].as_u64().unwrap_or(0) >= 1 && h["lag"] == 0
    })
    .await;
    s.clock.advance(6 * DAY);
    assert_eq!(s.purge().await, vec![], "the dead letter names offsets 1..4");
    assert_eq!(s.exported("acme").await, [1, 2, 3, 4]);

    let (_, dls) = s.get(&format!("/v1/sinks/{sink}/dead-letters")).await;
    for dl in dls["items"].as_array().unwrap() {
        let id = dl["id"].as_str().unwrap();
        let resp = s
            .http
            .delete(s.url(&format!("/v1/sinks/{sink}/dead-letters/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let reports = s.purge().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!((reports[0].from, reports[0].through), (1, 4));
    assert!(reports[0].forced.is_empty(), "{reports:?}");
    assert!(s.exported("acme").await.is_empty());
    s.stop().await;
}
