//! Sinks, dead letters and the delivery log on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{
    instant_ns, not_a_timestamp, sql_limit, sqlstate, to_i64, PostgresStore, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION,
};
use crate::{DeadLetter, DeadLetters, DeliveryAttempt, DeliveryLog, Result, SinkRow, SinkStore, StoreError};

const SINK_COLUMNS: &str =
    "id, owner_tenant, spec, sealed_secrets, paused, pause_reason, created_at, updated_at, revision";

fn sink_row(r: &PgRow) -> std::result::Result<SinkRow, sqlx::Error> {
    Ok(SinkRow {
        id: r.try_get(0)?,
        owner_tenant: r.try_get(1)?,
        spec: r.try_get(2)?,
        sealed_secrets: r.try_get(3)?,
        paused: r.try_get(4)?,
        pause_reason: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
        revision: r.try_get::<i64, _>(8)? as u64,
    })
}

fn one_sink(row: Option<PgRow>, context: &'static str) -> Result<Option<SinkRow>> {
    row.as_ref().map(sink_row).transpose().map_err(StoreError::pg(context))
}

#[async_trait]
impl SinkStore for PostgresStore {
    async fn create_sink(&self, sink: SinkRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO sinks ({SINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&sink.id)
        .bind(&sink.owner_tenant)
        .bind(&sink.spec)
        .bind(&sink.sealed_secrets)
        .bind(sink.paused)
        .bind(&sink.pause_reason)
        .bind(&sink.created_at)
        .bind(&sink.updated_at)
        .bind(to_i64(sink.revision, "revision")?)
        .execute(&self.pool)
        .await
        .map_err(|e| match sqlstate(&e).as_deref() {
            Some(UNIQUE_VIOLATION) => StoreError::Conflict(format!("sink `{}` already exists", sink.id)),
            // The only foreign key of `sinks` is the owner.
            Some(FOREIGN_KEY_VIOLATION) => StoreError::UnknownTenant(sink.owner_tenant.clone().unwrap_or_default()),
            _ => StoreError::Postgres {
                context: "creating a sink",
                source: e,
            },
        })?;
        Ok(())
    }

    async fn sink(&self, id: &str) -> Result<Option<SinkRow>> {
        let row = sqlx::query(&format!("SELECT {SINK_COLUMNS} FROM sinks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading a sink"))?;
        one_sink(row, "reading a sink")
    }

    async fn list_sinks(&self, owner: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<SinkRow>> {
        let after = after.unwrap_or("");
        let rows = match owner {
            Some(owner) => {
                sqlx::query(&format!(
                    "SELECT {SINK_COLUMNS} FROM sinks WHERE owner_tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(owner)
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {SINK_COLUMNS} FROM sinks WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(StoreError::pg("listing sinks"))?;
        rows.iter()
            .map(sink_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(StoreError::pg("listing sinks"))
    }

    async fn update_sink(&self, sink: SinkRow) -> Result<Option<SinkRow>> {
        let row = sqlx::query(&format!(
            "UPDATE sinks
             SET spec = $3, sealed_secrets = $4, paused = $5, pause_reason = $6, updated_at = $7,
                 revision = revision + 1
             WHERE id = $1 AND revision = $2
             RETURNING {SINK_COLUMNS}"
        ))
        .bind(&sink.id)
        .bind(to_i64(sink.revision, "revision")?)
        .bind(&sink.spec)
        .bind(&sink.sealed_secrets)
        .bind(sink.paused)
        .bind(&sink.pause_reason)
        .bind(auditrelay_core::time::now_rfc3339())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::pg("updating a sink"))?;
        if let Some(updated) = one_sink(row, "updating a sink")? {
            return Ok(Some(updated));
        }
        // Nothing matched: the sink is gone or its revision moved on. A delete racing in between
        // the two statements answers "gone", which is also true.
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sinks WHERE id = $1")
            .bind(&sink.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("looking up a sink"))?;
        match exists {
            Some(_) => Err(StoreError::Conflict(format!(
                "sink `{}` was changed since revision {}; reload it and retry",
                sink.id, sink.revision
            ))),
            None => Ok(None),
        }
    }

    async fn set_sink_paused(&self, id: &str, paused: bool, reason: Option<&str>) -> Result<Option<SinkRow>> {
        let row = sqlx::query(&format!(
            "UPDATE sinks SET paused = $2, pause_reason = $3, updated_at = $4, revision = revision + 1
             WHERE id = $1
             RETURNING {SINK_COLUMNS}"
        ))
        .bind(id)
        .bind(paused)
        .bind(reason)
        .bind(auditrelay_core::time::now_rfc3339())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::pg("pausing or resuming a sink"))?;
        one_sink(row, "pausing or resuming a sink")
    }

    async fn delete_sink(&self, id: &str) -> Result<bool> {
        // One transaction: a sink never half-disappears, leaving a cursor that a new sink with
        // the same id would inherit.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::pg("starting sink deletion"))?;
        let existed = sqlx::query("DELETE FROM sinks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("deleting a sink"))?
            .rows_affected()
            > 0;
        for (sql, context) in [
            ("DELETE FROM cursors WHERE consumer = $1", "deleting a sink's cursors"),
            (
                "DELETE FROM dead_letters WHERE sink_id = $1",
                "deleting a sink's dead letters",
            ),
            (
                "DELETE FROM delivery_attempts WHERE sink_id = $1",
                "deleting a sink's delivery log",
            ),
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::pg(context))?;
        }
        tx.commit().await.map_err(StoreError::pg("committing sink deletion"))?;
        Ok(existed)
    }
}

const DEAD_LETTER_COLUMNS: &str =
    "id, sink_id, tenant_id, first_offset, last_offset, event_count, reason, attempts, created_at";

fn dead_letter_row(r: &PgRow) -> std::result::Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        id: r.try_get(0)?,
        sink_id: r.try_get(1)?,
        tenant_id: r.try_get(2)?,
        first_offset: r.try_get::<i64, _>(3)? as u64,
        last_offset: r.try_get::<i64, _>(4)? as u64,
        event_count: r.try_get::<i64, _>(5)? as u64,
        reason: r.try_get(6)?,
        attempts: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

#[async_trait]
impl DeadLetters for PostgresStore {
    async fn add_dead_letter(&self, dl: DeadLetter) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&dl.id)
        .bind(&dl.sink_id)
        .bind(&dl.tenant_id)
        .bind(to_i64(dl.first_offset, "offset")?)
        .bind(to_i64(dl.last_offset, "offset")?)
        .bind(to_i64(dl.event_count, "event count")?)
        .bind(&dl.reason)
        .bind(&dl.attempts)
        .bind(&dl.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if sqlstate(&e).as_deref() == Some(UNIQUE_VIOLATION) {
                StoreError::Conflict(format!("sink `{}` already has dead letter `{}`", dl.sink_id, dl.id))
            } else {
                StoreError::Postgres {
                    context: "adding a dead letter",
                    source: e,
                }
            }
        })?;
        Ok(())
    }

    async fn list_dead_letters(&self, sink_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE sink_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(sink_id)
        .bind(after.unwrap_or(""))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::pg("listing dead letters"))?;
        rows.iter()
            .map(dead_letter_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(StoreError::pg("listing dead letters"))
    }

    async fn dead_letter(&self, sink_id: &str, id: &str) -> Result<Option<DeadLetter>> {
        let row = sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE sink_id = $1 AND id = $2"
        ))
        .bind(sink_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::pg("reading a dead letter"))?;
        row.as_ref()
            .map(dead_letter_row)
            .transpose()
            .map_err(StoreError::pg("reading a dead letter"))
    }

