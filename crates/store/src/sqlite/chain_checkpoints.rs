//! Signed checkpoints of the hash chain (the `checkpoints` table). Not to be confused with
//! `checkpointer.rs`, which copies SQLite's WAL into the database file.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::chain::from_column;
use crate::{Checkpoint, Checkpoints, Result, StoreError};

#[async_trait]
impl Checkpoints for SqliteStore {
    async fn chain_head(&self, tenant: &str) -> Result<Option<(u64, [u8; 32])>> {
        Ok(self.log.chain_head(tenant))
    }

    async fn add_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints (tenant_id, seq, chain, signed_at, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    cp.tenant_id,
                    cp.offset as i64,
                    &cp.chain[..],
                    cp.signed_at,
                    &cp.signature[..]
                ],
            )
            .map_err(StoreError::sqlite("storing a checkpoint"))?;
            Ok(())
        })
        .await
    }

    async fn list_checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<Checkpoint>> {
        let tenant = tenant.to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, chain, signed_at, signature FROM checkpoints
                     WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(StoreError::sqlite("preparing checkpoint list"))?;
            let rows = stmt
                .query_map(params![tenant, after.min(i64::MAX as u64) as i64, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(StoreError::sqlite("listing checkpoints"))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, chain, signed_at, signature) = row.map_err(StoreError::sqlite("listing checkpoints"))?;
                let chain = from_column(Some(chain), "checkpoints.chain")?.unwrap_or_default();
                let signature: [u8; 64] = signature.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("checkpoint {seq} of `{tenant}`: bad signature length"))
                })?;
                out.push(Checkpoint {
                    tenant_id: tenant.clone(),
                    offset: seq as u64,
                    chain,
                    signed_at,
                    signature,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn latest_checkpoints(&self) -> Result<Vec<(String, u64)>> {
        self.read_with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT tenant_id, MAX(seq) FROM checkpoints GROUP BY tenant_id ORDER BY tenant_id")
                .map_err(StoreError::sqlite("preparing latest checkpoints"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(StoreError::sqlite("reading latest checkpoints"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(StoreError::sqlite("reading latest checkpoints"))
        })
        .await
    }
}
