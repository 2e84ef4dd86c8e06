//! Retention on SQLite: policies and purges. Purges run on the writer thread, in order with
//! appends, one bounded chunk per call, so an append waits at most for one chunk.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{Result, Retention, StoreError};

#[async_trait]
impl Retention for SqliteStore {
    async fn retention_policy(&self, tenant: &str) -> Result<Option<String>> {
        let tenant = tenant.to_owned();
        self.read_with(move |conn| {
            let policy: Option<Option<String>> = conn
                .query_row("SELECT policy FROM retention WHERE tenant_id = ?1", [&tenant], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(StoreError::sqlite("reading a retention policy"))?;
            Ok(policy.flatten())
        })
        .await
    }

    async fn set_retention_policy(&self, tenant: &str, policy: Option<&str>) -> Result<()> {
        let (tenant, policy) = (tenant.to_owned(), policy.map(str::to_owned));
        self.write(move |conn| {
            let known = conn
                .query_row("SELECT 1 FROM tenants WHERE id = ?1", [&tenant], |_| Ok(()))
                .optional()
                .map_err(StoreError::sqlite("looking up a tenant"))?;
            if known.is_none() {
                return Err(StoreError::UnknownTenant(tenant));
            }
            conn.execute(
                "INSERT INTO retention (tenant_id, policy) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy",
                params![tenant, policy],
            )
            .map_err(StoreError::sqlite("storing a retention policy"))?;
            Ok(())
        })
        .await
    }

    async fn purged_through(&self, tenant: &str) -> Result<u64> {
        let tenant = tenant.to_owned();
        self.read_with(move |conn| purged_through(conn, &tenant)).await
    }

    async fn purge_events(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        let tenant = tenant.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(StoreError::sqlite("starting a purge"))?;
            let head: Option<i64> = tx
                .query_row("SELECT head FROM tenants WHERE id = ?1", [&tenant], |r| r.get(0))
                .optional()
                .map_err(StoreError::sqlite("reading tenant head"))?;
            let Some(head) = head else {
                return Err(StoreError::UnknownTenant(tenant));
            };
            let from = purged_through(&tx, &tenant)?;
            let to = through.min(head as u64).min(from.saturating_add(max_events));
            if to <= from {
                return Ok(from);
            }
            let (lo, hi) = (from as i64, to as i64);
            // Client ids of purged events go too: the dedup window ends where the log does.
            tx.execute(
                "DELETE FROM client_ids WHERE tenant_id = ?1 AND id IN
                   (SELECT id FROM events WHERE tenant_id = ?1 AND seq > ?2 AND seq <= ?3)
                 AND seq > ?2 AND seq <= ?3",
                params![tenant, lo, hi],
            )
            .map_err(StoreError::sqlite("purging client ids"))?;
            tx.execute(
                "DELETE FROM events WHERE tenant_id = ?1 AND seq > ?2 AND seq <= ?3",
                params![tenant, lo, hi],
            )
            .map_err(StoreError::sqlite("purging events"))?;
            tx.execute(
                "INSERT INTO retention (tenant_id, purged_through) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET purged_through = excluded.purged_through",
                params![tenant, hi],
            )
            .map_err(StoreError::sqlite("recording a purge"))?;
            tx.commit().map_err(StoreError::sqlite("committing a purge"))?;
            Ok(to)
        })
        .await
    }
}

pub(super) fn purged_through(conn: &rusqlite::Connection, tenant: &str) -> Result<u64> {
    let through: Option<i64> = conn
        .query_row(
            "SELECT purged_through FROM retention WHERE tenant_id = ?1",
            [tenant],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("reading how far a log was purged"))?;
    Ok(through.unwrap_or(0) as u64)
}
