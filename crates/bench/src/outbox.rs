//! `outbox`: rows/s relayed end to end by the `postgres_outbox` and `mysql_outbox` sources, each
//! beside its database's own ceiling in the same run.
//!
//! Per run and database: a fresh database with two identical outbox tables of `--outbox-rows`
//! committed rows (an audit event of ~300 bytes each, made by the database itself so filling
//! is fast). The **ceiling** drains one table with the relay's own SQL (select the lowest ids
//! in batches, delete them) from this process, without doing anything with the rows: what the
//! database alone allows. **auditrelay** drains the other: a source is created, and the clock
//! runs from its `201` until its health says every row was appended (durably, each with its
//! client id) and `lag` is 0. The server's CPU time over that span gives CPU µs per row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{MySqlPool, PgPool};

use crate::http::{Auth, Conn, Target};
use crate::procfs::cpu_time;
use crate::runs::Spread;

fn median(v: &[f64]) -> f64 {
    Spread::of(v).map_or(0.0, |s| s.median)
}

/// How long one drain may take before the run is reported as failed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the source's health is read while it drains.
const HEALTH_EVERY: Duration = Duration::from_millis(20);

pub struct OutboxConfig {
    pub rows: u64,
    pub batch_size: u32,
    pub runs: usize,
    /// Admin connections: a database per run is created and dropped through them.
    pub postgres_admin_url: String,
    pub mysql_admin_url: String,
    pub tenant: String,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Postgres,
    Mysql,
}

impl Database {
    fn kind(self) -> &'static str {
        match self {
            Database::Postgres => "postgres_outbox",
            Database::Mysql => "mysql_outbox",
        }
    }
}

/// One database's runs.
#[derive(Debug, Clone)]
pub struct OutboxResult {
    pub database: Database,
    pub rows: u64,
    pub auditrelay_rows_per_sec: Vec<f64>,
    pub ceiling_rows_per_sec: Vec<f64>,
    pub cpu_us_per_row: Vec<f64>,
}

impl OutboxResult {
    pub fn to_json(&self) -> Value {
        let spread = |v: &[f64]| Spread::of(v).map(|s| s.to_json(|x| x.round()));
        let med = |v: &[f64]| median(v);
        json!({
            "kind": self.database.kind(),
            "rows": self.rows,
            "auditrelay_rows_per_sec": self.auditrelay_rows_per_sec,
            "ceiling_rows_per_sec": self.ceiling_rows_per_sec,
            "cpu_us_per_row": self.cpu_us_per_row,
            "auditrelay": spread(&self.auditrelay_rows_per_sec),
            "ceiling": spread(&self.ceiling_rows_per_sec),
            "median_ratio_to_ceiling": med(&self.auditrelay_rows_per_sec) / med(&self.ceiling_rows_per_sec).max(f64::MIN_POSITIVE),
        })
    }

    pub fn print(&self) {
        let range = |v: &[f64]| match Spread::of(v) {
            Some(s) => format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max),
            None => "-".to_owned(),
        };
        println!();
        println!(
            "outbox {} ({} rows per run, {} runs, median (min–max)):",
            self.database.kind(),
            self.rows,
            self.auditrelay_rows_per_sec.len()
        );
        println!(
            "  auditrelay: {} rows/s end to end (read, append durably, delete)",
            range(&self.auditrelay_rows_per_sec)
        );
        println!(
            "  ceiling:    {} rows/s (the same select + delete, nothing appended)",
            range(&self.ceiling_rows_per_sec)
        );
        println!(
            "  ratio:      {:.2} of the ceiling",
            median(&self.auditrelay_rows_per_sec) / median(&self.ceiling_rows_per_sec).max(f64::MIN_POSITIVE)
        );
        if !self.cpu_us_per_row.is_empty() {
            println!("  server CPU: {:.1} µs per row (median)", median(&self.cpu_us_per_row));
        }
    }
}

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

