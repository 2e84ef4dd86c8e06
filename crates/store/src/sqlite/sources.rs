//! Source definitions on SQLite. Writes go through the writer thread, so the revision check in
//! `update_source` cannot interleave with another write.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{is_foreign_key_violation, is_unique_violation, SqliteStore};
use crate::{Result, SourceRow, SourceStore, StoreError};

const SOURCE_COLUMNS: &str = "id, tenant, spec, sealed_secrets, paused, created_at, updated_at, revision";

fn source_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRow> {
    Ok(SourceRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        spec: r.get(2)?,
        sealed_secrets: r.get(3)?,
        paused: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        revision: r.get(7)?,
    })
}

fn source_exists(conn: &Connection, id: &str) -> Result<bool> {
    conn.query_row("SELECT 1 FROM sources WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(StoreError::sqlite("looking up a source"))
}

#[async_trait]
impl SourceStore for SqliteStore {
    async fn create_source(&self, source: SourceRow) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO sources ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    source.id,
                    source.tenant,
                    source.spec,
                    source.sealed_secrets,
                    source.paused,
                    source.created_at,
                    source.updated_at,
                    source.revision
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("source `{}` already exists", source.id))
                } else if is_foreign_key_violation(&e) {
                    // The only foreign key of `sources` is the tenant.
                    StoreError::UnknownTenant(source.tenant.clone().unwrap_or_default())
                } else {
                    StoreError::Sqlite {
                        context: "creating a source",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn source(&self, id: &str) -> Result<Option<SourceRow>> {
        let id = id.to_owned();
        self.read_with(move |conn| {
            conn.query_row(
                &format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1"),
                [&id],
                source_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a source"))
        })
        .await
    }

    async fn list_sources(&self, after: Option<&str>, limit: usize) -> Result<Vec<SourceRow>> {
        let after = after.unwrap_or("").to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SOURCE_COLUMNS} FROM sources WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))
                .map_err(StoreError::sqlite("preparing source list"))?;
            let rows = stmt
                .query_map(params![after, limit], source_row)
                .map_err(StoreError::sqlite("listing sources"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing sources"))
        })
        .await
    }

    async fn update_source(&self, source: SourceRow) -> Result<Option<SourceRow>> {
        self.write(move |conn| {
            let updated = conn
                .query_row(
                    &format!(
                        "UPDATE sources
                         SET tenant = ?3, spec = ?4, sealed_secrets = ?5, paused = ?6, updated_at = ?7,
                             revision = revision + 1
                         WHERE id = ?1 AND revision = ?2
                         RETURNING {SOURCE_COLUMNS}"
                    ),
                    params![
                        source.id,
                        source.revision,
                        source.tenant,
                        source.spec,
                        source.sealed_secrets,
                        source.paused,
                        auditrelay_core::time::now_rfc3339()
                    ],
                    source_row,
                )
                .optional()
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::UnknownTenant(source.tenant.clone().unwrap_or_default())
                    } else {
                        StoreError::Sqlite {
                            context: "updating a source",
                            source: e,
                        }
                    }
                })?;
            match updated {
                Some(row) => Ok(Some(row)),
                // Single writer: nothing can change between the two statements.
                None if source_exists(conn, &source.id)? => Err(StoreError::Conflict(format!(
                    "source `{}` was changed since revision {}; reload it and retry",
                    source.id, source.revision
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn set_source_paused(&self, id: &str, paused: bool) -> Result<Option<SourceRow>> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE sources SET paused = ?2, updated_at = ?3, revision = revision + 1
                     WHERE id = ?1
                     RETURNING {SOURCE_COLUMNS}"
                ),
                params![id, paused, auditrelay_core::time::now_rfc3339()],
                source_row,
            )
            .optional()
            .map_err(StoreError::sqlite("pausing or resuming a source"))
        })
        .await
    }

    async fn delete_source(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.execute("DELETE FROM sources WHERE id = ?1", [&id])
                .map(|n| n > 0)
                .map_err(StoreError::sqlite("deleting a source"))
        })
        .await
    }
}
