//! The SQL of the outbox relay for PostgreSQL and MySQL/MariaDB. Identifiers come only from a
//! checked config (`[A-Za-z_][A-Za-z0-9_.]*`) and are quoted; values are bound.

use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::Row;

use super::config::{EventShape, OutboxSettings};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct OutboxRow {
    pub id: i64,
    /// The event column, or the mapped columns in the mapping's order, as text.
    pub values: Vec<Option<String>>,
    pub tenant: Option<String>,
}

pub(crate) enum Db {
    Postgres(PgPool, String),
    Mysql(MySqlPool, String),
}

pub(crate) struct Listener(PgListener);

impl Listener {
    pub async fn recv(&mut self) -> Result<(), String> {
        self.0.recv().await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// The driver's message with the URL's password (if any) removed.
fn redact(url: &str, message: String) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message,
    }
}

fn quote(postgres: bool, ident: &str) -> String {
    let q = if postgres { '"' } else { '`' };
    ident
        .split('.')
        .map(|p| format!("{q}{p}{q}"))
        .collect::<Vec<_>>()
        .join(".")
}

fn text(postgres: bool, column: &str) -> String {
    let c = quote(postgres, column);
    if postgres {
        format!("{c}::text")
    } else {
        format!("CONVERT({c} USING utf8mb4)")
    }
}

impl Db {
    pub async fn connect(postgres: bool, url: &str) -> Result<Db, String> {
        if postgres {
            PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect(url)
                .await
                .map(|p| Db::Postgres(p, url.to_owned()))
                .map_err(|e| redact(url, e.to_string()))
        } else {
            MySqlPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect(url)
                .await
                .map(|p| Db::Mysql(p, url.to_owned()))
                .map_err(|e| redact(url, e.to_string()))
        }
    }

    fn postgres(&self) -> bool {
        matches!(self, Db::Postgres(..))
    }

    fn url(&self) -> &str {
        match self {
            Db::Postgres(_, u) | Db::Mysql(_, u) => u,
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(p, _) => p.close().await,
            Db::Mysql(p, _) => p.close().await,
        }
    }

    pub async fn listen(&self, url: &str, channel: &str) -> Result<Listener, String> {
        let mut l = PgListener::connect(url).await.map_err(|e| redact(url, e.to_string()))?;
        l.listen(channel).await.map_err(|e| redact(url, e.to_string()))?;
        Ok(Listener(l))
    }

    fn select(&self, s: &OutboxSettings, limit: &str) -> String {
        let pg = self.postgres();
        let id = quote(pg, &s.id_column);
        let id_expr = if pg {
            format!("{id}::int8")
        } else {
            format!("CAST({id} AS SIGNED)")
        };
        let mut cols = vec![id_expr];
        match &s.shape {
            EventShape::Json(c) => cols.push(text(pg, c)),
            EventShape::Columns(map) => cols.extend(map.iter().map(|(_, c)| text(pg, c))),
        }
        if let Some(t) = &s.tenant_column {
            cols.push(text(pg, t));
        }
        let filter = match &s.mark_column {
            Some(m) => format!(" WHERE {} IS NULL", quote(pg, m)),
            None => String::new(),
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {id} LIMIT {limit}",
            cols.join(", "),
            quote(pg, &s.table)
        )
    }

    /// Reads nothing, but fails as a read would when a table or column is missing.
    pub async fn check_table(&self, s: &OutboxSettings) -> Result<(), String> {
        let sql = self.select(s, "0");
        let r = match self {
            Db::Postgres(p, _) => sqlx::query(&sql).fetch_all(p).await.map(|_| ()),
            Db::Mysql(p, _) => sqlx::query(&sql).fetch_all(p).await.map(|_| ()),
        };
        r.map_err(|e| redact(self.url(), e.to_string()))
    }

