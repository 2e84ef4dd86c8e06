use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not do what was asked; the request may succeed later (HTTP 503).
    #[error("{context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL could not do what was asked (unreachable, restarting, …); retry later (503).
    #[error("{context}: {source}")]
    Postgres {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The write failed as part of a group whose transaction rolled back; nothing was stored.
    #[error("{0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The write names a tenant the catalog does not know.
    #[error("unknown tenant `{0}`")]
    UnknownTenant(String),
    /// The store is closing or its writer is gone.
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { context, source }
    }

    pub(crate) fn pg(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Postgres { context, source }
    }
}
