//! Source definitions on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{sql_limit, sqlstate, to_i64, PostgresStore, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};
use crate::{Result, SourceRow, SourceStore, StoreError};

const SOURCE_COLUMNS: &str = "id, tenant, spec, sealed_secrets, paused, created_at, updated_at, revision";

fn source_row(r: &PgRow) -> std::result::Result<SourceRow, sqlx::Error> {
    Ok(SourceRow {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        spec: r.try_get(2)?,
        sealed_secrets: r.try_get(3)?,
        paused: r.try_get(4)?,
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
        revision: r.try_get::<i64, _>(7)? as u64,
    })
}

fn one_source(row: Option<PgRow>, context: &'static str) -> Result<Option<SourceRow>> {
    row.as_ref()
        .map(source_row)
        .transpose()
        .map_err(StoreError::pg(context))
}

fn tenant_error(e: sqlx::Error, tenant: &Option<String>, what: &str, context: &'static str) -> StoreError {
    match sqlstate(&e).as_deref() {
        Some(UNIQUE_VIOLATION) => StoreError::Conflict(format!("source `{what}` already exists")),
        // The only foreign key of `sources` is the tenant.
        Some(FOREIGN_KEY_VIOLATION) => StoreError::UnknownTenant(tenant.clone().unwrap_or_default()),
        _ => StoreError::Postgres { context, source: e },
    }
}

#[async_trait]
impl SourceStore for PostgresStore {
    async fn create_source(&self, source: SourceRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&source.id)
        .bind(&source.tenant)
        .bind(&source.spec)
        .bind(&source.sealed_secrets)
        .bind(source.paused)
        .bind(&source.created_at)
        .bind(&source.updated_at)
        .bind(to_i64(source.revision, "revision")?)
        .execute(&self.pool)
        .await
        .map_err(|e| tenant_error(e, &source.tenant, &source.id, "creating a source"))?;
        Ok(())
    }

    async fn source(&self, id: &str) -> Result<Option<SourceRow>> {
        let row = sqlx::query(&format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading a source"))?;
        one_source(row, "reading a source")
    }

    async fn list_sources(&self, after: Option<&str>, limit: usize) -> Result<Vec<SourceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::pg("listing sources"))?;
        rows.iter()
            .map(source_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(StoreError::pg("listing sources"))
    }

    async fn update_source(&self, source: SourceRow) -> Result<Option<SourceRow>> {
        let row = sqlx::query(&format!(
            "UPDATE sources
             SET tenant = $3, spec = $4, sealed_secrets = $5, paused = $6, updated_at = $7,
                 revision = revision + 1
             WHERE id = $1 AND revision = $2
             RETURNING {SOURCE_COLUMNS}"
        ))
        .bind(&source.id)
        .bind(to_i64(source.revision, "revision")?)
        .bind(&source.tenant)
        .bind(&source.spec)
        .bind(&source.sealed_secrets)
        .bind(source.paused)
        .bind(auditrelay_core::time::now_rfc3339())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| tenant_error(e, &source.tenant, &source.id, "updating a source"))?;
        if let Some(updated) = one_source(row, "updating a source")? {
            return Ok(Some(updated));
        }
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sources WHERE id = $1")
            .bind(&source.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("looking up a source"))?;
        match exists {
            Some(_) => Err(StoreError::Conflict(format!(
                "source `{}` was changed since revision {}; reload it and retry",
                source.id, source.revision
            ))),
            None => Ok(None),
        }
    }

    async fn set_source_paused(&self, id: &str, paused: bool) -> Result<Option<SourceRow>> {
        let row = sqlx::query(&format!(
            "UPDATE sources SET paused = $2, updated_at = $3, revision = revision + 1
             WHERE id = $1
             RETURNING {SOURCE_COLUMNS}"
        ))
        .bind(id)
        .bind(paused)
        .bind(auditrelay_core::time::now_rfc3339())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::pg("pausing or resuming a source"))?;
        one_source(row, "pausing or resuming a source")
    }

    async fn delete_source(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sources WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("deleting a source"))?;
        // Free its lease at once so nothing keeps it.
        sqlx::query("DELETE FROM sink_leases WHERE sink_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("deleting a source's lease"))?;
        Ok(done.rows_affected() > 0)
    }
}
