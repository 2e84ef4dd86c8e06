//! A real rsyslog (Debian's 8.2302, unpacked into a private root by `scripts/test-peers`
//! because the package Conflicts with syslog-ng) running a configuration the test writes, on
//! 127.0.0.1 only. Killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::peer_process::{kill, wait_listening};

/// Where `scripts/test-peers` unpacks rsyslog (`dpkg -x` of the Debian packages). Overridable
/// with `AUDITRELAY_RSYSLOG_ROOT`; `/` finds a system-wide `apt-get install rsyslog`.
pub fn rsyslog_root() -> PathBuf {
    std::env::var_os("AUDITRELAY_RSYSLOG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/rsyslog"))
}

/// `(rsyslogd, module directory)`; panics with the fix when they are missing.
pub fn rsyslogd() -> (PathBuf, PathBuf) {
    let root = rsyslog_root();
    let bin = root.join("usr/sbin/rsyslogd");
    let modules = root.join("usr/lib/x86_64-linux-gnu/rsyslog");
    assert!(
        bin.exists() && modules.join("lmnsd_ossl.so").exists(),
        "rsyslog is not unpacked at {} (rsyslogd + the ossl driver): run `scripts/test-peers` first",
        root.display()
    );
    (bin, modules)
}

/// An rsyslogd started with `-n` on a configuration the caller provides. Its own diagnostics
/// (internal messages, config errors) land in `internal.log` and `stderr.log` in `dir`, shown
/// when it fails to start.
pub struct Rsyslog {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Rsyslog {
    /// Writes `body` after a preamble (work directory, internal messages to a file) and starts
    /// rsyslogd; waits until every port in `listening` accepts connections.
    pub fn start(body: &str, listening: &[u16]) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k")
# rsyslog's own messages (connection errors, TLS failures) go to the default ruleset.
syslog.* action(type="omfile" file="{internal}")
{body}
"#,
            work = d.display(),
            internal = d.join("internal.log").display(),
        );
        std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
        let (bin, modules) = rsyslogd();
        let log = File::create(d.join("stderr.log")).unwrap();
        let mut child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-M")
            .arg(modules)
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rsyslogd ({e}): run `scripts/test-peers` first"));
        wait_listening(
            &mut child,
            "rsyslogd",
            listening,
            Duration::from_secs(15),
            &d.join("stderr.log"),
        );
        Rsyslog {
            dir,
            child: Some(child),
        }
    }

    /// Its stderr and internal messages so far, for failure reports.
    pub fn diagnostics(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "rsyslogd stderr:\n{}\nrsyslogd internal messages:\n{}",
            read("stderr.log"),
            read("internal.log")
        )
    }

    pub fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}
