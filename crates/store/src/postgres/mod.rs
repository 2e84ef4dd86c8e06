//! The PostgreSQL backend (`--database-url postgres://…`), for several nodes on one database.
//!
//! Appends go through one writer task per node (group commit, `writer.rs`); everything else
//! runs on a connection pool. Gapless offsets across nodes come from the per-tenant counter row
//! locked inside the append transaction; wake-ups cross nodes with LISTEN/NOTIFY (`listen.rs`).
//! PostgreSQL's default `synchronous_commit = on` makes every commit durable before it returns,
//! which is what a 202 promises.

mod catalog;
mod chain_checkpoints;
mod leases;
mod listen;
mod retention;
mod schema;
mod sinks;
mod sources;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use auditrelay_core::{NewEvent, StoredEvent};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub(crate) use crate::time_search::not_a_timestamp;
use crate::time_search::{instant, TimeSearch};
use crate::GroupObserver;
use crate::{AppendOutcome, Cursors, EventLog, Notifier, ReadQuery, Result, Retention, Store, StoreError};
use writer::{PendingAppend, Writer};

/// How long a request waits for a pooled connection before it fails (→ 503). Short, so ingest
/// answers quickly while the database is unreachable instead of piling up requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
    appends: Mutex<Option<mpsc::UnboundedSender<PendingAppend>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    listener: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
    notifier: Arc<Notifier>,
}

impl PostgresStore {
    /// Connects, applies pending migrations, and starts the writer and the listener.
    pub async fn connect(url: &str, observer: Option<GroupObserver>) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before every use (a round trip per append group and per read): a dead
            // connection fails its one query (→ 503, nothing stored) and the pool drops it.
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(StoreError::pg("connecting to PostgreSQL"))?;
        {
            let mut conn = pool
                .acquire()
                .await
                .map_err(StoreError::pg("connecting to PostgreSQL"))?;
            schema::migrate(&mut conn).await?;
        }
        let notifier = Arc::new(Notifier::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            pool: pool.clone(),
            notifier: notifier.clone(),
            observer,
        };
        let writer = tokio::spawn(writer.run(rx));
        let (stop_tx, stop) = listen::stop::Stop::new();
        let listener = tokio::spawn(listen::run(url.to_owned(), pool.clone(), notifier.clone(), stop));
        Ok(PostgresStore {
            pool,
            appends: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            listener: Mutex::new(Some((stop_tx, listener))),
            notifier,
        })
    }

    /// The pool, for tests and tools that inspect the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A `LIMIT` value; anything beyond i64 means "all".
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A u64 the store writes into a BIGINT column; values beyond i64 are refused, not wrapped.
pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Unavailable(format!("{what} {value} does not fit the database")))
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

pub(crate) const UNIQUE_VIOLATION: &str = "23505";
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";

/// A type glob (`*`, `?`) as a LIKE pattern. `_` and `%` are LIKE metacharacters but may occur
/// in type names (`_`), so literal characters are escaped with `\` (LIKE's default escape).
fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Nanoseconds since the epoch as a BIGINT (good until the year 2262).
pub(crate) fn instant_ns(rfc3339: &str) -> Option<i64> {
    instant(rfc3339).and_then(|n| i64::try_from(n).ok())
}

impl PostgresStore {
    async fn tenant_head(&self, tenant: &str) -> Result<u64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT head FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading tenant head"))?;
        Ok(head.unwrap_or(0) as u64)
    }
}

