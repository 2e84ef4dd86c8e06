//! The embedded default backend: one SQLite file in WAL mode under the data dir.
//!
//! Writes go through one writer thread (group commit, see `writer.rs`); reads use a small pool
//! of read-only connections on blocking threads. `synchronous=FULL` makes every commit fsync the
//! WAL, because the 202 promises the events survive a power cut, not just a process crash.
//! Cursor commits are the one exception (see `commit_cursor`): losing one only re-delivers.

mod chain_checkpoints;
mod checkpointer;
mod import_log;
mod pool;
mod retention;
mod schema;
mod sinks;
mod sources;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use auditrelay_core::{NewEvent, StoredEvent};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{oneshot, watch};

pub(crate) use crate::time_search::not_a_timestamp;
pub use crate::GroupObserver;
use crate::{
    ApiKey, AppendOutcome, Catalog, Cursors, EventLog, NewApiKey, Notifier, ReadQuery, Result, Store, StoreError,
    Tenant,
};
use pool::ReadPool;
use writer::{WriteFn, Writer};

/// File name of the log inside the data dir.
pub const DB_FILE: &str = "auditrelay.db";

pub struct SqliteStore {
    path: PathBuf,
    /// The event log itself (events, heads, client ids, the chain); SQLite keeps the catalog.
    log: Arc<crate::seglog::SegLog>,
    stop_checkpointer: Arc<std::sync::atomic::AtomicBool>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    jobs: Mutex<Option<Sender<WriteFn>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    notifier: Arc<Notifier>,
}

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(StoreError::sqlite("enabling WAL"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::sqlite("setting synchronous=FULL"))?;
    // Checkpoints run on their own thread (`checkpointer`), not inside a commit of the single
    // writer, where a checkpoint into a large database stalled every waiting request.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(StoreError::sqlite("disabling auto-checkpoint"))?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(StoreError::sqlite("setting journal_size_limit"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(StoreError::sqlite("enabling foreign keys"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(StoreError::sqlite("setting busy timeout"))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating on first start) `<data_dir>/auditrelay.db`.
    pub fn open(data_dir: &Path, observer: Option<GroupObserver>) -> Result<Self> {
        Self::open_with(data_dir, observer, crate::seglog::LogOptions::default())
    }

    /// [`open`](Self::open) with the event log's sizes chosen (tests use small segments).
    pub fn open_with(
        data_dir: &Path,
        observer: Option<GroupObserver>,
        log_options: crate::seglog::LogOptions,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            context: format!("creating data dir {}", data_dir.display()),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(StoreError::sqlite("opening the database"))?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;

        let notifier = Arc::new(Notifier::default());
        let tenants = catalog_tenants(&conn)?;
        let log = Arc::new(crate::seglog::SegLog::open(
            &data_dir.join(crate::seglog::LOG_DIR),
            &tenants,
            notifier.clone(),
            observer,
            log_options,
        )?);
        import_log::import_old_log(&mut conn, &log)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(conn);
        let handle = std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Io {
                context: "starting the catalog writer thread".into(),
                source,
            })?;
        let stop_checkpointer = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpointer = checkpointer::spawn(path.clone(), stop_checkpointer.clone())?;
        Ok(SqliteStore {
            readers: Arc::new(ReadPool::new(path.clone(), 16)),
            stop_checkpointer,
            checkpointer: Mutex::new(Some(checkpointer)),
            path,
            log,
            jobs: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            notifier,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: WriteFn) -> Result<()> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| StoreError::ShuttingDown),
            None => Err(StoreError::ShuttingDown),
        }
    }

    /// Runs a write on the writer thread, in order with appends.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        }))?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|_| StoreError::ShuttingDown)?
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.log.append(events).await
    }

    async fn read(&self, q: ReadQuery) -> Result<Vec<StoredEvent>> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.read(&q))
            .await
            .map_err(|_| StoreError::ShuttingDown)?
    }

    async fn head(&self, tenant: &str) -> Result<u64> {
        Ok(self.log.head(tenant))
    }

    fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        self.notifier.subscribe(tenant)
    }

    async fn offset_at_time(&self, tenant: &str, time: &str) -> Result<u64> {
        let log = self.log.clone();
        let (tenant, time) = (tenant.to_owned(), time.to_owned());
        tokio::task::spawn_blocking(move || log.offset_at_time(&tenant, &time))
            .await
            .map_err(|_| StoreError::ShuttingDown)?
    }
}

/// Every tenant of the catalog, so the log knows each of them.
fn catalog_tenants(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT id FROM tenants ORDER BY id")
        .map_err(StoreError::sqlite("listing tenants for the log"))?;
    let rows = stmt
        .query_map([], |r| r.get(0))
        .map_err(StoreError::sqlite("listing tenants for the log"))?;
    rows.collect::<std::result::Result<Vec<String>, _>>()
        .map_err(StoreError::sqlite("listing tenants for the log"))
}

