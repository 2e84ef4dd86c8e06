//! Tenants and hashed API keys on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{sql_limit, sqlstate, PostgresStore, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};
use crate::{ApiKey, Catalog, NewApiKey, Result, StoreError, Tenant};

const KEY_COLUMNS: &str = "id, tenant_id, name, scopes, hash, created_at, last_used_at, revoked_at";

fn key_row(r: &PgRow) -> std::result::Result<ApiKey, sqlx::Error> {
    let scopes: String = r.try_get(3)?;
    let hash: Vec<u8> = r.try_get(4)?;
    Ok(ApiKey {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        scopes: scopes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        hash: hash.as_slice().try_into().unwrap_or([0; 32]),
        created_at: r.try_get(5)?,
        last_used_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
    })
}

#[async_trait]
impl Catalog for PostgresStore {
    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: auditrelay_core::time::now_rfc3339(),
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at, head) VALUES ($1, $2, $3, 0)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(&tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if sqlstate(&e).as_deref() == Some(UNIQUE_VIOLATION) {
                    StoreError::Conflict(format!("tenant `{}` already exists", tenant.id))
                } else {
                    StoreError::Postgres {
                        context: "creating a tenant",
                        source: e,
                    }
                }
            })?;
        Ok(tenant)
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::pg("reading a tenant"))?;
        Ok(row.map(|(id, name, created_at)| Tenant { id, name, created_at }))
    }

    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<Tenant>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::pg("listing tenants"))?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at)| Tenant { id, name, created_at })
            .collect())
    }

    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, scopes, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(key.scopes.join(","))
        .bind(key.hash.as_slice())
        .bind(&key.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match sqlstate(&e).as_deref() {
            Some(FOREIGN_KEY_VIOLATION) => StoreError::UnknownTenant(key.tenant_id.clone()),
            Some(UNIQUE_VIOLATION) => StoreError::Conflict(format!("key `{}` already exists", key.id)),
            _ => StoreError::Postgres {
                context: "creating a key",
                source: e,
            },
        })?;
        Ok(ApiKey {
            id: key.id,
            tenant_id: key.tenant_id,
            name: key.name,
            scopes: key.scopes,
            hash: key.hash,
            created_at: key.created_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    async fn key_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"))
            .bind(hash.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::pg("looking up a key"))?;
        row.as_ref()
            .map(key_row)
            .transpose()
            .map_err(StoreError::pg("looking up a key"))
    }

    async fn list_keys(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::pg("listing keys"))?;
        rows.iter()
            .map(key_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(StoreError::pg("listing keys"))
    }

    async fn revoke_key(&self, tenant: &str, key_id: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(key_id)
                .bind(auditrelay_core::time::now_rfc3339())
                .execute(&self.pool)
                .await
                .map_err(StoreError::pg("revoking a key"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_key(&self, key_id: &str, at: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(StoreError::pg("recording key use"))?;
        Ok(())
    }
}