    /// The lowest `batch_size` committed (and unmarked) rows, in id order.
    pub async fn fetch(&self, s: &OutboxSettings) -> Result<Vec<OutboxRow>, String> {
        let n_values = match &s.shape {
            EventShape::Json(_) => 1,
            EventShape::Columns(map) => map.len(),
        };
        let limit = i64::from(s.batch_size);
        let err = |e: sqlx::Error| redact(self.url(), format!("reading `{}`: {e}", s.table));
        macro_rules! rows {
            ($rows:expr) => {{
                let mut out = Vec::with_capacity($rows.len());
                for r in $rows {
                    let id: i64 = r.try_get(0).map_err(err)?;
                    let mut values = Vec::with_capacity(n_values);
                    for i in 1..=n_values {
                        values.push(r.try_get::<Option<String>, _>(i).map_err(err)?);
                    }
                    let tenant = match &s.tenant_column {
                        Some(_) => r.try_get::<Option<String>, _>(n_values + 1).map_err(err)?,
                        None => None,
                    };
                    out.push(OutboxRow { id, values, tenant });
                }
                out
            }};
        }
        Ok(match self {
            Db::Postgres(p, _) => {
                let rows = sqlx::query(&self.select(s, "$1"))
                    .bind(limit)
                    .fetch_all(p)
                    .await
                    .map_err(err)?;
                rows!(rows)
            }
            Db::Mysql(p, _) => {
                let rows = sqlx::query(&self.select(s, "?"))
                    .bind(limit)
                    .fetch_all(p)
                    .await
                    .map_err(err)?;
                rows!(rows)
            }
        })
    }

    /// How many committed (and unmarked) rows wait to be relayed.
    pub async fn count_waiting(&self, s: &OutboxSettings) -> Result<u64, String> {
        let pg = self.postgres();
        let filter = match &s.mark_column {
            Some(m) => format!(" WHERE {} IS NULL", quote(pg, m)),
            None => String::new(),
        };
        let sql = format!("SELECT count(*) FROM {}{filter}", quote(pg, &s.table));
        let err = |e: sqlx::Error| redact(self.url(), format!("counting `{}`: {e}", s.table));
        let n: i64 = match self {
            Db::Postgres(p, _) => sqlx::query_scalar(&sql).fetch_one(p).await.map_err(err)?,
            Db::Mysql(p, _) => sqlx::query_scalar(&sql).fetch_one(p).await.map_err(err)?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes (or marks) the relayed rows.
    pub async fn finish(&self, s: &OutboxSettings, ids: &[i64]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let pg = self.postgres();
        let table = quote(pg, &s.table);
        let id = quote(pg, &s.id_column);
        let err = |e: sqlx::Error| redact(self.url(), format!("deleting relayed rows of `{}`: {e}", s.table));
        match self {
            Db::Postgres(p, _) => {
                let sql = match &s.mark_column {
                    Some(m) => format!("UPDATE {table} SET {} = now() WHERE {id} = ANY($1)", quote(pg, m)),
                    None => format!("DELETE FROM {table} WHERE {id} = ANY($1)"),
                };
                sqlx::query(&sql).bind(ids).execute(p).await.map_err(err)?;
            }
            Db::Mysql(p, _) => {
                let marks = vec!["?"; ids.len()].join(",");
                let sql = match &s.mark_column {
                    Some(m) => format!(
                        "UPDATE {table} SET {} = CURRENT_TIMESTAMP(6) WHERE {id} IN ({marks})",
                        quote(pg, m)
                    ),
                    None => format!("DELETE FROM {table} WHERE {id} IN ({marks})"),
                };
                let mut q = sqlx::query(&sql);
                for i in ids {
                    q = q.bind(*i);
                }
                q.execute(p).await.map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password() {
        assert_eq!(
            redact("postgres://u:s3cret@h/db", "auth failed for s3cret".into()),
            "auth failed for ***"
        );
        assert_eq!(quote(true, "app.outbox"), "\"app\".\"outbox\"");
        assert_eq!(quote(false, "outbox"), "`outbox`");
    }
}