#[async_trait]
impl Cursors for SqliteStore {
    async fn cursor(&self, consumer: &str, tenant: &str) -> Result<Option<u64>> {
        let (consumer, tenant) = (consumer.to_owned(), tenant.to_owned());
        self.read_with(move |conn| {
            conn.query_row(
                "SELECT position FROM cursors WHERE consumer = ?1 AND tenant_id = ?2",
                [&consumer, &tenant],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(|p| p as u64))
            .map_err(StoreError::sqlite("reading a cursor"))
        })
        .await
    }

    async fn commit_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        let (consumer, tenant) = (consumer.to_owned(), tenant.to_owned());
        self.write(move |conn| {
            // The engine commits a cursor after every delivered batch (up to ~1000/s). Losing
            // the last commits to a power cut only means re-delivery, which at-least-once allows,
            // so this commit skips the fsync: NORMAL for this one statement (a per-connection
            // flag, no I/O). In WAL mode the next FULL commit (any append) or checkpoint makes
            // it durable. FULL is restored on every path before the writer runs anything else,
            // since appends rely on it for the 202's durability promise.
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(StoreError::sqlite("setting synchronous=NORMAL for a cursor commit"))?;
            let written = conn.execute(
                "INSERT INTO cursors (consumer, tenant_id, position, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (consumer, tenant_id) DO UPDATE
                 SET position = max(position, excluded.position), updated_at = excluded.updated_at",
                params![consumer, tenant, offset as i64, auditrelay_core::time::now_rfc3339()],
            );
            let restored = conn.pragma_update(None, "synchronous", "FULL");
            if let Err(e) = &restored {
                // Should never happen (no I/O, no lock), but appends would silently lose their
                // fsync: make it loud.
                tracing::error!(error = %e, "could not restore synchronous=FULL on the writer");
            }
            written.map_err(StoreError::sqlite("committing a cursor"))?;
            restored.map_err(StoreError::sqlite("restoring synchronous=FULL after a cursor commit"))?;
            Ok(())
        })
        .await
    }

    async fn reset_cursor(&self, consumer: &str, tenant: &str, offset: u64) -> Result<()> {
        let (consumer, tenant) = (consumer.to_owned(), tenant.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO cursors (consumer, tenant_id, position, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (consumer, tenant_id) DO UPDATE
                 SET position = excluded.position, updated_at = excluded.updated_at",
                params![consumer, tenant, offset as i64, auditrelay_core::time::now_rfc3339()],
            )
            .map_err(StoreError::sqlite("resetting a cursor"))?;
            Ok(())
        })
        .await
    }

    async fn cursors_of(&self, consumer: &str) -> Result<Vec<(String, u64)>> {
        let consumer = consumer.to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT tenant_id, position FROM cursors WHERE consumer = ?1 ORDER BY tenant_id")
                .map_err(StoreError::sqlite("preparing cursor list"))?;
            let rows = stmt
                .query_map([&consumer], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(StoreError::sqlite("listing a consumer's cursors"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing a consumer's cursors"))
        })
        .await
    }
}

/// An RFC 3339 timestamp rendered in UTC with exactly 9 fractional digits (`…:20.123000000Z`).
fn instant_text(rfc3339: &str) -> Option<String> {
    auditrelay_core::time::parse_rfc3339(rfc3339).map(|t| format!("{t:.9}"))
}

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