impl Pool {
    async fn exec(&self, sql: &str) -> Result<()> {
        match self {
            Pool::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Pool::My(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .with_context(|| format!("running `{}`", sql.chars().take(80).collect::<String>()))
    }

    /// The lowest `limit` ids, each row's event read as text as the relay reads it.
    async fn lowest_ids(&self, table: &str, limit: u32) -> Result<Vec<i64>> {
        let limit = i64::from(limit);
        let rows: Vec<(i64, String)> = match self {
            Pool::Pg(p) => {
                let sql = format!("SELECT id, event::text FROM {table} ORDER BY id LIMIT $1");
                sqlx::query_as(&sql).bind(limit).fetch_all(p).await
            }
            Pool::My(p) => {
                let sql =
                    format!("SELECT CAST(id AS SIGNED), CONVERT(event USING utf8mb4) FROM {table} ORDER BY id LIMIT ?");
                sqlx::query_as(&sql).bind(limit).fetch_all(p).await
            }
        }
        .context("ceiling: reading a batch")?;
        Ok(rows.into_iter().map(|(id, _)| id).collect())
    }

    async fn delete_ids(&self, table: &str, ids: &[i64]) -> Result<()> {
        match self {
            Pool::Pg(p) => {
                let sql = format!("DELETE FROM {table} WHERE id = ANY($1)");
                sqlx::query(&sql).bind(ids).execute(p).await.map(|_| ())
            }
            Pool::My(p) => {
                let sql = format!("DELETE FROM {table} WHERE id IN ({})", vec!["?"; ids.len()].join(","));
                ids.iter()
                    .fold(sqlx::query(&sql), |q, id| q.bind(*id))
                    .execute(p)
                    .await
                    .map(|_| ())
            }
        }
        .context("ceiling: deleting a batch")
    }

    async fn close(&self) {
        match self {
            Pool::Pg(p) => p.close().await,
            Pool::My(p) => p.close().await,
        }
    }
}

/// The database URL with its path replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> Result<String> {
    let (scheme, rest) = admin_url
        .split_once("://")
        .with_context(|| format!("not a URL: {admin_url}"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}/{name}"))
}

async fn connect(db: Database, url: &str) -> Result<Pool> {
    Ok(match db {
        Database::Postgres => Pool::Pg(
            PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?,
        ),
        Database::Mysql => Pool::My(
            MySqlPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .with_context(|| format!("connecting to MySQL/MariaDB at {}", redact(url)))?,
        ),
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(s, r)| Some((s, r.split_once('@')?))) {
        Some((scheme, (userinfo, host))) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// Creates `table` holding `rows` committed rows made by the database itself.
async fn fill(db: Database, pool: &Pool, table: &str, rows: u64) -> Result<()> {
    match db {
        Database::Postgres => {
            pool.exec(&format!(
                "CREATE TABLE {table} (id bigserial PRIMARY KEY, event jsonb NOT NULL)"
            ))
            .await?;
            pool.exec(&format!(
                "INSERT INTO {table} (event) SELECT jsonb_build_object(\
                 'type', 'order.placed', 'severity', 6, 'outcome', 'success', \
                 'actor', jsonb_build_object('type', 'user', 'id', 'u-' || (g % 977), 'name', 'Bench User', 'ip', '192.0.2.' || (g % 250)), \
                 'target', jsonb_build_object('type', 'order', 'id', 'ord-' || g), \
                 'metadata', jsonb_build_object('n', g, 'amount_cents', g * 7 % 100000, 'currency', 'EUR')) \
                 FROM generate_series(1, {rows}) AS g"
            ))
            .await?;
        }
        Database::Mysql => {
            pool.exec(&format!(
                "CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, event JSON NOT NULL)"
            ))
            .await?;
            // MariaDB's sequence engine (`seq_1_to_N`) makes the rows server-side.
            pool.exec(&format!(
                "INSERT INTO {table} (event) SELECT JSON_OBJECT(\
                 'type', 'order.placed', 'severity', 6, 'outcome', 'success', \
                 'actor', JSON_OBJECT('type', 'user', 'id', CONCAT('u-', seq % 977), 'name', 'Bench User', 'ip', CONCAT('192.0.2.', seq % 250)), \
                 'target', JSON_OBJECT('type', 'order', 'id', CONCAT('ord-', seq)), \
                 'metadata', JSON_OBJECT('n', seq, 'amount_cents', seq * 7 % 100000, 'currency', 'EUR')) \
                 FROM seq_1_to_{rows}"
            ))
            .await?;
        }
    }
    Ok(())
}

/// Drains `table` with the relay's SQL and nothing else; rows/s.
async fn ceiling(pool: &Pool, table: &str, rows: u64, batch: u32) -> Result<f64> {
    let started = Instant::now();
    let mut drained = 0u64;
    loop {
        let ids = pool.lowest_ids(table, batch).await?;
        if ids.is_empty() {
            break;
        }
        pool.delete_ids(table, &ids).await?;
        drained += ids.len() as u64;
    }
    if drained != rows {
        bail!("ceiling drained {drained} rows of {rows}");
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// Creates the source, waits until every row is appended and `lag` is 0; (rows/s, CPU µs/row).
async fn relay(
    target: &Arc<Target>,
    operator: &Auth,
    cfg: &OutboxConfig,
    db: Database,
    url: &str,
    run: usize,
) -> Result<(f64, Option<f64>)> {
    let mut conn = Conn::connect(target.clone()).await?;
    let body = json!({
        "name": format!("bench-{}-{run}", db.kind()),
        "kind": db.kind(),
        "tenant": cfg.tenant,
        "config": {"table": "relayed", "id_column": "id", "event_column": "event", "batch_size": cfg.batch_size},
        "secrets": {"database_url": url},
    });
    let cpu_before = cfg.server_pid.and_then(cpu_time);
    let started = Instant::now();
    let resp = conn
        .post_json("/v1/sources", operator, Bytes::from(body.to_string()))
        .await?;
    if resp.status != StatusCode::CREATED {
        bail!("POST /v1/sources answered {}: {}", resp.status, resp.body_snippet());
    }
    let created: Value = resp.json()?;
    let id = created["id"]
        .as_str()
        .context("the created source has no id")?
        .to_owned();
    let health_path = format!("/v1/sources/{id}/health");
    loop {
        let resp = conn.get(&health_path, Some(operator)).await?;
        let health: Value = resp.json()?;
        if health["appended"].as_u64() == Some(cfg.rows) && health["lag"] == 0 {
            break;
        }
        if health["malformed"].as_u64().unwrap_or(0) > 0 {
            bail!("{}: rows were malformed: {health}", db.kind());
        }
        if started.elapsed() > DRAIN_TIMEOUT {
            bail!("{}: not drained after {DRAIN_TIMEOUT:?}: {health}", db.kind());
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cfg.server_pid.and_then(cpu_time)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() * 1e6 / cfg.rows as f64),
        _ => None,
    };
    let resp = conn
        .send(
            hyper::Method::DELETE,
            &format!("/v1/sources/{id}"),
            Some(operator),
            None,
        )
        .await?;
    if !resp.status.is_success() {
        bail!("DELETE /v1/sources/{id} answered {}", resp.status);
    }
    Ok((cfg.rows as f64 / elapsed, cpu))
}

async fn one_run(
    target: &Arc<Target>,
    operator: &Auth,
    cfg: &OutboxConfig,
    db: Database,
    run: usize,
) -> Result<(f64, f64, Option<f64>)> {
    let (admin_url, drop_sql) = match db {
        Database::Postgres => (&cfg.postgres_admin_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)"),
        Database::Mysql => (&cfg.mysql_admin_url, "DROP DATABASE IF EXISTS {}"),
    };
    let name = format!("ar_bench_outbox_{}_{run}", std::process::id());
    let admin = connect(db, admin_url).await?;
    admin.exec(&drop_sql.replace("{}", &name)).await?;
    admin.exec(&format!("CREATE DATABASE {name}")).await?;
    let url = with_database(admin_url, &name)?;
    let result = async {
        let pool = connect(db, &url).await?;
        fill(db, &pool, "relayed", cfg.rows).await?;
        fill(db, &pool, "ceiling", cfg.rows).await?;
        let ceiling = ceiling(&pool, "ceiling", cfg.rows, cfg.batch_size).await?;
        pool.close().await;
        let (rate, cpu) = relay(target, operator, cfg, db, &url, run).await?;
        Ok::<_, anyhow::Error>((rate, ceiling, cpu))
    }
    .await;
    admin.exec(&drop_sql.replace("{}", &name)).await?;
    admin.close().await;
    result
}

pub async fn run(target: Arc<Target>, operator: &Auth, cfg: OutboxConfig) -> Result<Vec<OutboxResult>> {
    let mut out = Vec::new();
    for db in [Database::Postgres, Database::Mysql] {
        let mut r = OutboxResult {
            database: db,
            rows: cfg.rows,
            auditrelay_rows_per_sec: Vec::new(),
            ceiling_rows_per_sec: Vec::new(),
            cpu_us_per_row: Vec::new(),
        };
        for run in 0..cfg.runs {
            eprintln!(
                "outbox: {} run {}/{} ({} rows) …",
                db.kind(),
                run + 1,
                cfg.runs,
                cfg.rows
            );
            let (rate, ceiling, cpu) = one_run(&target, operator, &cfg, db, run)
                .await
                .with_context(|| format!("outbox {} run {}", db.kind(), run + 1))?;
            r.auditrelay_rows_per_sec.push(rate);
            r.ceiling_rows_per_sec.push(ceiling);
            r.cpu_us_per_row.extend(cpu);
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_rewritten_and_redacted() -> Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x")?,
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x")?,
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(redact("mysql://u:secret@h:1/db"), "mysql://u@h:1/db");
        Ok(())
    }
}
