//! A fresh PostgreSQL database per test on the real server (127.0.0.1:5432 unless
//! `AUDITRELAY_TEST_PG` names another admin URL), dropped when the guard goes.
//! An unreachable server FAILS the test: `scripts/ensure-postgres` starts it before `scripts/test`.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

/// The admin URL: a database we may connect to in order to create and drop others.
pub(crate) fn admin_url() -> String {
    std::env::var("AUDITRELAY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `admin_url` with the database part replaced by `db`.
pub(crate) fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{db}")
}

/// Drops its database when dropped (even when the test panicked).
pub(crate) struct FreshDatabase {
    pub(crate) name: String,
    pub(crate) url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) async fn fresh_database(label: &str) -> FreshDatabase {
    let name = format!(
        "ar_test_{label}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {} ({e}); run scripts/ensure-postgres",
            admin_url()
        )
    });
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    FreshDatabase {
        url: url_for(&name),
        name,
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async work on a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url())
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}
