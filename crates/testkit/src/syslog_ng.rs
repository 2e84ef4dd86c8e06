//! A real syslog-ng (Debian's, installed by `scripts/test-peers`) on 127.0.0.1 with an RFC 5424
//! octet-counted TCP source and a TLS source, writing every message as one JSON line that tests
//! read back. Killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::paths::repo_root;
use crate::peer_process::{free_port, kill, wait_listening};

/// A syslog-ng process listening on 127.0.0.1 (a `syslog()` TCP source and a TLS source), writing
/// every message as one JSON line. Killed on drop.
pub struct SyslogNg {
    pub dir: tempfile::TempDir,
    pub tcp_port: u16,
    pub tls_port: u16,
    child: Option<Child>,
}

pub fn syslog_ng_binary() -> PathBuf {
    ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("syslog-ng is not installed: run `scripts/test-peers` first"))
}

pub fn cert_dir() -> PathBuf {
    let dir = repo_root().join(".peers/tls");
    assert!(
        ["ca.pem", "cert.pem", "key.pem"].iter().all(|f| dir.join(f).exists()),
        "{} has no ca.pem/cert.pem/key.pem: run `scripts/test-peers` first",
        dir.display()
    );
    dir
}

impl SyslogNg {
    pub fn start() -> SyslogNg {
        let dir = tempfile::tempdir().unwrap();
        let mut sng = SyslogNg {
            dir,
            tcp_port: free_port(),
            tls_port: free_port(),
            child: None,
        };
        sng.write_config();
        sng.spawn();
        sng
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("received.jsonl")
    }

    pub fn write_config(&self) {
        let certs = cert_dir();
        let conf = format!(
            r#"@version: 3.38
options {{ stats-freq(0); log-fifo-size(100000); keep-hostname(yes); }};
source s_tcp {{ syslog(ip(127.0.0.1) port({tcp}) transport("tcp") log-iw-size(100000) max-connections(10)); }};
source s_tls {{ syslog(ip(127.0.0.1) port({tls}) transport("tls") log-iw-size(100000) max-connections(10)
    tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
destination d_json {{ file("{out}" template("$(format-json --scope rfc5424 --scope nv-pairs)\n") flush-lines(1)); }};
log {{ source(s_tcp); source(s_tls); destination(d_json); }};
"#,
            tcp = self.tcp_port,
            tls = self.tls_port,
            key = certs.join("key.pem").display(),
            cert = certs.join("cert.pem").display(),
            out = self.out().display(),
        );
        std::fs::write(self.dir.path().join("conf"), conf).unwrap();
    }

    /// Starts syslog-ng and waits until both ports accept connections.
    pub fn spawn(&mut self) {
        let d = self.dir.path();
        self.child = Some(spawn_syslog_ng(d, &[self.tcp_port, self.tls_port]));
    }

    /// SIGKILL: a receiver crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Every complete line written so far, parsed. syslog-ng may be mid-write while we read, so
    /// a trailing segment without its newline is not a line yet and is left for the next read.
    pub fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.out()).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line from syslog-ng ({e}): {l}")))
            .collect()
    }

    /// Waits until at least `n` lines arrived (syslog-ng writes asynchronously).
    pub fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts syslog-ng in the foreground on the configuration `dir/conf` (its persist file, pid
/// file and control socket in `dir`, its output in `dir/stderr.log`) and waits until every port
/// in `listening` accepts connections.
pub fn spawn_syslog_ng(dir: &std::path::Path, listening: &[u16]) -> Child {
    let log = File::create(dir.join("stderr.log")).unwrap();
    let mut child = Command::new(syslog_ng_binary())
        .args(["-F", "--no-caps", "-f"])
        .arg(dir.join("conf"))
        .arg("-R")
        .arg(dir.join("persist"))
        .arg("-p")
        .arg(dir.join("pid"))
        .arg("-c")
        .arg(dir.join("ctl"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start syslog-ng ({e}): run `scripts/test-peers` first"));
    wait_listening(
        &mut child,
        "syslog-ng",
        listening,
        Duration::from_secs(15),
        &dir.join("stderr.log"),
    );
    child
}