    async fn update_dead_letter_attempts(&self, sink_id: &str, id: &str, attempts: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE dead_letters SET attempts = $3 WHERE sink_id = $1 AND id = $2")
            .bind(sink_id)
            .bind(id)
            .bind(attempts)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("updating a dead letter's attempts"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_dead_letter(&self, sink_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dead_letters WHERE sink_id = $1 AND id = $2")
            .bind(sink_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("deleting a dead letter"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_dead_letters(&self, sink_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE sink_id = $1")
            .bind(sink_id)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::pg("counting dead letters"))?;
        Ok(n as u64)
    }
}

const ATTEMPT_COLUMNS: &str = "sink_id, tenant_id, first_offset, last_offset, event_count, purpose, attempt, outcome, \
                               status, latency_ms, error, at";

/// The delivery log's rows as column arrays, for one multi-row insert.
#[derive(Default)]
struct AttemptColumns<'a> {
    sink_id: Vec<&'a str>,
    tenant_id: Vec<&'a str>,
    first_offset: Vec<i64>,
    last_offset: Vec<i64>,
    event_count: Vec<i64>,
    purpose: Vec<&'a str>,
    attempt: Vec<i64>,
    outcome: Vec<&'a str>,
    status: Vec<Option<i32>>,
    latency_ms: Vec<f64>,
    error: Vec<Option<&'a str>>,
    at: Vec<&'a str>,
    at_ns: Vec<i64>,
}

impl<'a> AttemptColumns<'a> {
    /// Every value is checked before anything is written, so a bad row fails the whole flush.
    fn new(attempts: &'a [DeliveryAttempt]) -> Result<Self> {
        let mut c = AttemptColumns::default();
        for a in attempts {
            c.sink_id.push(&a.sink_id);
            c.tenant_id.push(&a.tenant_id);
            c.first_offset.push(to_i64(a.first_offset, "offset")?);
            c.last_offset.push(to_i64(a.last_offset, "offset")?);
            c.event_count.push(to_i64(a.event_count, "event count")?);
            c.purpose.push(&a.purpose);
            c.attempt.push(i64::from(a.attempt));
            c.outcome.push(&a.outcome);
            c.status.push(a.status.map(i32::from));
            c.latency_ms.push(a.latency_ms);
            c.error.push(a.error.as_deref());
            c.at.push(&a.at);
            c.at_ns
                .push(instant_ns(&a.at).ok_or_else(|| not_a_timestamp("record_attempts", &a.at))?);
        }
        Ok(c)
    }
}

#[async_trait]
impl DeliveryLog for PostgresStore {
    async fn record_attempts(&self, attempts: Vec<DeliveryAttempt>) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let c = AttemptColumns::new(&attempts)?;
        // One statement (one implicit transaction): all rows or none.
        sqlx::query(&format!(
            "INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS}, at_ns)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[],
                                  $7::bigint[], $8::text[], $9::int[], $10::float8[], $11::text[], $12::text[],
                                  $13::bigint[])"
        ))
        .bind(&c.sink_id)
        .bind(&c.tenant_id)
        .bind(&c.first_offset)
        .bind(&c.last_offset)
        .bind(&c.event_count)
        .bind(&c.purpose)
        .bind(&c.attempt)
        .bind(&c.outcome)
        .bind(&c.status)
        .bind(&c.latency_ms)
        .bind(&c.error)
        .bind(&c.at)
        .bind(&c.at_ns)
        .execute(&self.pool)
        .await
        .map_err(StoreError::pg("recording delivery attempts"))?;
        Ok(())
    }

    async fn list_attempts(
        &self,
        sink_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryAttempt)>> {
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows = sqlx::query(&format!(
            "SELECT seq, {ATTEMPT_COLUMNS} FROM delivery_attempts
             WHERE sink_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(sink_id)
        .bind(before)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::pg("reading the delivery log"))?;
        let attempt = |r: &PgRow| -> std::result::Result<(u64, DeliveryAttempt), sqlx::Error> {
            Ok((
                r.try_get::<i64, _>(0)? as u64,
                DeliveryAttempt {
                    sink_id: r.try_get(1)?,
                    tenant_id: r.try_get(2)?,
                    first_offset: r.try_get::<i64, _>(3)? as u64,
                    last_offset: r.try_get::<i64, _>(4)? as u64,
                    event_count: r.try_get::<i64, _>(5)? as u64,
                    purpose: r.try_get(6)?,
                    attempt: r.try_get::<i64, _>(7)? as u32,
                    outcome: r.try_get(8)?,
                    status: r.try_get::<Option<i32>, _>(9)?.map(|s| s as u16),
                    latency_ms: r.try_get(10)?,
                    error: r.try_get(11)?,
                    at: r.try_get(12)?,
                },
            ))
        };
        rows.iter()
            .map(attempt)
            .collect::<std::result::Result<_, _>>()
            .map_err(StoreError::pg("reading the delivery log"))
    }

    async fn prune_attempts(&self, older_than: &str) -> Result<u64> {
        let cutoff = instant_ns(older_than).ok_or_else(|| not_a_timestamp("prune_attempts", older_than))?;
        let done = sqlx::query("DELETE FROM delivery_attempts WHERE at_ns < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("pruning the delivery log"))?;
        Ok(done.rows_affected())
    }
}
