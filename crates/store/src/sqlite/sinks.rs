//! Sinks, dead letters and the delivery log on SQLite.
//!
//! Writes go through the writer thread like everything else, so a read-modify-write such as the
//! revision check in `update_sink` cannot interleave with another write.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{instant_text, is_foreign_key_violation, is_unique_violation, not_a_timestamp, SqliteStore};
use crate::{DeadLetter, DeadLetters, DeliveryAttempt, DeliveryLog, Result, SinkRow, SinkStore, StoreError};

/// A `LIMIT` value. `usize` does not always fit SQLite's i64; anything that large means "all".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

const SINK_COLUMNS: &str =
    "id, owner_tenant, spec, sealed_secrets, paused, pause_reason, created_at, updated_at, revision";

fn sink_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SinkRow> {
    Ok(SinkRow {
        id: r.get(0)?,
        owner_tenant: r.get(1)?,
        spec: r.get(2)?,
        sealed_secrets: r.get(3)?,
        paused: r.get(4)?,
        pause_reason: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        revision: r.get(8)?,
    })
}

fn sink_exists(conn: &Connection, id: &str) -> Result<bool> {
    conn.query_row("SELECT 1 FROM sinks WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(StoreError::sqlite("looking up a sink"))
}

fn query_sinks(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<SinkRow>> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(StoreError::sqlite("preparing sink list"))?;
    let rows = stmt
        .query_map(params, sink_row)
        .map_err(StoreError::sqlite("listing sinks"))?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("listing sinks"))
}

