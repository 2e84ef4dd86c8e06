//! Schema migrations for PostgreSQL, applied in order on start and recorded in
//! `auditrelay_schema`. Several nodes may start at once: an advisory lock held by the migrating
//! transaction makes the others wait and then find nothing left to do.

use sqlx::{Connection, PgConnection};

use crate::{Result, StoreError};

/// Arbitrary, fixed key of the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x6175_6469_7472_6c79; // "audit rly"

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry; append
/// a new one. Every node of a cluster must know every applied version (see
/// docs/deployment-postgres.md: upgrade node by node, migrations are additive).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the log, the catalog, consumer cursors, sinks, dead letters and the delivery log.
    // Times are kept as the RFC 3339 text the API shows, like on SQLite, so both backends
    // return byte-identical values.
    r#"
    CREATE TABLE tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        -- Highest committed offset. The append transaction locks this row (FOR UPDATE) and
        -- updates it, so appends of one tenant commit in offset order on every node.
        head        BIGINT NOT NULL DEFAULT 0
    );

    CREATE TABLE events (
        tenant_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,    -- the event's offset in its tenant's log
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body        TEXT NOT NULL,      -- canonical JSON without offset
        raw         TEXT NOT NULL,      -- the event exactly as ingested
        PRIMARY KEY (tenant_id, seq)
    );

    -- Client-supplied ids only (idempotent ingest); server ids are UUIDv7 and cannot collide.
    CREATE TABLE client_ids (
        tenant_id   TEXT NOT NULL,
        id          TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );

    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        tenant_id    TEXT NOT NULL REFERENCES tenants (id),
        name         TEXT NOT NULL,
        scopes       TEXT NOT NULL,     -- comma-separated
        hash         BYTEA NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at   TEXT
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

    CREATE TABLE cursors (
        consumer    TEXT NOT NULL,
        tenant_id   TEXT NOT NULL,
        position    BIGINT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (consumer, tenant_id)
    );

    CREATE TABLE sinks (
        id             TEXT PRIMARY KEY,
        owner_tenant   TEXT NULL REFERENCES tenants (id),
        spec           TEXT NOT NULL,
        sealed_secrets BYTEA NOT NULL,
        paused         BOOLEAN NOT NULL,
        pause_reason   TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        revision       BIGINT NOT NULL
    );
    CREATE INDEX sinks_by_owner ON sinks (owner_tenant, id);

    -- No foreign key to sinks, as on SQLite: the engine may record a batch of a sink being
    -- deleted; `delete_sink` removes a sink's rows explicitly.
    CREATE TABLE dead_letters (
        sink_id      TEXT NOT NULL,
        id           TEXT NOT NULL,
        tenant_id    TEXT NOT NULL,
        first_offset BIGINT NOT NULL,
        last_offset  BIGINT NOT NULL,
        event_count  BIGINT NOT NULL,
        reason       TEXT NOT NULL,
        attempts     TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (sink_id, id)
    );

    CREATE TABLE delivery_attempts (
        -- The row number API clients page with; an identity is never reused.
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sink_id      TEXT NOT NULL,
        tenant_id    TEXT NOT NULL,
        first_offset BIGINT NOT NULL,
        last_offset  BIGINT NOT NULL,
        event_count  BIGINT NOT NULL,
        purpose      TEXT NOT NULL,
        attempt      BIGINT NOT NULL,
        outcome      TEXT NOT NULL,
        status       INTEGER,
        latency_ms   DOUBLE PRECISION NOT NULL,
        error        TEXT,
        at           TEXT NOT NULL,      -- canonical RFC 3339 (UTC, `Z`)
        at_ns        BIGINT NOT NULL     -- the same instant in ns since the epoch, for pruning
    );
    CREATE INDEX delivery_attempts_by_sink ON delivery_attempts (sink_id, seq);
    CREATE INDEX delivery_attempts_by_time ON delivery_attempts (at_ns);
    "#,
    // 2: which node drives which sink (leases.rs).
    r#"
    -- One row per node that heartbeats; live while expires_at is in the future.
    CREATE TABLE auditrelay_nodes (
        id          TEXT PRIMARY KEY,
        expires_at  TIMESTAMPTZ NOT NULL
    );
    -- One row per sink once any node wanted it; free when expires_at has passed.
    CREATE TABLE sink_leases (
        sink_id     TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL
    );
    "#,
    // 3: the hash chain (docs/integrity.md) and its signed checkpoints. The PostgreSQL backend
    // shipped together with the chain, so there are no earlier events to backfill.
    r#"
    ALTER TABLE events ADD COLUMN chain BYTEA;     -- 32 bytes: SHA-256 after this event
    ALTER TABLE tenants ADD COLUMN chain BYTEA;    -- the chain after `head` (NULL = empty log)
    CREATE TABLE checkpoints (
        tenant_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        chain       BYTEA NOT NULL,
        signed_at   TEXT NOT NULL,
        signature   BYTEA NOT NULL,
        PRIMARY KEY (tenant_id, seq)
    );
    "#,
    // 4: retention (docs/retention.md): a tenant's policy, and how far its log has been purged.
    // Its own table, not columns of `tenants`: a purge then never waits for the row lock every
    // append takes on `tenants`.
    r#"
    CREATE TABLE retention (
        tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
        policy         TEXT,
        purged_through BIGINT NOT NULL DEFAULT 0
    );
    "#,
    // 5: each event is stored once: the `raw` format now delivers the stored body, so new rows
    // leave `raw` NULL. The column stays (migrations are additive: an older node still writes it).
    r#"
    ALTER TABLE events ALTER COLUMN raw DROP NOT NULL;
    "#,
    // 6: sources (api.md "Sources"). Which node runs a source is leased through `sink_leases`
    // (its key is any consumer id; `src_…` ids never collide with `snk_…` ones).
    r#"
    CREATE TABLE sources (
        id             TEXT PRIMARY KEY,
        tenant         TEXT NULL REFERENCES tenants (id),
        spec           TEXT NOT NULL,
        sealed_secrets BYTEA NOT NULL,
        paused         BOOLEAN NOT NULL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        revision       BIGINT NOT NULL
    );
    "#,
];

/// Applies every migration this database has not seen yet, each in its own transaction.
pub(crate) async fn migrate(conn: &mut PgConnection) -> Result<()> {
    let mut tx = conn.begin().await.map_err(StoreError::pg("starting migrations"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::pg("taking the migration lock"))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS auditrelay_schema (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .execute(&mut *tx)
        .await
        .map_err(StoreError::pg("creating the schema version table"))?;
    let current: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM auditrelay_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::pg("reading the schema version"))?;
    let current =
        usize::try_from(current.unwrap_or(0)).map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this build knows ({}); upgrade auditrelay",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("applying a migration"))?;
        sqlx::query("INSERT INTO auditrelay_schema (version) VALUES ($1)")
            .bind((i + 1) as i32)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("recording the schema version"))?;
        tracing::info!(version = i + 1, "applied PostgreSQL schema migration");
    }
    tx.commit().await.map_err(StoreError::pg("committing migrations"))?;
    Ok(())
}
