//! Retention on SQLite: policies and purges. Purges run on the writer thread, in order with
//! appends, one bounded chunk per call, so an append waits at most for one chunk.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{Catalog, Result, Retention, StoreError};

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
        Ok(self.log.purged_through(tenant))
    }

    async fn purge_events(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        if self.tenant(tenant).await?.is_none() {
            return Err(StoreError::UnknownTenant(tenant.to_owned()));
        }
        self.log.purge(tenant, through, max_events).await
    }
}