#[async_trait]
impl SinkStore for SqliteStore {
    async fn create_sink(&self, sink: SinkRow) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO sinks ({SINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    sink.id,
                    sink.owner_tenant,
                    sink.spec,
                    sink.sealed_secrets,
                    sink.paused,
                    sink.pause_reason,
                    sink.created_at,
                    sink.updated_at,
                    sink.revision
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("sink `{}` already exists", sink.id))
                } else if is_foreign_key_violation(&e) {
                    // The only foreign key of `sinks` is the owner.
                    StoreError::UnknownTenant(sink.owner_tenant.clone().unwrap_or_default())
                } else {
                    StoreError::Sqlite {
                        context: "creating a sink",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn sink(&self, id: &str) -> Result<Option<SinkRow>> {
        let id = id.to_owned();
        self.read_with(move |conn| {
            conn.query_row(
                &format!("SELECT {SINK_COLUMNS} FROM sinks WHERE id = ?1"),
                [&id],
                sink_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a sink"))
        })
        .await
    }

    async fn list_sinks(&self, owner: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<SinkRow>> {
        let owner = owner.map(str::to_owned);
        let after = after.unwrap_or("").to_owned();
        self.read_with(move |conn| {
            // Two statements rather than `owner_tenant IS ?`, so a tenant's listing is a range
            // scan of `sinks_by_owner` instead of a walk over every sink.
            match &owner {
                Some(owner) => query_sinks(
                    conn,
                    &format!(
                        "SELECT {SINK_COLUMNS} FROM sinks WHERE owner_tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                    ),
                    params![owner, after, sql_limit(limit)],
                ),
                None => query_sinks(
                    conn,
                    &format!("SELECT {SINK_COLUMNS} FROM sinks WHERE id > ?1 ORDER BY id LIMIT ?2"),
                    params![after, sql_limit(limit)],
                ),
            }
        })
        .await
    }

    async fn update_sink(&self, sink: SinkRow) -> Result<Option<SinkRow>> {
        self.write(move |conn| {
            let updated = conn
                .query_row(
                    &format!(
                        "UPDATE sinks
                         SET spec = ?3, sealed_secrets = ?4, paused = ?5, pause_reason = ?6, updated_at = ?7,
                             revision = revision + 1
                         WHERE id = ?1 AND revision = ?2
                         RETURNING {SINK_COLUMNS}"
                    ),
                    params![
                        sink.id,
                        sink.revision,
                        sink.spec,
                        sink.sealed_secrets,
                        sink.paused,
                        sink.pause_reason,
                        auditrelay_core::time::now_rfc3339()
                    ],
                    sink_row,
                )
                .optional()
                .map_err(StoreError::sqlite("updating a sink"))?;
            match updated {
                Some(row) => Ok(Some(row)),
                // Nothing matched: either the sink is gone or its revision moved on. This runs
                // on the single writer, so nothing can change between the two statements.
                None if sink_exists(conn, &sink.id)? => Err(StoreError::Conflict(format!(
                    "sink `{}` was changed since revision {}; reload it and retry",
                    sink.id, sink.revision
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn set_sink_paused(&self, id: &str, paused: bool, reason: Option<&str>) -> Result<Option<SinkRow>> {
        let (id, reason) = (id.to_owned(), reason.map(str::to_owned));
        self.write(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE sinks SET paused = ?2, pause_reason = ?3, updated_at = ?4, revision = revision + 1
                     WHERE id = ?1
                     RETURNING {SINK_COLUMNS}"
                ),
                params![id, paused, reason, auditrelay_core::time::now_rfc3339()],
                sink_row,
            )
            .optional()
            .map_err(StoreError::sqlite("pausing or resuming a sink"))
        })
        .await
    }

    async fn delete_sink(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |conn| {
            // One transaction: a sink never half-disappears, leaving a cursor that a new sink
            // with the same id would inherit. Orphans of an already deleted sink (a batch the
            // engine recorded while the sink was being deleted) go too.
            let tx = conn
                .transaction()
                .map_err(StoreError::sqlite("starting sink deletion"))?;
            let existed = tx
                .execute("DELETE FROM sinks WHERE id = ?1", [&id])
                .map_err(StoreError::sqlite("deleting a sink"))?
                > 0;
            tx.execute("DELETE FROM cursors WHERE consumer = ?1", [&id])
                .map_err(StoreError::sqlite("deleting a sink's cursors"))?;
            tx.execute("DELETE FROM dead_letters WHERE sink_id = ?1", [&id])
                .map_err(StoreError::sqlite("deleting a sink's dead letters"))?;
            tx.execute("DELETE FROM delivery_attempts WHERE sink_id = ?1", [&id])
                .map_err(StoreError::sqlite("deleting a sink's delivery log"))?;
            tx.commit().map_err(StoreError::sqlite("committing sink deletion"))?;
            Ok(existed)
        })
        .await
    }
}

const DEAD_LETTER_COLUMNS: &str =
    "id, sink_id, tenant_id, first_offset, last_offset, event_count, reason, attempts, created_at";

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get(0)?,
        sink_id: r.get(1)?,
        tenant_id: r.get(2)?,
        first_offset: r.get(3)?,
        last_offset: r.get(4)?,
        event_count: r.get(5)?,
        reason: r.get(6)?,
        attempts: r.get(7)?,
        created_at: r.get(8)?,
    })
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn add_dead_letter(&self, dl: DeadLetter) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    dl.id,
                    dl.sink_id,
                    dl.tenant_id,
                    dl.first_offset,
                    dl.last_offset,
                    dl.event_count,
                    dl.reason,
                    dl.attempts,
                    dl.created_at
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("sink `{}` already has dead letter `{}`", dl.sink_id, dl.id))
                } else {
                    StoreError::Sqlite {
                        context: "adding a dead letter",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn list_dead_letters(&self, sink_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>> {
        let sink_id = sink_id.to_owned();
        let after = after.unwrap_or("").to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE sink_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(StoreError::sqlite("preparing dead letter list"))?;
            let rows = stmt
                .query_map(params![sink_id, after, sql_limit(limit)], dead_letter_row)
                .map_err(StoreError::sqlite("listing dead letters"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing dead letters"))
        })
        .await
    }

    async fn dead_letter(&self, sink_id: &str, id: &str) -> Result<Option<DeadLetter>> {
        let (sink_id, id) = (sink_id.to_owned(), id.to_owned());
        self.read_with(move |conn| {
            conn.query_row(
                &format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE sink_id = ?1 AND id = ?2"),
                [&sink_id, &id],
                dead_letter_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a dead letter"))
        })
        .await
    }

    async fn update_dead_letter_attempts(&self, sink_id: &str, id: &str, attempts: &str) -> Result<bool> {
        let (sink_id, id, attempts) = (sink_id.to_owned(), id.to_owned(), attempts.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE dead_letters SET attempts = ?3 WHERE sink_id = ?1 AND id = ?2",
                    [&sink_id, &id, &attempts],
                )
                .map_err(StoreError::sqlite("updating a dead letter's attempts"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_dead_letter(&self, sink_id: &str, id: &str) -> Result<bool> {
        let (sink_id, id) = (sink_id.to_owned(), id.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM dead_letters WHERE sink_id = ?1 AND id = ?2",
                    [&sink_id, &id],
                )
                .map_err(StoreError::sqlite("deleting a dead letter"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn count_dead_letters(&self, sink_id: &str) -> Result<u64> {
        let sink_id = sink_id.to_owned();
        self.read_with(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM dead_letters WHERE sink_id = ?1",
                [&sink_id],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("counting dead letters"))
        })
        .await
    }
}

const ATTEMPT_COLUMNS: &str = "sink_id, tenant_id, first_offset, last_offset, event_count, purpose, attempt, outcome, \
                               status, latency_ms, error, at";

#[async_trait]
impl DeliveryLog for SqliteStore {
    async fn record_attempts(&self, attempts: Vec<DeliveryAttempt>) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            // One transaction, so the engine's buffered rows cost one fsync, not one each.
            let tx = conn
                .transaction()
                .map_err(StoreError::sqlite("starting to record delivery attempts"))?;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                    ))
                    .map_err(StoreError::sqlite("preparing delivery attempt insert"))?;
                for a in &attempts {
                    insert
                        .execute(params![
                            a.sink_id,
                            a.tenant_id,
                            a.first_offset,
                            a.last_offset,
                            a.event_count,
                            a.purpose,
                            a.attempt,
                            a.outcome,
                            a.status,
                            a.latency_ms,
                            a.error,
                            a.at
                        ])
                        .map_err(StoreError::sqlite("recording a delivery attempt"))?;
                }
            }
            tx.commit()
                .map_err(StoreError::sqlite("committing delivery attempts"))?;
            Ok(())
        })
        .await
    }

    async fn list_attempts(
        &self,
        sink_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryAttempt)>> {
        let sink_id = sink_id.to_owned();
        // Row numbers are SQLite rowids, which never exceed i64::MAX.
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT seq, {ATTEMPT_COLUMNS} FROM delivery_attempts
                     WHERE sink_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(StoreError::sqlite("preparing delivery log read"))?;
            let rows = stmt
                .query_map(params![sink_id, before, sql_limit(limit)], |r| {
                    Ok((
                        r.get(0)?,
                        DeliveryAttempt {
                            sink_id: r.get(1)?,
                            tenant_id: r.get(2)?,
                            first_offset: r.get(3)?,
                            last_offset: r.get(4)?,
                            event_count: r.get(5)?,
                            purpose: r.get(6)?,
                            attempt: r.get(7)?,
                            outcome: r.get(8)?,
                            status: r.get(9)?,
                            latency_ms: r.get(10)?,
                            error: r.get(11)?,
                            at: r.get(12)?,
                        },
                    ))
                })
                .map_err(StoreError::sqlite("reading the delivery log"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("reading the delivery log"))
        })
        .await
    }

    async fn prune_attempts(&self, older_than: &str) -> Result<u64> {
        // `at` is compared as text so the delete is a range scan of `delivery_attempts_by_time`.
        // The cutoff is rendered in UTC with all 9 fractional digits: against canonical stored
        // times (3, 6 or 9 digits, `Z`) text order can then only err towards keeping a row
        // less than a millisecond older than the cutoff, never towards deleting a newer one.
        let cutoff = instant_text(older_than).ok_or_else(|| not_a_timestamp("prune_attempts", older_than))?;
        self.write(move |conn| {
            let n = conn
                .execute("DELETE FROM delivery_attempts WHERE at < ?1", [&cutoff])
                .map_err(StoreError::sqlite("pruning the delivery log"))?;
            Ok(n as u64)
        })
        .await
    }
}