#[async_trait]
impl EventLog for PostgresStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        let (reply, rx) = oneshot::channel();
        {
            let appends = self.appends.lock().unwrap_or_else(|p| p.into_inner());
            let tx = appends.as_ref().ok_or(StoreError::ShuttingDown)?;
            tx.send(PendingAppend { events, reply })
                .map_err(|_| StoreError::ShuttingDown)?;
        }
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    async fn read(&self, q: ReadQuery) -> Result<Vec<StoredEvent>> {
        let patterns: Vec<String> = q.filter.patterns().iter().map(|g| like_pattern(g)).collect();
        let filter = if q.filter.is_all() {
            ""
        } else {
            " AND type LIKE ANY($4)"
        };
        let sql = format!(
            "SELECT seq, id, type, body, NULL::text, chain FROM events WHERE tenant_id = $1 AND seq > $2{filter} ORDER BY seq LIMIT $3"
        );
        let after = i64::try_from(q.after).unwrap_or(i64::MAX);
        let mut query = sqlx::query(&sql).bind(&q.tenant).bind(after).bind(sql_limit(q.limit));
        if !q.filter.is_all() {
            query = query.bind(&patterns);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::pg("reading events"))?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredEvent {
                    tenant_id: q.tenant.clone(),
                    offset: r.try_get::<i64, _>(0).map_err(StoreError::pg("reading events"))? as u64,
                    id: r.try_get(1).map_err(StoreError::pg("reading events"))?,
                    event_type: r.try_get(2).map_err(StoreError::pg("reading events"))?,
                    body: r.try_get(3).map_err(StoreError::pg("reading events"))?,
                    chain: crate::chain::from_column(
                        r.try_get::<Option<Vec<u8>>, _>(5)
                            .map_err(StoreError::pg("reading events"))?,
                        "events.chain",
                    )?,
                })
            })
            .collect()
    }

    async fn head(&self, tenant: &str) -> Result<u64> {
        self.tenant_head(tenant).await
    }

    fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        self.notifier.subscribe(tenant)
    }

    async fn offset_at_time(&self, tenant: &str, time: &str) -> Result<u64> {
        let first = self.purged_through(tenant).await? + 1;
        let mut search = TimeSearch::new(tenant, first, self.tenant_head(tenant).await?, time)?;
        while let Some(offset) = search.probe() {
            let at: Option<String> =
                sqlx::query_scalar("SELECT received_at FROM events WHERE tenant_id = $1 AND seq = $2")
                    .bind(tenant)
                    .bind(to_i64(offset, "offset")?)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::pg("reading an event's received_at"))?;
            search.answer(offset, at.as_deref())?;
        }
        Ok(search.cursor())
    }
}

#[async_trait]
impl Cursors for PostgresStore {
    async fn cursor(&self, consumer: &str, tenant: &str) -> Result<Option<u64>> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM cursors WHERE consumer = $1 AND tenant_id = $2")
                .bind(consumer)
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::pg("reading a cursor"))?;
        Ok(position.map(|p| p as u64))
    }

    async fn commit_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (consumer, tenant_id, position, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (consumer, tenant_id) DO UPDATE
             SET position = greatest(cursors.position, excluded.position), updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(tenant)
        .bind(to_i64(offset, "cursor")?)
        .bind(auditrelay_core::time::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(StoreError::pg("committing a cursor"))?;
        Ok(())
    }

    async fn reset_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (consumer, tenant_id, position, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (consumer, tenant_id) DO UPDATE
             SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(tenant)
        .bind(to_i64(offset, "cursor")?)
        .bind(auditrelay_core::time::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(StoreError::pg("resetting a cursor"))?;
        Ok(())
    }

    async fn cursors_of(&self, consumer: &str) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant_id, position FROM cursors WHERE consumer = $1 ORDER BY tenant_id")
                .bind(consumer)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::pg("listing a consumer's cursors"))?;
        Ok(rows.into_iter().map(|(t, p)| (t, p as u64)).collect())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<()> {
        if self.appends.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err(StoreError::ShuttingDown);
        }
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("pinging the database"))?;
        Ok(())
    }

    async fn close(&self) {
        let sender = self.appends.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(sender);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, handle)) = listener {
            let _ = stop.send(true);
            let _ = handle.await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(like_pattern("decision.*"), "decision.%");
        assert_eq!(like_pattern("auth.log?ut"), "auth.log_ut");
        assert_eq!(like_pattern("a_b.*"), "a\\_b.%");
        assert_eq!(like_pattern("100%"), "100\\%");
    }
}
