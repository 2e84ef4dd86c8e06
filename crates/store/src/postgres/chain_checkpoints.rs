//! Signed checkpoints of the hash chain on PostgreSQL (the `checkpoints` table, migration 3).

use async_trait::async_trait;

use super::{sql_limit, to_i64, PostgresStore};
use crate::chain::from_column;
use crate::{Checkpoint, Checkpoints, Result, StoreError};

#[async_trait]
impl Checkpoints for PostgresStore {
    async fn chain_head(&self, tenant: &str) -> Result<Option<(u64, [u8; 32])>> {
        let row: Option<(i64, Option<Vec<u8>>)> = sqlx::query_as("SELECT head, chain FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("reading a tenant's chain"))?;
        match row {
            Some((head, link)) if head > 0 => Ok(from_column(link, "tenants.chain")?.map(|c| (head as u64, c))),
            _ => Ok(None),
        }
    }

    async fn add_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (tenant_id, seq, chain, signed_at, signature) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, seq) DO NOTHING",
        )
        .bind(&cp.tenant_id)
        .bind(to_i64(cp.offset, "checkpoint offset")?)
        .bind(&cp.chain[..])
        .bind(&cp.signed_at)
        .bind(&cp.signature[..])
        .execute(&self.pool)
        .await
        .map_err(StoreError::pg("storing a checkpoint"))?;
        Ok(())
    }

    async fn list_checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<Checkpoint>> {
        let rows: Vec<(i64, Vec<u8>, String, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, chain, signed_at, signature FROM checkpoints
             WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(tenant)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::pg("listing checkpoints"))?;
        rows.into_iter()
            .map(|(seq, link, signed_at, signature)| {
                let chain = from_column(Some(link), "checkpoints.chain")?.unwrap_or_default();
                let signature: [u8; 64] = signature.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("checkpoint {seq} of `{tenant}`: bad signature length"))
                })?;
                Ok(Checkpoint {
                    tenant_id: tenant.to_owned(),
                    offset: seq as u64,
                    chain,
                    signed_at,
                    signature,
                })
            })
            .collect()
    }

    async fn latest_checkpoints(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant_id, MAX(seq) FROM checkpoints GROUP BY tenant_id ORDER BY tenant_id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::pg("reading latest checkpoints"))?;
        Ok(rows.into_iter().map(|(t, seq)| (t, seq as u64)).collect())
    }
}
