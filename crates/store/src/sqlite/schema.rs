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
];

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
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(StoreError::sqlite("recording schema version"))?;
        tx.commit().map_err(StoreError::sqlite("committing migration"))?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}
