//! Retention on PostgreSQL: policies and purges (the `retention` table, migration 4). A purge
//! is one short transaction per chunk that locks only the tenant's `retention` row, so nodes
//! purging at once take turns and appends (which lock `tenants`) never wait for it.

use async_trait::async_trait;
use sqlx::Connection;

use super::{sqlstate, to_i64, PostgresStore, FOREIGN_KEY_VIOLATION};
use crate::{Result, Retention, StoreError};

fn unknown_tenant_or<'a>(tenant: &'a str, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
    move |e| match sqlstate(&e).as_deref() {
        Some(FOREIGN_KEY_VIOLATION) => StoreError::UnknownTenant(tenant.to_owned()),
        _ => StoreError::pg(context)(e),
    }
}

#[async_trait]
impl Retention for PostgresStore {
    async fn retention_policy(&self, tenant: &str) -> Result<Option<String>> {
        let policy: Option<Option<String>> = sqlx::query_scalar("SELECT policy FROM retention WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading a retention policy"))?;
        Ok(policy.flatten())
    }

    async fn set_retention_policy(&self, tenant: &str, policy: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO retention (tenant_id, policy) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy",
        )
        .bind(tenant)
        .bind(policy)
        .execute(&self.pool)
        .await
        .map_err(unknown_tenant_or(tenant, "storing a retention policy"))?;
        Ok(())
    }

    async fn purged_through(&self, tenant: &str) -> Result<u64> {
        let through: Option<i64> = sqlx::query_scalar("SELECT purged_through FROM retention WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading how far a log was purged"))?;
        Ok(through.unwrap_or(0) as u64)
    }

    async fn purge_events(&self, tenant: &str, through: u64, max_events: u64) -> Result<u64> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::pg("taking a connection for a purge"))?;
        let mut tx = conn.begin().await.map_err(StoreError::pg("starting a purge"))?;
        sqlx::query("INSERT INTO retention (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(unknown_tenant_or(tenant, "starting a purge"))?;
        let from: i64 = sqlx::query_scalar("SELECT purged_through FROM retention WHERE tenant_id = $1 FOR UPDATE")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::pg("locking the purge position"))?;
        let head: i64 = sqlx::query_scalar("SELECT head FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::pg("reading tenant head"))?;
        let from = from as u64;
        let to = through.min(head as u64).min(from.saturating_add(max_events));
        if to <= from {
            return Ok(from);
        }
        let (lo, hi) = (to_i64(from, "purge start")?, to_i64(to, "purge end")?);
        // Client ids of purged events go too: the dedup window ends where the log does.
        sqlx::query(
            "DELETE FROM client_ids c USING events e
             WHERE c.tenant_id = $1 AND e.tenant_id = $1 AND e.seq > $2 AND e.seq <= $3
               AND c.id = e.id AND c.seq = e.seq",
        )
        .bind(tenant)
        .bind(lo)
        .bind(hi)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::pg("purging client ids"))?;
        sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3")
            .bind(tenant)
            .bind(lo)
            .bind(hi)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("purging events"))?;
        sqlx::query("UPDATE retention SET purged_through = $2 WHERE tenant_id = $1")
            .bind(tenant)
            .bind(hi)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("recording a purge"))?;
        tx.commit().await.map_err(StoreError::pg("committing a purge"))?;
        Ok(to)
    }
}
