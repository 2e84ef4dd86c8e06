//! PostgreSQL for integration tests: a fresh database per test on the real server
//! (127.0.0.1:5432, trust auth; `AUDITRELAY_TEST_PG_HOST`/`_PORT`/`_USER` override), made and
//! dropped with `psql`, and a TCP proxy the test controls to cut the database away from a
//! server without touching the PostgreSQL server other tests share.
//! An unreachable server FAILS the test (`scripts/ensure-postgres` starts it).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

fn host() -> String {
    std::env::var("AUDITRELAY_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

fn port() -> u16 {
    std::env::var("AUDITRELAY_TEST_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

fn user() -> String {
    std::env::var("AUDITRELAY_TEST_PG_USER").unwrap_or_else(|_| "postgres".into())
}

/// Runs one statement with psql in `database`; `Ok` holds psql's unaligned output (`|` between
/// columns, one row a line).
fn psql_in(database: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", &host(), "-p", &port().to_string(), "-U", &user(), "-d", database])
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn psql(sql: &str) -> Result<String, String> {
    psql_in("postgres", sql)
}

/// A database of its own, dropped (connections terminated) when the guard goes.
pub struct FreshDatabase {
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl FreshDatabase {
    pub fn create(label: &str) -> FreshDatabase {
        let name = format!(
            "ar_itest_{label}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(&format!("CREATE DATABASE \"{name}\"")).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {}:{} ({e}); run scripts/ensure-postgres",
                host(),
                port()
            )
        });
        FreshDatabase { name }
    }

    /// The URL of this database, directly or through a proxy on `port`.
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://{}@{}:{port}/{}", user(), host(), self.name)
    }

    pub fn url(&self) -> String {
        self.url_via(port())
    }

    /// Runs one query in this database and returns psql's unaligned output (`|` between
    /// columns, one row a line).
    pub fn query(&self, sql: &str) -> String {
        psql_in(&self.name, sql).unwrap_or_else(|e| panic!("psql: {e}"))
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A loopback TCP proxy to PostgreSQL. `cut()` closes every open connection and refuses new
/// ones (what a node sees when the database goes away); `restore()` lets them through again.
pub struct PgProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl PgProxy {
    pub async fn start() -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let listen_port = listener.local_addr().expect("proxy address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let upstream = format!("{}:{}", host(), port());
        let accept = {
            let (cut, conns) = (cut.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        PgProxy {
            port: listen_port,
            cut,
            conns,
            accept,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            conn.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            conn.abort();
        }
    }
}
