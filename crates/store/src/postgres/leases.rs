//! Sink leases on PostgreSQL: each sink is driven by exactly one node at a time.
//!
//! A heartbeat is one transaction: the node marks itself alive, renews the leases it holds,
//! and — while it holds fewer than its fair share (sinks / live nodes, rounded up) — claims
//! leases that are free or expired with `FOR UPDATE SKIP LOCKED`, so two nodes claiming at once
//! never get the same sink. Expiry uses the database's clock (`now()`), never the nodes'.
//! A node that dies stops renewing; its leases expire after the TTL and the other nodes take
//! them over at their next heartbeat, starting from the committed cursors.

use std::time::Duration;

use async_trait::async_trait;

use super::PostgresStore;
use crate::{LeaseGrant, Result, SinkLeases, StoreError};

/// Node rows that have not heartbeat for this long are deleted (they only count live nodes).
const FORGET_NODES_AFTER: &str = "1 hour";

#[async_trait]
impl SinkLeases for PostgresStore {
    async fn heartbeat_leases(&self, node: &str, sinks: &[String], ttl: Duration) -> Result<LeaseGrant> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::pg("starting a lease heartbeat"))?;
        sqlx::query(
            "INSERT INTO auditrelay_nodes (id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(node)
        .bind(ttl_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::pg("recording a node heartbeat"))?;
        sqlx::query(&format!(
            "DELETE FROM auditrelay_nodes WHERE expires_at < now() - interval '{FORGET_NODES_AFTER}'"
        ))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::pg("forgetting old nodes"))?;
        // Renewing a lease of ours is safe even if it expired meanwhile: nobody took it.
        let mut held: Vec<String> = sqlx::query_scalar(
            "UPDATE sink_leases SET expires_at = now() + $3 * interval '1 millisecond'
             WHERE owner = $1 AND sink_id = ANY($2) RETURNING sink_id",
        )
        .bind(node)
        .bind(sinks)
        .bind(ttl_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::pg("renewing leases"))?;
        let live: i64 = sqlx::query_scalar("SELECT count(*) FROM auditrelay_nodes WHERE expires_at > now()")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::pg("counting live nodes"))?;
        let live = usize::try_from(live.max(1)).unwrap_or(1);
        let fair_share = sinks.len().div_ceil(live);
        if held.len() < fair_share {
            sqlx::query(
                "INSERT INTO sink_leases (sink_id, owner, expires_at)
                 SELECT s, '', '-infinity' FROM unnest($1::text[]) AS s
                 ON CONFLICT (sink_id) DO NOTHING",
            )
            .bind(sinks)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::pg("registering sinks for leasing"))?;
            let claimed: Vec<String> = sqlx::query_scalar(
                "UPDATE sink_leases l SET owner = $1, expires_at = now() + $4 * interval '1 millisecond'
                 FROM (SELECT sink_id FROM sink_leases
                       WHERE sink_id = ANY($2) AND expires_at <= now()
                       ORDER BY sink_id LIMIT $3 FOR UPDATE SKIP LOCKED) free
                 WHERE l.sink_id = free.sink_id
                 RETURNING l.sink_id",
            )
            .bind(node)
            .bind(sinks)
            .bind(i64::try_from(fair_share - held.len()).unwrap_or(i64::MAX))
            .bind(ttl_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::pg("claiming leases"))?;
            held.extend(claimed);
        }
        tx.commit()
            .await
            .map_err(StoreError::pg("committing a lease heartbeat"))?;
        held.sort_unstable();
        Ok(LeaseGrant { held, fair_share })
    }

    async fn release_leases(&self, node: &str, sinks: &[String]) -> Result<()> {
        sqlx::query("UPDATE sink_leases SET expires_at = '-infinity' WHERE owner = $1 AND sink_id = ANY($2)")
            .bind(node)
            .bind(sinks)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("releasing leases"))?;
        Ok(())
    }
}
