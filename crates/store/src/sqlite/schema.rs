//! Schema migrations, applied in order on open and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the log, the catalog and consumer cursors.
    r#"
    CREATE TABLE tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        -- Highest committed offset; updated in the append transaction (gapless offsets).
        head        INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    CREATE TABLE events (
        tenant_id   TEXT NOT NULL,
        seq         INTEGER NOT NULL,   -- the event's offset in its tenant's log
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body        TEXT NOT NULL,      -- canonical JSON without offset
        raw         TEXT NOT NULL,      -- the event exactly as ingested
        PRIMARY KEY (tenant_id, seq)
    ) WITHOUT ROWID;

    -- Client-supplied ids only, for idempotent ingest. Server-generated ids are UUIDv7 and
    -- cannot collide, so they skip this index: one B-tree insert per event instead of two.
    CREATE TABLE client_ids (
        tenant_id   TEXT NOT NULL,
        id          TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id)
    ) WITHOUT ROWID;

    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        tenant_id    TEXT NOT NULL REFERENCES tenants (id),
        name         TEXT NOT NULL,
        scopes       TEXT NOT NULL,     -- comma-separated
        hash         BLOB NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at   TEXT
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

    CREATE TABLE cursors (
        consumer    TEXT NOT NULL,
        tenant_id   TEXT NOT NULL,
        position    INTEGER NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (consumer, tenant_id)
    ) WITHOUT ROWID;
    "#,
    // 2: sinks, their dead letters and the delivery log.
    r#"
    CREATE TABLE sinks (
        id             TEXT PRIMARY KEY,
        -- NULL for an operator sink; otherwise the tenant that owns it.
        owner_tenant   TEXT NULL REFERENCES tenants (id),
        spec           TEXT NOT NULL,     -- the definition as JSON, opaque to the store
        sealed_secrets BLOB NOT NULL,     -- AES-256-GCM sealed, opaque to the store
        paused         INTEGER NOT NULL,
        pause_reason   TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        revision       INTEGER NOT NULL
    );
    CREATE INDEX sinks_by_owner ON sinks (owner_tenant, id);

    -- No foreign key to sinks: the engine may still record a batch of a sink being deleted,
    -- and that must not fail; `delete_sink` removes a sink's rows explicitly.
    CREATE TABLE dead_letters (
        sink_id      TEXT NOT NULL,
        id           TEXT NOT NULL,
        tenant_id    TEXT NOT NULL,
        first_offset INTEGER NOT NULL,
        last_offset  INTEGER NOT NULL,
        event_count  INTEGER NOT NULL,
        reason       TEXT NOT NULL,
        attempts     TEXT NOT NULL,      -- JSON array of attempts
        created_at   TEXT NOT NULL,
        PRIMARY KEY (sink_id, id)
    ) WITHOUT ROWID;

    CREATE TABLE delivery_attempts (
        -- The row number API clients page with. AUTOINCREMENT so a number is never reused
        -- after the newest rows are deleted (delete_sink), which would break `before` paging.
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        sink_id      TEXT NOT NULL,
        tenant_id    TEXT NOT NULL,
        first_offset INTEGER NOT NULL,
        last_offset  INTEGER NOT NULL,
        event_count  INTEGER NOT NULL,
        purpose      TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        outcome      TEXT NOT NULL,
        status       INTEGER,
        latency_ms   REAL NOT NULL,
        error        TEXT,
        at           TEXT NOT NULL       -- canonical RFC 3339 (UTC, `Z`)
    );
    CREATE INDEX delivery_attempts_by_sink ON delivery_attempts (sink_id, seq);
    CREATE INDEX delivery_attempts_by_time ON delivery_attempts (at);
    "#,
    // 3: the hash chain (docs/integrity.md) and its signed checkpoints. Existing events get
    // their chain values computed in Rust right after this (`backfill_chains`).
    r#"
    ALTER TABLE events ADD COLUMN chain BLOB;     -- 32 bytes: SHA-256 after this event
    ALTER TABLE tenants ADD COLUMN chain BLOB;    -- the chain after `head` (NULL = empty log)

    CREATE TABLE checkpoints (
        tenant_id   TEXT NOT NULL,
        seq         INTEGER NOT NULL,   -- the offset the checkpoint covers
        chain       BLOB NOT NULL,
        signed_at   TEXT NOT NULL,
        signature   BLOB NOT NULL,      -- Ed25519, 64 bytes
        PRIMARY KEY (tenant_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 4: retention (docs/retention.md): a tenant's policy, and how far its log has been purged.
    // A row exists only for tenants with a policy or a purge.
    r#"
    CREATE TABLE retention (
        tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
        policy         TEXT,              -- JSON, NULL = the server's defaults
        purged_through INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
    // 5: sources (api.md "Sources"): listeners and pollers that append events.
    r#"
    CREATE TABLE sources (
        id             TEXT PRIMARY KEY,
        tenant         TEXT NULL REFERENCES tenants (id),
        spec           TEXT NOT NULL,     -- the definition as JSON, opaque to the store
        sealed_secrets BLOB NOT NULL,     -- AES-256-GCM sealed, opaque to the store
        paused         INTEGER NOT NULL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        revision       INTEGER NOT NULL
    );
    "#,
];

/// The version whose migration adds the chain columns.
const CHAIN_VERSION: usize = 3;

/// Computes the chain of every event stored before the chain existed, tenant by tenant in
/// offset order, inside the migration's transaction.
fn backfill_chains(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let tenants: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT id FROM tenants WHERE head > 0 ORDER BY id")
            .map_err(StoreError::sqlite("listing tenants to chain"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(StoreError::sqlite("listing tenants to chain"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(StoreError::sqlite("listing tenants to chain"))?
    };
    let mut select = tx
        .prepare("SELECT seq, body FROM events WHERE tenant_id = ?1 ORDER BY seq")
        .map_err(StoreError::sqlite("reading events to chain"))?;
    let mut update = tx
        .prepare("UPDATE events SET chain = ?3 WHERE tenant_id = ?1 AND seq = ?2")
        .map_err(StoreError::sqlite("storing a backfilled chain"))?;
    for tenant in tenants {
        let mut chain = crate::chain::GENESIS;
        let mut rows = select
            .query([&tenant])
            .map_err(StoreError::sqlite("reading events to chain"))?;
        let mut links = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::sqlite("reading events to chain"))? {
            let seq: i64 = row.get(0).map_err(StoreError::sqlite("reading events to chain"))?;
            let body: String = row.get(1).map_err(StoreError::sqlite("reading events to chain"))?;
            chain = crate::chain::link(&chain, seq as u64, &body)?;
            links.push((seq, chain));
        }
        for (seq, chain) in &links {
            update
                .execute(rusqlite::params![tenant, seq, &chain[..]])
                .map_err(StoreError::sqlite("storing a backfilled chain"))?;
        }
        tx.execute(
            "UPDATE tenants SET chain = ?2 WHERE id = ?1",
            rusqlite::params![tenant, &chain[..]],
        )
        .map_err(StoreError::sqlite("storing a tenant's chain"))?;
    }
    Ok(())
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(StoreError::sqlite("reading schema version"))?
        .try_into()
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this build knows ({}); upgrade auditrelay",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction().map_err(StoreError::sqlite("starting migration"))?;
        tx.execute_batch(sql)
            .map_err(StoreError::sqlite("applying migration"))?;
        if i + 1 == CHAIN_VERSION {
            backfill_chains(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(StoreError::sqlite("recording schema version"))?;
        tx.commit().map_err(StoreError::sqlite("committing migration"))?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::MIGRATIONS;
    use crate::sqlite::{SqliteStore, DB_FILE};
    use crate::{Catalog, Cursors, EventLog, ReadQuery, SinkRow, SinkStore, Store};

    fn user_version(path: &std::path::Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    }

    /// A database written by a build that only knew migration 1 opens, gains the sink tables,
    /// keeps its data, and reopens without migrating again.
    #[tokio::test]
    async fn upgrades_a_version_1_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO tenants (id, name, created_at, head) VALUES ('old', 'Old', '2025-01-01T00:00:00.000Z', 1);
                 INSERT INTO events (tenant_id, seq, id, type, occurred_at, received_at, body, raw)
                 VALUES ('old', 1, 'ev_1', 'a.b', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', '{}', '{}');
                 INSERT INTO cursors (consumer, tenant_id, position, updated_at)
                 VALUES ('snk_old', 'old', 1, '2025-01-01T00:00:00.000Z');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        assert_eq!(user_version(&path), 1);

        let sink = SinkRow {
            id: "snk_new".into(),
            owner_tenant: Some("old".into()),
            spec: "{}".into(),
            sealed_secrets: vec![1, 2, 3],
            paused: false,
            pause_reason: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            revision: 1,
        };
        {
            let store = SqliteStore::open(dir.path(), None).unwrap();
            assert_eq!(store.head("old").await.unwrap(), 1);
            assert_eq!(store.cursors_of("snk_old").await.unwrap(), vec![("old".to_owned(), 1)]);
            assert_eq!(store.offset_at_time("old", "2025-01-01T00:00:00Z").await.unwrap(), 0);
            store.create_sink(sink.clone()).await.unwrap();
            store.close().await;
        }
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);

        let store = SqliteStore::open(dir.path(), None).unwrap();
        assert_eq!(store.sink("snk_new").await.unwrap(), Some(sink));
        assert_eq!(store.tenant("old").await.unwrap().unwrap().name, "Old");
        let read = store
            .read(ReadQuery {
                tenant: "old".into(),
                after: 0,
                limit: 10,
                filter: auditrelay_core::TypeFilter::parse_list("").unwrap(),
            })
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        // The event stored before the chain existed got its chain in the migration.
        assert_eq!(
            read[0].chain,
            Some(crate::chain::link(&crate::chain::GENESIS, 1, "{}").unwrap())
        );
        store.close().await;
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    }
}
