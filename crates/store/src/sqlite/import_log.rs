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

#[cfg(test)]
mod tests {
    use rusqlite::{params, Connection};

    use crate::seglog::{Import, LogOptions, SegLog};
    use crate::sqlite::{schema, SqliteStore, DB_FILE};
    use crate::{chain, Catalog, Checkpoints, EventLog, Notifier, ReadQuery, Retention, Store};

    fn body(i: u64) -> String {
        format!(
            r#"{{"id":"evt-{i}","tenant_id":"acme","type":"a.b","occurred_at":"2025-01-01T00:00:0{}.000Z","received_at":"2025-01-01T00:00:0{}.000Z","outcome":"success","metadata":{{"n":{i}}}}}"#,
            i % 10,
            i % 10
        )
    }

    /// A data dir as the previous version wrote it (schema 4: events, client ids and the chain
    /// in SQLite, a purged prefix): offsets 1..=3 purged, 4..=30 stored, client ids on the even
    /// ones; a second tenant that was purged entirely.
    fn write_previous_version(dir: &std::path::Path) -> [u8; 32] {
        let mut conn = Connection::open(dir.join(DB_FILE)).unwrap();
        schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let mut c = chain::GENESIS;
        for i in 1..=30u64 {
            c = chain::link(&c, i, &body(i)).unwrap();
            if i <= 3 {
                continue; // purged: the row is gone, the chain went on
            }
            tx.execute(
                "INSERT INTO events (tenant_id, seq, id, type, occurred_at, received_at, body, raw, chain)
                 VALUES ('acme', ?1, ?2, 'a.b', '2025-01-01T00:00:00.000Z', ?3, ?4, '', ?5)",
                params![
                    i as i64,
                    format!("evt-{i}"),
                    format!("2025-01-01T00:00:0{}.000Z", i % 10),
                    body(i),
                    &c[..]
                ],
            )
            .unwrap();
            if i % 2 == 0 {
                tx.execute(
                    "INSERT INTO client_ids (tenant_id, id, seq) VALUES ('acme', ?1, ?2)",
                    params![format!("evt-{i}"), i as i64],
                )
                .unwrap();
            }
        }
        tx.execute(
            "INSERT INTO tenants (id, name, created_at, head, chain) VALUES ('acme', 'Acme', '2025-01-01T00:00:00.000Z', 30, ?1),
                    ('gone', 'Gone', '2025-01-01T00:00:00.000Z', 5, ?2)",
            params![&c[..], &[7u8; 32][..]],
        )
        .unwrap();
        tx.execute_batch("INSERT INTO retention (tenant_id, purged_through) VALUES ('acme', 3), ('gone', 5);")
            .unwrap();
        tx.commit().unwrap();
        c
    }

    async fn offsets(store: &SqliteStore, tenant: &str) -> Vec<u64> {
        let q = ReadQuery {
            tenant: tenant.into(),
            after: 0,
            limit: 1000,
            filter: auditrelay_core::TypeFilter::all(),
        };
        store.read(q).await.unwrap().iter().map(|e| e.offset).collect()
    }

    #[tokio::test]
    async fn a_previous_data_dir_moves_into_the_log_resumably_with_chain_ids_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        let head_chain = write_previous_version(dir.path());

        // An import a crash interrupted: the first 10 stored events of `acme` made it.
        {
            let log = SegLog::open(
                &dir.path().join(crate::seglog::LOG_DIR),
                &["acme".into(), "gone".into()],
                std::sync::Arc::new(Notifier::default()),
                None,
                LogOptions::default(),
            )
            .unwrap();
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            let first = super::read_batch(&conn, "acme", 3).unwrap();
            let head = log
                .import_blocking(Import {
                    tenant: "acme".into(),
                    purged: 3,
                    chain_at_purged: chain::GENESIS,
                    events: first.into_iter().take(10).collect(),
                })
                .unwrap();
            assert_eq!(head, 13);
            log.close();
        }

        let store = SqliteStore::open(dir.path(), None).unwrap();
        assert_eq!(store.head("acme").await.unwrap(), 30);
        assert_eq!(store.purged_through("acme").await.unwrap(), 3);
        assert_eq!(offsets(&store, "acme").await, (4..=30).collect::<Vec<_>>());
        assert_eq!(store.chain_head("acme").await.unwrap(), Some((30, head_chain)));
        // Every stored event kept its chain value and body.
        let ev = store
            .read(ReadQuery {
                tenant: "acme".into(),
                after: 19,
                limit: 1,
                filter: auditrelay_core::TypeFilter::all(),
            })
            .await
            .unwrap();
        assert_eq!(ev[0].body, body(20));
        // A purged-out tenant keeps its head and the chain value after it.
        assert_eq!(store.head("gone").await.unwrap(), 5);
        assert_eq!(store.chain_head("gone").await.unwrap(), Some((5, [7u8; 32])));
        // Client ids carried over: a repeat gets its original offset; a server id did not count.
        let repeat: Vec<auditrelay_core::NewEvent> = auditrelay_core::parse_request(
            br#"[{"id":"evt-20","type":"a.b"},{"id":"evt-21","type":"a.b"}]"#,
            auditrelay_core::BodyFormat::Json,
            &auditrelay_core::Limits::default(),
        )
        .unwrap()
        .into_iter()
        .map(|p| p.into_new_event("acme".into(), "2026-01-01T00:00:00.000Z"))
        .collect();
        let out = store.append(repeat).await.unwrap();
        assert_eq!((out[0].offset, out[0].duplicate), (20, true));
        assert_eq!((out[1].offset, out[1].duplicate), (31, false));
        // The new event links onto the imported chain.
        let (_, after) = store.chain_head("acme").await.unwrap().unwrap();
        assert_ne!(after, head_chain);
        store.close().await;

        // The old tables are gone, and a second start imports nothing again.
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('events', 'client_ids')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        drop(conn);
        let store = SqliteStore::open(dir.path(), None).unwrap();
        assert_eq!(store.head("acme").await.unwrap(), 31);
        assert_eq!(store.tenant("gone").await.unwrap().unwrap().name, "Gone");
        store.close().await;
    }
}
