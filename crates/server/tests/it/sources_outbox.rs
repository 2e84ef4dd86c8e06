//! The transactional-outbox sources against the real PostgreSQL and MariaDB on this machine:
//! concurrent writer transactions (some rolled back) with interleaved commit orders, a SIGKILL of
//! auditrelay mid-stream, malformed rows moved aside, and definitions refused at save time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::common::pg::FreshDatabase;
use crate::common::private_db::{PrivateMariadb, PrivatePostgres};
use crate::common::TestServer;
use crate::sources_api::{create, wait_health};

const WRITERS: usize = 10;
const ROWS_PER_WRITER: usize = 1_000;
const ROWS_PER_TX: usize = 25;

/// A MariaDB database of its own (127.0.0.1:3306, root, empty password), dropped at the end.
struct FreshMysql {
    name: String,
}

static MY_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The shared MariaDB this machine runs (127.0.0.1:3306).
fn mysql_cli(sql: &str) -> Result<String, String> {
    crate::common::private_db::mysql_cli(3306, sql)
}

impl FreshMysql {
    fn create(label: &str) -> FreshMysql {
        let name = format!(
            "ar_itest_{label}_{}_{}",
            std::process::id(),
            MY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        mysql_cli(&format!("CREATE DATABASE `{name}`"))
            .unwrap_or_else(|e| panic!("MariaDB is not reachable at 127.0.0.1:3306 ({e})"));
        FreshMysql { name }
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }
}

impl Drop for FreshMysql {
    fn drop(&mut self) {
        let _ = mysql_cli(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

/// What runs while a transaction is open, between its inserts and its COMMIT (or ROLLBACK):
/// another transaction of the same writer, or the database's crash.
type During<'a> = Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>>;

/// A pool on the test's database, and what keeps that database alive.
enum Db {
    // The third field is held only for its `Drop`, which drops the test's database.
    Pg(PgPool, String, #[allow(dead_code)] Option<FreshDatabase>),
    My(MySqlPool, String, #[allow(dead_code)] Option<FreshMysql>),
}

const PG_SCHEMA: &[&str] = &[
    "CREATE TABLE audit_outbox (id bigserial PRIMARY KEY, tenant text, event jsonb NOT NULL)",
    "CREATE FUNCTION audit_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS \
     $$BEGIN PERFORM pg_notify('audit_outbox', ''); RETURN NULL; END$$",
    "CREATE TRIGGER audit_outbox_notify AFTER INSERT ON audit_outbox \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_outbox_notify()",
    // Which writer transactions committed: written in the same transaction as their rows, never
    // read by the relay, so it tells the truth even when a COMMIT's answer was lost to a crash.
    "CREATE TABLE tx_done (tx bigint PRIMARY KEY)",
];

const MYSQL_SCHEMA: &[&str] = &[
    "CREATE TABLE audit_outbox (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant VARCHAR(64), event JSON NOT NULL)",
    "CREATE TABLE tx_done (tx BIGINT PRIMARY KEY)",
];

impl Db {
    async fn postgres(label: &str) -> Db {
        let fresh = FreshDatabase::create(label);
        let url = fresh.url();
        Db::postgres_at(url, Some(fresh)).await
    }

    async fn postgres_at(url: String, fresh: Option<FreshDatabase>) -> Db {
        let pool = PgPoolOptions::new().max_connections(24).connect(&url).await.unwrap();
        for sql in PG_SCHEMA {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Db::Pg(pool, url, fresh)
    }

    async fn mysql(label: &str) -> Db {
        let fresh = FreshMysql::create(label);
        let url = fresh.url();
        Db::mysql_at(url, Some(fresh)).await
    }

    async fn mysql_at(url: String, fresh: Option<FreshMysql>) -> Db {
        let pool = MySqlPoolOptions::new().max_connections(24).connect(&url).await.unwrap();
        for sql in MYSQL_SCHEMA {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Db::My(pool, url, fresh)
    }

    fn kind(&self) -> &'static str {
        match self {
            Db::Pg(..) => "postgres_outbox",
            Db::My(..) => "mysql_outbox",
        }
    }

    fn url(&self) -> String {
        match self {
            Db::Pg(_, url, _) | Db::My(_, url, _) => url.clone(),
        }
    }

    async fn count(&self) -> i64 {
        match self {
            Db::Pg(p, ..) => sqlx::query_scalar("SELECT count(*) FROM audit_outbox")
                .fetch_one(p)
                .await
                .unwrap(),
            Db::My(p, ..) => sqlx::query_scalar("SELECT count(*) FROM audit_outbox")
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }

    /// The writer transactions that committed (their ids in `tx_done`).
    async fn committed_txs(&self) -> BTreeSet<i64> {
        let ids: Vec<i64> = match self {
            Db::Pg(p, ..) => sqlx::query_scalar("SELECT tx FROM tx_done").fetch_all(p).await.unwrap(),
            Db::My(p, ..) => sqlx::query_scalar("SELECT tx FROM tx_done").fetch_all(p).await.unwrap(),
        };
        ids.into_iter().collect()
    }

    /// Inserts rows one transaction at a time; `commit` decides each transaction's fate.
    async fn insert_tx(&self, rows: &[(Option<&str>, String)], commit: bool) {
        self.try_insert_tx(rows, None, None, commit).await.unwrap()
    }

    /// As `insert_tx`, recording `tx` in `tx_done` inside the same transaction; errors (the
    /// database went away) are returned, not raised.
    async fn try_insert_tx(
        &self,
        rows: &[(Option<&str>, String)],
        tx: Option<i64>,
        during: During<'_>,
        commit: bool,
    ) -> Result<(), sqlx::Error> {
        macro_rules! tx {
            ($pool:expr, $sql:expr, $done:expr) => {{
                let mut t = $pool.begin().await?;
                for (tenant, event) in rows {
                    sqlx::query($sql)
                        .bind(*tenant)
                        .bind(event)
                        .execute(&mut *t)
                        .await?;
                }
                if let Some(tx) = tx {
                    sqlx::query($done).bind(tx).execute(&mut *t).await?;
                }
                if let Some(during) = during {
                    during.await;
                }
                if commit {
                    t.commit().await
                } else {
                    t.rollback().await
                }
            }};
        }
        match self {
            Db::Pg(p, ..) => tx!(
                p,
                "INSERT INTO audit_outbox (tenant, event) VALUES ($1, $2::jsonb)",
                "INSERT INTO tx_done (tx) VALUES ($1)"
            ),
            Db::My(p, ..) => tx!(
                p,
                "INSERT INTO audit_outbox (tenant, event) VALUES (?, ?)",
                "INSERT INTO tx_done (tx) VALUES (?)"
            ),
        }
    }
}

fn outbox_body(db: &Db, tenant: &str) -> Value {
    let mut config = json!({"table": "audit_outbox", "id_column": "id", "event_column": "event", "batch_size": 500, "poll_interval_ms": 100});
    if matches!(db, Db::Pg(..)) {
        config["notify_channel"] = json!("audit_outbox");
    }
    json!({"name": "outbox", "kind": db.kind(), "tenant": tenant, "config": config, "secrets": {"database_url": db.url()}})
}

/// Writer `w`'s transaction `t`: its id (recorded in `tx_done`), whether it commits (every fifth
/// rolls back), and its rows, each event carrying its number `n` = id + row.
fn writer_tx(w: usize, t: usize) -> (i64, bool, Vec<(Option<&'static str>, String)>) {
    let tx = (w * ROWS_PER_WRITER + t * ROWS_PER_TX) as i64;
    let rows = (0..ROWS_PER_TX as i64)
        .map(|i| {
            (
                None,
                json!({"type": "order.placed", "metadata": {"n": tx + i}}).to_string(),
            )
        })
        .collect();
    (tx, !(w + t).is_multiple_of(5), rows)
}

/// Writer `w`'s transactions `t` and `t + 1`, interleaved so that commit order differs from id
/// order every time: `t + 1` is opened, written and finished while `t` (the lower ids) is still
/// open. Returns each transaction's id, whether it was to commit, and how it ended.
async fn write_pair(db: &Db, w: usize, t: usize) -> [(i64, bool, Result<(), sqlx::Error>); 2] {
    let (first, first_commits, first_rows) = writer_tx(w, t);
    let (second, second_commits, second_rows) = writer_tx(w, t + 1);
    let mut second_ended = Ok(());
    let first_ended = {
        let during: During<'_> = Some(Box::pin(async {
            second_ended = db.try_insert_tx(&second_rows, Some(second), None, second_commits).await;
        }));
        db.try_insert_tx(&first_rows, Some(first), during, first_commits).await
    };
    [
        (first, first_commits, first_ended),
        (second, second_commits, second_ended),
    ]
}

/// 10 writers, 1,000 rows each in transactions of 25, written in interleaved pairs (see
/// `write_pair`); every fifth transaction rolls back. Returns the committed `n`s.
async fn write_concurrently(db: &Db) -> BTreeSet<u64> {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        tasks.push(async move {
            let mut committed = BTreeSet::new();
            for t in (0..ROWS_PER_WRITER / ROWS_PER_TX).step_by(2) {
                for (tx, commits, ended) in write_pair(db, w, t).await {
                    ended.unwrap();
                    if commits {
                        committed.extend((0..ROWS_PER_TX as u64).map(|i| tx as u64 + i));
                    }
                }
            }
            committed
        });
    }
    let mut all = BTreeSet::new();
    for set in futures::future::join_all(tasks).await {
        all.extend(set);
    }
    all
}

async fn wait_drained(s: &TestServer, db: &Db, tenant: &str, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = s.read_log(tenant).await;
        let left = db.count().await;
        if log.len() >= expected && left == 0 {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {} events of {expected}, {left} rows left",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn exactly_once_with_kill(db: Db) {
    let mut s = TestServer::spawn();
    s.create_tenant("acme").await;
    let (status, created) = create(&s, &outbox_body(&db, "acme")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["secrets_set"], json!(["database_url"]));
    assert!(
        !created.to_string().contains("127.0.0.1:"),
        "the URL is echoed: {created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let writers = write_concurrently(&db);
    let killer = async {
        // SIGKILL once the relay is mid-stream, then start again on the same data dir.
        wait_health(&s, &id, "relaying", |h| h["appended"].as_u64().unwrap_or(0) >= 500).await;
        s.kill_9().await;
        s.restart();
    };
    let (committed, ()) = tokio::join!(writers, killer);
    let log = wait_drained(&s, &db, "acme", committed.len()).await;
    let elapsed = started.elapsed();

    let mut seen = BTreeSet::new();
    for e in &log {
        assert_eq!(e["type"], "order.placed", "{e}");
        assert!(e["id"].as_str().unwrap().starts_with(&format!("{id}:")), "{e}");
        let n = e["metadata"]["n"].as_u64().unwrap();
        assert!(seen.insert(n), "row {n} became two events");
    }
    assert_eq!(seen, committed, "exactly the committed rows, once each");
    assert_eq!(log.len(), committed.len());
    assert!(
        committed.len() < WRITERS * ROWS_PER_WRITER,
        "some transactions rolled back"
    );
    println!(
        "{}: {} rows relayed end to end in {:.1?} ({:.0} rows/s, a SIGKILL included)",
        db.kind(),
        committed.len(),
        elapsed,
        committed.len() as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outbox_exactly_once_under_concurrent_writers_and_sigkill() {
    exactly_once_with_kill(Db::postgres("outbox").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_outbox_exactly_once_under_concurrent_writers_and_sigkill() {
    exactly_once_with_kill(Db::mysql("outbox").await).await;
}

/// A database of the test's own, crashed and restarted under the relay.
enum Private {
    Pg(PrivatePostgres),
    My(PrivateMariadb),
}

impl Private {
    fn crash(&mut self) {
        match self {
            Private::Pg(p) => p.crash(),
            Private::My(m) => m.crash(),
        }
    }

    fn restart(&mut self) {
        match self {
            Private::Pg(p) => p.restart(),
            Private::My(m) => m.restart(),
        }
    }

    fn recovered_from_a_crash(&self) -> bool {
        match self {
            Private::Pg(p) => p.recovered_from_a_crash(),
            Private::My(m) => m.recovered_from_a_crash(),
        }
    }
}

/// Writers (as in `write_concurrently`) whose transactions may die with the database: each
/// writes half its transactions, waits for `crash` (sent just before the database is crashed) and
/// writes the other half into the crash; a transaction that fails waits for the database to be
/// back and the writer goes on with its next one. Which transactions committed is read from
/// `tx_done` afterwards, so a COMMIT whose answer was lost is still counted right.
async fn write_through_a_crash(
    db: &Db,
    crash: &tokio::sync::watch::Sender<bool>,
    up: &tokio::sync::watch::Sender<bool>,
) -> usize {
    const TXS: usize = ROWS_PER_WRITER / ROWS_PER_TX;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (mut crash, mut up) = (crash.subscribe(), up.subscribe());
        tasks.push(async move {
            let mut failed = 0usize;
            for t in (0..TXS).step_by(2) {
                if t == TXS / 2 {
                    crash.wait_for(|c| *c).await.expect("the test holds the sender");
                }
                let died = write_pair(db, w, t)
                    .await
                    .iter()
                    .filter(|(_, _, ended)| ended.is_err())
                    .count();
                if died > 0 {
                    failed += died;
                    up.wait_for(|up| *up).await.expect("the test holds the sender");
                }
            }
            failed
        });
    }
    futures::future::join_all(tasks).await.into_iter().sum()
}

/// The id of the test's own transaction that is open when the database crashes.
const DOOMED_TX: i64 = 1_000_000;

/// Every row of a transaction that committed, by the `n` its events carry.
fn rows_of(txs: &BTreeSet<i64>) -> BTreeSet<u64> {
    txs.iter()
        .flat_map(|tx| (0..ROWS_PER_TX as u64).map(move |i| *tx as u64 + i))
        .collect()
}

async fn exactly_once_across_a_database_crash(mut private: Private, url: String) {
    let db = match &private {
        Private::Pg(_) => Db::postgres_at(url, None).await,
        Private::My(_) => Db::mysql_at(url, None).await,
    };
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let (status, created) = create(&s, &outbox_body(&db, "acme")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let (up, _) = tokio::sync::watch::channel(true);
    let (crash, _) = tokio::sync::watch::channel(false);
    let writers = write_through_a_crash(&db, &crash, &up);
    let crasher = async {
        wait_health(&s, &id, "relaying", |h| h["appended"].as_u64().unwrap_or(0) >= 500).await;
        up.send_replace(false);
        crash.send_replace(true);
        // A transaction of the test's own is open (its rows inserted) when the database dies:
        // its COMMIT fails, and none of its rows may ever become an event.
        let doomed: Vec<(Option<&str>, String)> = (0..ROWS_PER_TX as u64)
            .map(|i| {
                (
                    None,
                    json!({"type": "order.placed", "metadata": {"n": DOOMED_TX as u64 + i}}).to_string(),
                )
            })
            .collect();
        let crash_now: During<'_> = Some(Box::pin(async { tokio::task::block_in_place(|| private.crash()) }));
        let died = db.try_insert_tx(&doomed, Some(DOOMED_TX), crash_now, true).await;
        assert!(died.is_err(), "a COMMIT after the crash succeeded");
        let down = wait_health(&s, &id, "the relay noticing the crash", |h| h["state"] == "failed").await;
        assert!(down["last_error"].is_string(), "{down}");
        tokio::task::block_in_place(|| private.restart());
        up.send_replace(true);
        wait_health(&s, &id, "the relay running again", |h| h["state"] == "running").await;
    };
    let (failed_txs, ()) = tokio::join!(writers, crasher);
    assert!(private.recovered_from_a_crash(), "the database ran crash recovery");

    let committed_txs = db.committed_txs().await;
    assert!(
        !committed_txs.contains(&DOOMED_TX),
        "the transaction open at the crash committed"
    );
    let committed = rows_of(&committed_txs);
    let log = wait_drained(&s, &db, "acme", committed.len()).await;
    let mut seen = BTreeSet::new();
    for e in &log {
        let n = e["metadata"]["n"].as_u64().unwrap();
        assert!(seen.insert(n), "row {n} became two events");
    }
    assert_eq!(seen, committed, "exactly the committed rows, once each");
    assert!(
        committed.len() < WRITERS * ROWS_PER_WRITER,
        "some transactions rolled back"
    );
    let health = wait_health(&s, &id, "lag back to zero", |h| h["lag"] == 0).await;
    assert_eq!(health["appended"].as_u64(), Some(committed.len() as u64), "{health}");
    println!(
        "{}: {} committed rows arrived once each across a database crash ({failed_txs} writer transactions died with it)",
        db.kind(),
        committed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outbox_exactly_once_across_a_database_crash_and_restart() {
    let pg = PrivatePostgres::start();
    let url = pg.url();
    exactly_once_across_a_database_crash(Private::Pg(pg), url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_outbox_exactly_once_across_a_database_crash_and_restart() {
    let my = PrivateMariadb::start();
    let url = my.url();
    exactly_once_across_a_database_crash(Private::My(my), url).await;
}

/// `lag` is the number of committed rows waiting: counted when the relay finds a backlog,
/// counted down as batches go, zero once drained.
async fn lag_counts_the_rows_waiting(db: Db) {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    const ROWS: usize = 600;
    let mut body = outbox_body(&db, "acme");
    body["config"]["batch_size"] = json!(1);
    // Created on the empty table (a create answers once the source has drained what is there).
    let (status, created) = create(&s, &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    wait_health(&s, &id, "an idle relay", |h| h["lag"] == 0).await;
    let rows: Vec<(Option<&str>, String)> = (0..ROWS)
        .map(|n| (None, json!({"type": "order.placed", "metadata": {"n": n}}).to_string()))
        .collect();
    db.insert_tx(&rows, true).await;
    // One row per batch, each batch an fsync'd append: the backlog takes many health reads.
    let seen = std::sync::Mutex::new(Vec::new());
    wait_health(&s, &id, "the backlog drained", |h| {
        let Some(lag) = h["lag"].as_u64() else { return false };
        seen.lock().unwrap().push(lag);
        lag == 0 && h["appended"] == ROWS as u64
    })
    .await;
    let seen = seen.into_inner().unwrap();
    let backlog: Vec<u64> = seen.iter().copied().filter(|l| *l > 0).collect();
    assert!(!backlog.is_empty(), "a backlog was never reported: {seen:?}");
    assert!(backlog.iter().all(|l| *l <= ROWS as u64), "{seen:?}");
    assert!(
        backlog.windows(2).all(|w| w[1] <= w[0]),
        "no rows were added, so the count only goes down: {seen:?}"
    );
    assert_eq!(db.count().await, 0);
}

#[tokio::test]
async fn postgres_outbox_lag_counts_the_rows_waiting() {
    lag_counts_the_rows_waiting(Db::postgres("outbox_lag").await).await;
}

#[tokio::test]
async fn mysql_outbox_lag_counts_the_rows_waiting() {
    lag_counts_the_rows_waiting(Db::mysql("outbox_lag").await).await;
}

async fn malformed_rows_moved_aside(db: Db) {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let mut body = outbox_body(&db, "acme");
    body["config"]["tenant_column"] = json!("tenant");
    body.as_object_mut().unwrap().remove("tenant");
    let (status, created) = create(&s, &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let rows: Vec<(Option<&str>, String)> = vec![
        (
            Some("acme"),
            json!({"type": "user.login", "metadata": {"n": 1}}).to_string(),
        ),
        (Some("acme"), json!({"type": "NOT A TYPE"}).to_string()),
        (Some("acme"), json!([1, 2]).to_string()),
        (Some("nosuch"), json!({"type": "user.login"}).to_string()),
        (
            Some("acme"),
            json!({"type": "user.logout", "metadata": {"n": 2}}).to_string(),
        ),
    ];
    db.insert_tx(&rows, true).await;
    let health = wait_health(&s, &id, "five rows relayed", |h| {
        h["received"] == 5 && h["malformed"] == 3
    })
    .await;
    assert!(health["last_error"].as_str().unwrap().starts_with("row "), "{health}");
    let log = wait_drained(&s, &db, "acme", 4).await;
    let types: Vec<&str> = log.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["user.login", "outbox.malformed", "outbox.malformed", "user.logout"]
    );
    let reasons: Vec<&str> = log[1..3]
        .iter()
        .map(|e| e["metadata"]["outbox"]["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("type"), "{reasons:?}");
    assert!(reasons[1].contains("not a JSON object"), "{reasons:?}");
    // A row naming a tenant that does not exist (and no source tenant): kept in the system log.
    let system: Vec<Value> = s
        .read_log("system")
        .await
        .into_iter()
        .filter(|e| e["type"] == "outbox.malformed")
        .collect();
    assert_eq!(system.len(), 1, "{system:?}");
    let reason = system[0]["metadata"]["outbox"]["reason"].as_str().unwrap();
    assert!(reason.contains("nosuch"), "{reason}");
    assert!(log[1]["metadata"]["outbox"]["row_id"].is_u64());
}

#[tokio::test]
async fn postgres_outbox_malformed_rows_are_moved_aside_without_blocking() {
    malformed_rows_moved_aside(Db::postgres("outbox_bad").await).await;
}

#[tokio::test]
async fn mysql_outbox_malformed_rows_are_moved_aside_without_blocking() {
    malformed_rows_moved_aside(Db::mysql("outbox_bad").await).await;
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_field() {
    let s = TestServer::spawn();
    s.create_tenant("acme").await;
    let pg = Db::postgres("outbox_def").await;
    let my = Db::mysql("outbox_def").await;
    let check = |got: (u16, Value), field: &str| {
        assert_eq!(got.0, 400, "{field}: {}", got.1);
        assert_eq!(got.1["error"]["detail"]["field"], field, "{}", got.1);
        got.1
    };
    let with = |db: &Db, f: &dyn Fn(&mut Value)| {
        let mut b = outbox_body(db, "acme");
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&pg, &|b| {
                b["config"].as_object_mut().unwrap().remove("event_column");
            }),
            "config.event_column",
        ),
        (
            with(&pg, &|b| b["config"]["table"] = json!("audit_outbox; DROP TABLE x")),
            "config.table",
        ),
        (
            with(&pg, &|b| b["config"]["id_column"] = json!("id\"--")),
            "config.id_column",
        ),
        (
            with(&pg, &|b| b["config"]["table"] = json!("no_such_table")),
            "config.table",
        ),
        (
            with(&pg, &|b| b["config"]["after_append"] = json!("mark")),
            "config.mark_column",
        ),
        (
            with(&pg, &|b| {
                b.as_object_mut().unwrap().remove("tenant");
            }),
            "tenant",
        ),
        (
            with(&pg, &|b| {
                b.as_object_mut().unwrap().remove("secrets");
            }),
            "secrets.database_url",
        ),
        (
            with(&my, &|b| b["config"]["notify_channel"] = json!("x")),
            "config.notify_channel",
        ),
        (
            with(&my, &|b| b["config"]["batch_size"] = json!(0)),
            "config.batch_size",
        ),
    ];
    for (body, field) in cases {
        check(create(&s, &body).await, field);
    }
    // A wrong password: the driver's message, never the password.
    for (db, url) in [
        (
            &pg,
            "postgres://nobody:Sup3rSecretPw@127.0.0.1:5432/postgres".to_owned(),
        ),
        (&my, "mysql://nobody:Sup3rSecretPw@127.0.0.1:3306/mysql".to_owned()),
    ] {
        let body = with(db, &|b| b["secrets"]["database_url"] = json!(url));
        let err = check(create(&s, &body).await, "secrets.database_url");
        assert!(
            !err.to_string().contains("Sup3rSecretPw"),
            "the password is echoed: {err}"
        );
        assert!(
            err["error"]["message"].as_str().unwrap().len() > "secrets.database_url: ".len(),
            "{err}"
        );
    }
    let (_, page) = s.get_as_operator("/v1/sources").await;
    assert_eq!(page["items"], json!([]), "nothing was stored");
}
