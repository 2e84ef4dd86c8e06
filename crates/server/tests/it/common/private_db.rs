//! Database servers of a test's own: a PostgreSQL cluster and a MariaDB server on a temporary
//! data dir and a free loopback port, so a test can crash and restart the database under a
//! running relay without touching the servers the other tests share (127.0.0.1:5432/3306).
//!
//! `crash_and_restart` is the harshest restart there is: PostgreSQL is stopped with
//! `pg_ctl stop -m immediate` (every backend quits at once, no checkpoint; the next start runs
//! crash recovery) and MariaDB gets SIGKILL (InnoDB recovers from its redo log). Every open
//! connection breaks and every open transaction is rolled back, as after a power cut.
//! The binaries are the machine's own (Debian's `postgresql-15` and `mariadb-server`, the same
//! packages as the shared servers); a missing binary FAILS the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auditrelay_testkit::peer_process::{free_port, wait_listening};
use tempfile::TempDir;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory holding PostgreSQL's server binaries (`initdb`, `pg_ctl`): the newest
/// `/usr/lib/postgresql/<version>/bin`, or `AUDITRELAY_TEST_PG_BINDIR`.
fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("AUDITRELAY_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are not installed (/usr/lib/postgresql)")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/<version>/bin/pg_ctl").1
}

/// A PostgreSQL cluster of its own, run as the `postgres` user (PostgreSQL refuses root), with
/// trust authentication on loopback; the database is `postgres`.
pub struct PrivatePostgres {
    pub port: u16,
    bindir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("auditrelay-private-pg-")
            .tempdir()
            .expect("creating a temporary directory");
        run(
            Command::new("chown").args(["postgres:postgres"]).arg(dir.path()),
            "chown to postgres",
        );
        let pg = PrivatePostgres {
            port: free_port(),
            bindir: pg_bindir(),
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            _dir: dir,
        };
        run(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg.bindir.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&pg.data),
            "initdb",
        );
        pg.pg_ctl_start();
        pg
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.data.parent().expect("the data dir has a parent").display()
        );
        run(
            self.pg_ctl()
                .arg("-l")
                .arg(&self.log)
                .args(["-o", &options, "-w", "start"]),
            "pg_ctl start",
        );
    }

    /// `pg_ctl -D <data>`, run as `postgres`.
    fn pg_ctl(&self) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data);
        cmd
    }

    fn pg_ctl_stop(&self, mode: &str) {
        run(self.pg_ctl().args(["-m", mode, "-w", "stop"]), "pg_ctl stop");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Immediate shutdown (no checkpoint; crash recovery on the next start).
    pub fn crash(&self) {
        self.pg_ctl_stop("immediate");
    }

    /// Starts again on the same data dir and port; returns once it answers queries.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// Whether the log shows the crash recovery that `crash` forces (proof it was a crash).
    pub fn recovered_from_a_crash(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("automatic recovery in progress"))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs one statement with the `mysql` client as root on 127.0.0.1:`port`; `Ok` holds its
/// tab-separated output without column names.
pub fn mysql_cli(port: u16, sql: &str) -> Result<String, String> {
    let out = Command::new("mysql")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .output()
        .map_err(|e| format!("running mysql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A MariaDB server of its own. Started with `--skip-grant-tables`: any user name connects
/// without a password (a throwaway server on loopback; the grants are not what is tested).
pub struct PrivateMariadb {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    dir: TempDir,
}

impl PrivateMariadb {
    pub fn start() -> PrivateMariadb {
        let dir = tempfile::Builder::new()
            .prefix("auditrelay-private-mariadb-")
            .tempdir()
            .expect("creating a temporary directory");
        let mut db = PrivateMariadb {
            port: free_port(),
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            child: None,
            dir,
        };
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", db.data.display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]),
            "mariadb-install-db",
        );
        db.launch();
        db.cli("CREATE DATABASE app")
            .unwrap_or_else(|e| panic!("creating the database: {e}"));
        db
    }

    fn launch(&mut self) {
        let mut child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.dir.path().join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", self.dir.path().join("mysqld.pid").display()))
            .arg(format!("--log-error={}", self.log.display()))
            .args(["--user=root", "--skip-grant-tables"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        // mariadbd opens its port once it is ready for connections.
        wait_listening(&mut child, "mariadbd", &[self.port], READY_TIMEOUT, &self.log);
        self.child = Some(child);
    }

    pub fn cli(&self, sql: &str) -> Result<String, String> {
        mysql_cli(self.port, sql)
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/app", self.port)
    }

    /// SIGKILL; returns once the process is gone.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL to mariadbd");
            child.wait().expect("reaping mariadbd");
        }
    }

    /// Starts again on the same data dir and port; returns once it answers queries.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Whether the log shows InnoDB's crash recovery (proof it was a crash).
    pub fn recovered_from_a_crash(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("crash recovery"))
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.crash();
    }
}
