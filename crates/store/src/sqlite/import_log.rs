//! The one-time move of events from the SQLite log (schema versions 1–4 kept them in the
//! `events` and `client_ids` tables) into the segmented log. Resumable: each tenant continues
//! after the head the segmented log already has, and the old tables are dropped only after
//! every tenant is complete, in one transaction.

use rusqlite::{params, Connection, OptionalExtension};

use crate::seglog::{Import, ImportedEvent, SegLog};
use crate::{chain, Result, StoreError};

const BATCH: i64 = 10_000;

fn has_events_table(conn: &Connection) -> Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(StoreError::sqlite("looking for the old events table"))
}

/// Moves every event of the old tables into `log`, then drops the tables.
pub(crate) fn import_old_log(conn: &mut Connection, log: &SegLog) -> Result<()> {
    if !has_events_table(conn)? {
        return Ok(());
    }
    let tenants: Vec<(String, i64, Option<Vec<u8>>, i64)> = {
        let mut stmt = conn
            .prepare(
                "SELECT t.id, t.head, t.chain, coalesce(r.purged_through, 0)
                 FROM tenants t LEFT JOIN retention r ON r.tenant_id = t.id ORDER BY t.id",
            )
            .map_err(StoreError::sqlite("listing tenants to import"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(StoreError::sqlite("listing tenants to import"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(StoreError::sqlite("listing tenants to import"))?
    };
    let mut moved = 0u64;
    for (tenant, old_head, old_chain, purged) in tenants {
        let old_head = old_head as u64;
        let purged = (purged as u64).min(old_head);
        if log.head(&tenant) >= old_head {
            continue;
        }
        // The chain after the purged prefix matters only when nothing follows it.
        let chain_at_purged = match chain::from_column(old_chain, "tenants.chain")? {
            Some(c) if purged == old_head => c,
            _ => chain::GENESIS,
        };
        let mut after = log.head(&tenant).max(purged) as i64;
        let mut first = true;
        loop {
            let events = read_batch(conn, &tenant, after)?;
            if events.is_empty() && !first {
                break;
            }
            first = false;
            let last = events.last().map(|e| e.offset as i64);
            moved += events.len() as u64;
            let head = log.import_blocking(Import {
                tenant: tenant.clone(),
                purged,
                chain_at_purged,
                events,
            })?;
            match last {
                Some(l) => after = l,
                None => break,
            }
            if head >= old_head {
                break;
            }
        }
        if log.head(&tenant) != old_head {
            return Err(StoreError::Corrupt(format!(
                "importing tenant `{tenant}`: the old log's head is {old_head} but {} events arrived",
                log.head(&tenant)
            )));
        }
    }
    let tx = conn
        .transaction()
        .map_err(StoreError::sqlite("starting to drop the old log"))?;
    tx.execute_batch("DROP TABLE client_ids; DROP TABLE events;")
        .map_err(StoreError::sqlite("dropping the old log tables"))?;
    tx.commit().map_err(StoreError::sqlite("dropping the old log tables"))?;
    if moved > 0 {
        tracing::info!(events = moved, "moved the SQLite event log into the segmented log");
    }
    Ok(())
}

fn read_batch(conn: &Connection, tenant: &str, after: i64) -> Result<Vec<ImportedEvent>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT e.seq, e.id, e.type, e.received_at, e.body, e.chain,
                    EXISTS (SELECT 1 FROM client_ids c WHERE c.tenant_id = e.tenant_id AND c.id = e.id AND c.seq = e.seq)
             FROM events e WHERE e.tenant_id = ?1 AND e.seq > ?2 ORDER BY e.seq LIMIT ?3",
        )
        .map_err(StoreError::sqlite("preparing the import read"))?;
    let rows = stmt
        .query_map(params![tenant, after, BATCH], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })
        .map_err(StoreError::sqlite("reading events to import"))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, id, event_type, received_at, body, chain_col, client_id) =
            row.map_err(StoreError::sqlite("reading events to import"))?;
        let chain = chain::from_column(chain_col, "events.chain")?
            .ok_or_else(|| StoreError::Corrupt(format!("event {seq} of `{tenant}` has no chain value")))?;
        out.push(ImportedEvent {
            offset: seq as u64,
            id,
            event_type,
            received_at,
            body,
            chain,
            client_id,
        });
    }
    Ok(out)
}
