//! The transactional-outbox sources (`postgres_outbox`, `mysql_outbox`): an application inserts
//! audit rows in its own transaction; this relay reads committed rows in id order, appends them
//! durably with client id `<source id>:<row id>`, then deletes (or marks) them.
//!
//! No row is skipped whatever the commit order of concurrent writers: every batch reads the
//! *lowest remaining* ids (no last-id cursor), so a row whose transaction commits late is simply
//! read by a later batch. A crash between the append and the delete re-reads the rows, and the
//! client id makes the repeat a no-op. A row that cannot become an event is appended as
//! `outbox.malformed` (row id, reason, raw columns) and then deleted/marked like any other, so
//! it never blocks the rows behind it.

mod config;
mod db;

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

pub use config::{AfterAppend, MysqlOutboxConfig, OutboxConfig, OutboxSettings, PostgresOutboxConfig};

use crate::append::validate_event;
use crate::kinds::ConfigError;
use crate::supervisor::RunContext;
use config::EventShape;
use db::{Db, OutboxRow};

pub const MALFORMED_TYPE: &str = "outbox.malformed";
/// Longest raw row text kept in a malformed event.
const MAX_RAW_BYTES: usize = 16 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn database_url(secrets: &std::collections::BTreeMap<String, String>) -> Result<&str, ConfigError> {
    secrets
        .get("database_url")
        .map(String::as_str)
        .ok_or_else(|| ConfigError::new("secrets.database_url", "is required"))
}

async fn preflight_any(
    settings: OutboxSettings,
    postgres: bool,
    secrets: &std::collections::BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let url = database_url(secrets)?;
    let db = Db::connect(postgres, url)
        .await
        .map_err(|e| ConfigError::new("secrets.database_url", e))?;
    let result = db.check_table(&settings).await;
    db.close().await;
    result.map_err(|e| ConfigError::new("config.table", e))
}

pub mod postgres {
    use super::*;

    pub(crate) async fn preflight(
        config: &PostgresOutboxConfig,
        _previous: Option<&PostgresOutboxConfig>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        preflight_any(config.0.settings(true)?, true, secrets).await
    }

    pub(crate) fn conflicts(_: &PostgresOutboxConfig, _: &PostgresOutboxConfig) -> Option<String> {
        None
    }

    pub(crate) async fn run(config: &PostgresOutboxConfig, ctx: RunContext) -> Result<(), String> {
        let settings = config.0.settings(true).map_err(|e| e.to_string())?;
        super::run(settings, true, ctx).await
    }
}

pub mod mysql {
    use super::*;

    pub(crate) async fn preflight(
        config: &MysqlOutboxConfig,
        _previous: Option<&MysqlOutboxConfig>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        preflight_any(config.0.settings(false)?, false, secrets).await
    }

    pub(crate) fn conflicts(_: &MysqlOutboxConfig, _: &MysqlOutboxConfig) -> Option<String> {
        None
    }

    pub(crate) async fn run(config: &MysqlOutboxConfig, ctx: RunContext) -> Result<(), String> {
        let settings = config.0.settings(false).map_err(|e| e.to_string())?;
        super::run(settings, false, ctx).await
    }
}