const KEY_COLUMNS: &str = "id, tenant_id, name, scopes, hash, created_at, last_used_at, revoked_at";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes: String = r.get(3)?;
    let hash: Vec<u8> = r.get(4)?;
    Ok(ApiKey {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        scopes: scopes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        hash: hash.as_slice().try_into().unwrap_or([0; 32]),
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

#[async_trait]
impl Catalog for SqliteStore {
    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: auditrelay_core::time::now_rfc3339(),
        };
        let t = tenant.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO tenants (id, name, created_at, head) VALUES (?1, ?2, ?3, 0)",
                params![t.id, t.name, t.created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("tenant `{}` already exists", t.id))
                } else {
                    StoreError::Sqlite {
                        context: "creating a tenant",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })
        .await?;
        self.log.register(&tenant.id).await?;
        Ok(tenant)
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let id = id.to_owned();
        self.read_with(move |conn| {
            conn.query_row(
                "SELECT id, name, created_at FROM tenants WHERE id = ?1",
                [&id],
                tenant_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a tenant"))
        })
        .await
    }

    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<Tenant>> {
        let after = after.unwrap_or("").to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, name, created_at FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(StoreError::sqlite("preparing tenant list"))?;
            let rows = stmt
                .query_map(params![after, limit as i64], tenant_row)
                .map_err(StoreError::sqlite("listing tenants"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing tenants"))
        })
        .await
    }

    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, tenant_id, name, scopes, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.id,
                    key.tenant_id,
                    key.name,
                    key.scopes.join(","),
                    key.hash.as_slice(),
                    key.created_at
                ],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    StoreError::UnknownTenant(key.tenant_id.clone())
                }
                _ => StoreError::Sqlite {
                    context: "creating a key",
                    source: e,
                },
            })?;
            Ok(ApiKey {
                id: key.id,
                tenant_id: key.tenant_id,
                name: key.name,
                scopes: key.scopes,
                hash: key.hash,
                created_at: key.created_at,
                last_used_at: None,
                revoked_at: None,
            })
        })
        .await
    }

    async fn key_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiKey>> {
        self.read_with(move |conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = ?1"),
                [hash.as_slice()],
                key_row,
            )
            .optional()
            .map_err(StoreError::sqlite("looking up a key"))
        })
        .await
    }

    async fn list_keys(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>> {
        let tenant = tenant.to_owned();
        let after = after.unwrap_or("").to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(StoreError::sqlite("preparing key list"))?;
            let rows = stmt
                .query_map(params![tenant, after, limit as i64], key_row)
                .map_err(StoreError::sqlite("listing keys"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing keys"))
        })
        .await
    }

    async fn revoke_key(&self, tenant: &str, key_id: &str) -> Result<bool> {
        let (tenant, key_id) = (tenant.to_owned(), key_id.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, key_id, auditrelay_core::time::now_rfc3339()],
                )
                .map_err(StoreError::sqlite("revoking a key"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn touch_key(&self, key_id: &str, at: &str) -> Result<()> {
        let (key_id, at) = (key_id.to_owned(), at.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
                params![key_id, at],
            )
            .map_err(StoreError::sqlite("recording key use"))?;
            Ok(())
        })
        .await
    }
}

/// One process owns the SQLite file, so this node drives every sink.
#[async_trait]
impl crate::SinkLeases for SqliteStore {
    async fn heartbeat_leases(
        &self,
        _node: &str,
        sinks: &[String],
        _ttl: std::time::Duration,
    ) -> Result<crate::LeaseGrant> {
        Ok(crate::LeaseGrant {
            held: sinks.to_vec(),
            fair_share: sinks.len(),
        })
    }

    async fn release_leases(&self, _node: &str, _sinks: &[String]) -> Result<()> {
        Ok(())
    }

    /// One process per data dir (`data_lock`), and sinks change only through its API.
    fn single_node(&self) -> bool {
        true
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.log.ping().await?;
        self.read_with(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(StoreError::sqlite("pinging the database"))
        })
        .await?;
        // The writer must be alive too, or appends would hang.
        self.write(|_| Ok(())).await
    }

    async fn close(&self) {
        let log = self.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
        let sender = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(sender);
        let handle = self.writer_thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.stop_checkpointer.store(true, std::sync::atomic::Ordering::Release);
        let handle = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer_synchronous(store: &SqliteStore) -> i64 {
        store
            .write(|conn| {
                conn.pragma_query_value(None, "synchronous", |r| r.get(0))
                    .map_err(StoreError::sqlite("reading synchronous"))
            })
            .await
            .unwrap()
    }

    const FULL: i64 = 2;

    #[tokio::test]
    async fn commit_cursor_restores_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), None).unwrap();
        assert_eq!(writer_synchronous(&store).await, FULL);

        store.commit_cursor("snk_1", "t", 5).await.unwrap();
        assert_eq!(writer_synchronous(&store).await, FULL);

        // The failing path restores it too: make the cursor write itself fail.
        store
            .write(|conn| {
                conn.execute_batch(
                    "CREATE TEMP TRIGGER refuse_cursors BEFORE INSERT ON cursors
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
                )
                .map_err(StoreError::sqlite("creating the test trigger"))
            })
            .await
            .unwrap();
        let err = store.commit_cursor("snk_1", "t2", 6).await.unwrap_err();
        assert!(err.to_string().contains("refused by the test"), "{err}");
        assert_eq!(writer_synchronous(&store).await, FULL);
        store.close().await;
    }

    #[test]
    fn instants_compare_across_formats() {
        assert_eq!(
            instant_text("2026-01-03T02:00:00.5+02:00").as_deref(),
            Some("2026-01-03T00:00:00.500000000Z")
        );
        assert_eq!(
            instant_text("2026-01-03T00:00:00.123456Z").as_deref(),
            Some("2026-01-03T00:00:00.123456000Z")
        );
        assert_eq!(instant_text("2026-01-01"), None);
    }
}
