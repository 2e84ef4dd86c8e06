//! The transactional-outbox sources against the real PostgreSQL and MariaDB on this machine:
//! concurrent writer transactions (some rolled back) with interleaved commit orders, a SIGKILL of
//! auditrelay mid-stream, malformed rows moved aside, and definitions refused at save time.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::common::pg::FreshDatabase;
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

fn mysql_cli(sql: &str) -> Result<String, String> {
    let out = Command::new("mysql")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B", "-e", sql])
        .output()
        .map_err(|e| format!("running mysql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
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

enum Db {
    Pg(PgPool, FreshDatabase),
    My(MySqlPool, FreshMysql),
}

impl Db {
    async fn postgres(label: &str) -> Db {
        let fresh = FreshDatabase::create(label);
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .connect(&fresh.url())
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE audit_outbox (id bigserial PRIMARY KEY, tenant text, event jsonb NOT NULL)",
            "CREATE FUNCTION audit_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN PERFORM pg_notify('audit_outbox', ''); RETURN NULL; END$$",
            "CREATE TRIGGER audit_outbox_notify AFTER INSERT ON audit_outbox \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_outbox_notify()",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Db::Pg(pool, fresh)
    }

    async fn mysql(label: &str) -> Db {
        let fresh = FreshMysql::create(label);
        let pool = MySqlPoolOptions::new()
            .max_connections(12)
            .connect(&fresh.url())
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE audit_outbox (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant VARCHAR(64), event JSON NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        Db::My(pool, fresh)
    }

    fn kind(&self) -> &'static str {
        match self {
            Db::Pg(..) => "postgres_outbox",
            Db::My(..) => "mysql_outbox",
        }
    }

    fn url(&self) -> String {
        match self {
            Db::Pg(_, f) => f.url(),
            Db::My(_, f) => f.url(),
        }
    }

    async fn count(&self) -> i64 {
        match self {
            Db::Pg(p, _) => sqlx::query_scalar("SELECT count(*) FROM audit_outbox")
                .fetch_one(p)
                .await
                .unwrap(),
            Db::My(p, _) => sqlx::query_scalar("SELECT count(*) FROM audit_outbox")
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }

    /// Inserts rows one transaction at a time; `commit` decides each transaction's fate.
    async fn insert_tx(&self, rows: &[(Option<&str>, String)], pause: Duration, commit: bool) {
        macro_rules! tx {
            ($pool:expr, $sql:expr) => {{
                let mut tx = $pool.begin().await.unwrap();
                for (tenant, event) in rows {
                    sqlx::query($sql)
                        .bind(*tenant)
                        .bind(event)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                // Hold the transaction open so that other writers' later ids commit first.
                tokio::time::sleep(pause).await;
                if commit {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
            }};
        }
        match self {
            Db::Pg(p, _) => tx!(p, "INSERT INTO audit_outbox (tenant, event) VALUES ($1, $2::jsonb)"),
            Db::My(p, _) => tx!(p, "INSERT INTO audit_outbox (tenant, event) VALUES (?, ?)"),
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

/// 10 writers, 1,000 rows each in transactions of 25 that hold for a varying time (so commit
/// order differs from id order); every fifth transaction rolls back. Returns the committed `n`s.
async fn write_concurrently(db: &Db) -> BTreeSet<u64> {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        tasks.push(async move {
            let mut committed = BTreeSet::new();
            for t in 0..ROWS_PER_WRITER / ROWS_PER_TX {
                let rows: Vec<(Option<&str>, String)> = (0..ROWS_PER_TX)
                    .map(|i| {
                        let n = (w * ROWS_PER_WRITER + t * ROWS_PER_TX + i) as u64;
                        (None, json!({"type": "order.placed", "metadata": {"n": n}}).to_string())
                    })
                    .collect();
                let commit = (w + t) % 5 != 0;
                let pause = Duration::from_millis(((w * 7 + t * 13) % 20) as u64);
                db.insert_tx(&rows, pause, commit).await;
                if commit {
                    committed.extend((0..ROWS_PER_TX).map(|i| (w * ROWS_PER_WRITER + t * ROWS_PER_TX + i) as u64));
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
    db.insert_tx(&rows, Duration::ZERO, true).await;
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