/// Relays until cancelled. Database errors are reported in health and retried with a growing
/// delay (the connection pool reconnects), never ending the source.
async fn run(settings: OutboxSettings, postgres: bool, ctx: RunContext) -> Result<(), String> {
    let url = database_url(&ctx.secrets).map_err(|e| e.to_string())?.to_owned();
    let mut backoff = Duration::from_millis(200);
    let poll = Duration::from_millis(settings.poll_interval_ms);
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        let db = match Db::connect(postgres, &url).await {
            Ok(db) => db,
            Err(e) => {
                fail(&ctx, &format!("connecting: {e}"));
                if wait(&ctx, backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut listener = match &settings.notify_channel {
            Some(channel) => match db.listen(&url, channel).await {
                Ok(l) => Some(l),
                Err(e) => {
                    fail(&ctx, &format!("LISTEN {channel}: {e}"));
                    None
                }
            },
            None => None,
        };
        loop {
            match relay_all(&db, &settings, &ctx).await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    ctx.status.set_state("running");
                }
                Err(e) => {
                    fail(&ctx, &e);
                    if wait(&ctx, backoff).await {
                        db.close().await;
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if listener.is_none() && settings.notify_channel.is_some() {
                        break; // reconnect, listener included
                    }
                    continue;
                }
            }
            let woke = match listener.as_mut() {
                Some(l) => tokio::select! {
                    _ = ctx.cancel.cancelled() => None,
                    r = l.recv() => Some(r.is_ok()),
                    _ = tokio::time::sleep(poll) => Some(true),
                },
                None => tokio::select! {
                    _ = ctx.cancel.cancelled() => None,
                    _ = tokio::time::sleep(poll) => Some(true),
                },
            };
            match woke {
                None => {
                    db.close().await;
                    return Ok(());
                }
                Some(true) => {}
                // The listening connection broke: it reconnects on the next `recv`; meanwhile
                // poll so nothing waits for a notification that was lost.
                Some(false) => {
                    if wait(&ctx, poll.min(backoff)).await {
                        db.close().await;
                        return Ok(());
                    }
                }
            }
        }
        db.close().await;
    }
}

fn fail(ctx: &RunContext, error: &str) {
    tracing::warn!(source = %ctx.source_id, error = %error, "outbox relay error; retrying");
    ctx.status.set_state("failed");
    ctx.status.set_error(error.to_owned());
}

/// Sleeps `d`; `true` when cancelled meanwhile.
async fn wait(ctx: &RunContext, d: Duration) -> bool {
    tokio::select! {
        _ = ctx.cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// How often, at most, the rows waiting are counted while a backlog drains; between counts the
/// figure is counted down by the rows relayed.
const LAG_RECOUNT: Duration = Duration::from_secs(1);

/// Relays full batches until the table has no more committed rows (or cancelled), keeping
/// health's `lag` (committed rows waiting) current.
async fn relay_all(db: &Db, settings: &OutboxSettings, ctx: &RunContext) -> Result<(), String> {
    // (rows waiting as last counted minus those relayed since, when it was counted)
    let mut waiting: Option<(u64, Instant)> = None;
    loop {
        let rows = db.fetch(settings).await?;
        let n = rows.len();
        if n == 0 {
            ctx.status.set_lag(Some(0));
            return Ok(());
        }
        let full = n == settings.batch_size as usize;
        // Only a full batch says there may be more: count then (the count includes this batch).
        if full && waiting.is_none_or(|(_, at)| at.elapsed() >= LAG_RECOUNT) {
            waiting = Some((db.count_waiting(settings).await?, Instant::now()));
        }
        relay_batch(db, settings, ctx, rows).await?;
        if !full || ctx.cancel.is_cancelled() {
            ctx.status.set_lag(Some(0));
            return Ok(());
        }
        if let Some((left, at)) = waiting {
            let left = left.saturating_sub(n as u64);
            ctx.status.set_lag(Some(left));
            waiting = Some((left, at));
        }
    }
}

async fn relay_batch(db: &Db, settings: &OutboxSettings, ctx: &RunContext, rows: Vec<OutboxRow>) -> Result<(), String> {
    ctx.status.add_received(rows.len() as u64);
    let limits = ctx.appender.limits();
    let now = ctx.appender.now_rfc3339();
    let mut events = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut malformed = 0u64;
    let mut known_tenants: Vec<String> = Vec::new();
    for row in &rows {
        let client_id = format!("{}:{}", ctx.source_id, row.id);
        let tenant = match (&row.tenant, &ctx.tenant) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(t)) if settings.tenant_column.is_none() => Ok(t.clone()),
            (None, _) => Err("the tenant column is NULL".to_owned()),
        };
        let tenant = match tenant {
            Ok(t) if known_tenants.contains(&t) => Ok(t),
            Ok(t) => match ctx.appender.tenant_exists(&t).await {
                Ok(true) => {
                    known_tenants.push(t.clone());
                    Ok(t)
                }
                Ok(false) => Err(format!(
                    "tenant `{}` does not exist",
                    t.chars().take(64).collect::<String>()
                )),
                Err(e) => return Err(format!("checking tenant: {e}")),
            },
            Err(e) => Err(e),
        };
        let result = tenant.and_then(|t| {
            let event = to_event(settings, row, &client_id)?;
            validate_event(&event, &t, &limits, &now)
        });
        match result {
            Ok(e) => events.push(e),
            Err(reason) => {
                malformed += 1;
                ctx.status
                    .set_error(format!("row {}: {reason} (appended as {MALFORMED_TYPE})", row.id));
                let fallback = ctx
                    .tenant
                    .clone()
                    .unwrap_or_else(|| auditrelay_core::ids::SYSTEM_TENANT.to_owned());
                let tenant = row
                    .tenant
                    .as_ref()
                    .filter(|t| known_tenants.contains(t))
                    .cloned()
                    .unwrap_or(fallback);
                let m = malformed_event(settings, row, &client_id, &ctx.source_id, &reason);
                events.push(
                    validate_event(&m, &tenant, &limits, &now)
                        .map_err(|e| format!("row {}: the malformed-row event is invalid: {e}", row.id))?,
                );
            }
        }
        ids.push(row.id);
    }
    let outcomes = ctx
        .appender
        .append(events)
        .await
        .map_err(|e| format!("appending: {e}"))?;
    let fresh = outcomes.iter().filter(|o| !o.duplicate).count() as u64;
    ctx.status.add_appended(fresh);
    ctx.status.add_malformed(malformed);
    db.finish(settings, &ids).await
}

/// The row as an event (without tenant), with the source's client id.
fn to_event(settings: &OutboxSettings, row: &OutboxRow, client_id: &str) -> Result<Value, String> {
    let mut event = match &settings.shape {
        EventShape::Json(column) => {
            let text = row
                .values
                .first()
                .and_then(|v| v.as_deref())
                .ok_or_else(|| format!("`{column}` is NULL"))?;
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(format!("`{column}` is not a JSON object")),
                Err(e) => return Err(format!("`{column}` is not JSON: {e}")),
            }
        }
        EventShape::Columns(map) => {
            let mut m = Map::new();
            for ((field, column), value) in map.iter().zip(&row.values) {
                let Some(text) = value else { continue };
                let value = if config::is_object_field(field) {
                    serde_json::from_str::<Value>(text).map_err(|e| format!("`{column}` ({field}) is not JSON: {e}"))?
                } else if field == "severity" {
                    Value::from(
                        text.trim()
                            .parse::<i64>()
                            .map_err(|_| format!("`{column}` (severity) is not an integer"))?,
                    )
                } else {
                    Value::String(text.clone())
                };
                match field.split_once('.') {
                    Some((top, member)) => {
                        let obj = m.entry(top.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                        match obj.as_object_mut() {
                            Some(o) => {
                                o.insert(member.to_owned(), value);
                            }
                            None => return Err(format!("`{top}` is mapped both whole and by member")),
                        }
                    }
                    None => {
                        m.insert(field.clone(), value);
                    }
                }
            }
            m
        }
    };
    event.insert("id".into(), Value::String(client_id.to_owned()));
    Ok(Value::Object(event))
}

fn malformed_event(settings: &OutboxSettings, row: &OutboxRow, client_id: &str, source: &str, reason: &str) -> Value {
    let mut raw = Map::new();
    let columns: Vec<&str> = match &settings.shape {
        EventShape::Json(c) => vec![c.as_str()],
        EventShape::Columns(map) => map.iter().map(|(_, c)| c.as_str()).collect(),
    };
    let mut budget = MAX_RAW_BYTES;
    for (column, value) in columns.iter().zip(&row.values) {
        let v = match value {
            Some(text) => {
                let mut end = text.len().min(budget);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                budget -= end;
                Value::String(text[..end].to_owned())
            }
            None => Value::Null,
        };
        raw.insert((*column).to_owned(), v);
    }
    if let (Some(c), Some(t)) = (&settings.tenant_column, &row.tenant) {
        raw.insert(c.clone(), Value::String(t.chars().take(256).collect()));
    }
    json!({
        "id": client_id,
        "type": MALFORMED_TYPE,
        "outcome": "failure",
        "metadata": {"outbox": {
            "source": source,
            "table": settings.table,
            "row_id": row.id,
            "reason": reason.chars().take(1024).collect::<String>(),
            "row": raw,
        }},
    })
}
