//! Spawning, probing and stopping the `auditrelay` server under test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use crate::http::{Conn, Target};
use crate::procfs::proc_status_kib;

/// How to start the server.
pub struct SpawnOptions {
    pub bin: PathBuf,
    pub database_url: Option<String>,
    pub admin_token: String,
    /// Keep the data directory after the run instead of deleting it.
    pub keep_data: bool,
    /// Where to create the temporary directory (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
}

/// A server process that this harness started.
pub struct Server {
    child: Child,
    pid: u32,
    pub target: Arc<Target>,
    pub data_dir: PathBuf,
    /// Holds the temporary directory alive (deleted on drop unless kept).
    _tempdir: Option<tempfile::TempDir>,
    log_path: PathBuf,
}

/// What happened when the server was stopped.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    /// The exit status after SIGTERM, if it exited within the grace period.
    pub status: Option<ExitStatus>,
    /// Whether it had to be killed (SIGKILL) after the grace period.
    pub killed: bool,
    /// How long it took from SIGTERM to exit.
    pub shutdown_time: Duration,
}

impl StopOutcome {
    pub fn exited_zero(&self) -> bool {
        !self.killed && self.status.is_some_and(|s| s.success())
    }

    pub fn describe(&self) -> String {
        match (self.killed, self.status) {
            (true, _) => "did not exit within the grace period; killed".to_string(),
            (false, Some(s)) => match s.code() {
                Some(c) => format!("exit code {c}"),
                None => format!("{s}"),
            },
            (false, None) => "unknown".to_string(),
        }
    }
}

/// Pick a free TCP port on 127.0.0.1 by binding port 0 and dropping it.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    pub async fn spawn(opts: SpawnOptions) -> Result<Self> {
        if !opts.bin.exists() {
            bail!(
                "server binary {} not found; build it with `cargo build --release -p auditrelay-server` or pass --server-bin / --url",
                opts.bin.display()
            );
        }
        let work_dir = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let tempdir = tempfile::Builder::new()
            .prefix("auditrelay-bench-")
            .tempdir_in(&work_dir)
            .with_context(|| format!("create temporary data dir in {}", work_dir.display()))?;
        let data_dir = tempdir.path().join("data");
        let log_path = tempdir.path().join("server.log");
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");

        let log = std::fs::File::create(&log_path).context("create server log")?;
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(&data_dir)
            // The delivery scenarios point sinks at a receiver on loopback.
            .arg("--allow-private-networks")
            // The benchmark measures capacity with one tenant key on many connections: the
            // per-key abuse limits (defaults 1000 requests/s, 16 streams) are turned off.
            .args(["--rate-limit-rps", "0", "--max-streams-per-key", "0"]);
        if let Some(url) = &opts.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.env("AUDITRELAY_ADMIN_TOKEN", &opts.admin_token)
            // Our flags must win; do not let the caller's environment
            // redirect the server elsewhere.
            .env_remove("AUDITRELAY_LISTEN")
            .env_remove("AUDITRELAY_DATA_DIR")
            .env_remove("AUDITRELAY_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("spawn {}", opts.bin.display()))?;
        let pid = child.id().context("server exited before its pid could be read")?;
        let target = Arc::new(Target::parse(&format!("http://{listen}"))?);
        let (tempdir, data_dir) = if opts.keep_data {
            let kept = tempdir.keep();
            let data_dir = kept.join("data");
            (None, data_dir)
        } else {
            (Some(tempdir), data_dir)
        };
        let mut server = Server {
            child,
            pid,
            target,
            data_dir,
            _tempdir: tempdir,
            log_path,
        };
        if let Err(e) = server.wait_healthy(Duration::from_secs(30)).await {
            let tail = server.log_tail(4000);
            let _ = server.child.start_kill();
            let _ = server.child.wait().await;
            return Err(anyhow::anyhow!(
                "{e:#}\nserver log ({}), last lines:\n{tail}",
                server.log_path.display()
            ));
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `max` bytes of the server's combined stdout/stderr.
    pub fn log_tail(&self, max: usize) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(max);
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            Err(e) => format!("(cannot read {}: {e})", self.log_path.display()),
        }
    }

    /// Poll `GET /healthz` every 50 ms until it answers 200.
    async fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last_err = String::from("no attempt yet");
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("server exited during startup: {status}");
            }
            match probe_health(&self.target).await {
                Ok(()) => return Ok(()),
                Err(e) => last_err = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "server did not answer GET /healthz with 200 within {:?} (last: {last_err})",
            timeout
        )
    }

    /// Peak resident set size (VmHWM) in bytes, from /proc/<pid>/status.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    /// SIGTERM (via the `kill` command, the workspace forbids unsafe code),
    /// wait up to `grace` for a clean exit, then SIGKILL. The data dir stays
    /// until the `Server` is dropped, so it can still be measured.
    pub async fn stop(&mut self, grace: Duration) -> Result<StopOutcome> {
        let start = Instant::now();
        if let Some(status) = self.child.try_wait()? {
            return Ok(StopOutcome {
                status: Some(status),
                killed: false,
                shutdown_time: Duration::ZERO,
            });
        }
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        let term_ok = matches!(term, Ok(s) if s.success());
        if term_ok {
            if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                return Ok(StopOutcome {
                    status: Some(status?),
                    killed: false,
                    shutdown_time: start.elapsed(),
                });
            }
        } else {
            eprintln!("warning: `kill -TERM {}` failed: {term:?}", self.pid);
        }
        self.child.start_kill()?;
        let status = self.child.wait().await?;
        Ok(StopOutcome {
            status: Some(status),
            killed: true,
            shutdown_time: start.elapsed(),
        })
    }
}

/// One `GET /healthz`; Ok if it answered 200.
pub async fn probe_health(target: &Arc<Target>) -> Result<()> {
    let mut conn = Conn::connect(target.clone()).await?;
    let resp = conn.get("/healthz", None).await?;
    if resp.status != hyper::StatusCode::OK {
        bail!("GET /healthz answered {}", resp.status);
    }
    Ok(())
}

/// Total apparent size (bytes) of the regular files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    crate::disk::dir_usage(dir).apparent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_directory_sizes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), [0u8; 10])?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub/b"), [0u8; 32])?;
        assert_eq!(dir_size(dir.path()), 42);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
        Ok(())
    }

    #[test]
    fn free_port_is_nonzero() -> Result<()> {
        assert_ne!(free_port()?, 0);
        Ok(())
    }
}
