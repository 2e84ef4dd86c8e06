//! Running a third-party peer (moto, syslog-ng, tansu) as a child process: a free port, waiting
//! until it listens, killing it. Shared by the peer harnesses in this folder; a test binary that
//! includes a harness includes this file beside it.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `child` accepts connections on every one of `ports` on 127.0.0.1. Panics — the
/// test FAILS, it never skips — if the process exits first or `timeout` passes, showing its
/// log; a process that timed out is killed.
pub fn wait_listening(child: &mut Child, name: &str, ports: &[u16], timeout: Duration, log: &Path) {
    let deadline = Instant::now() + timeout;
    let output = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{name} exited at start ({status}); see `scripts/test-peers`. Output:\n{}",
                output()
            );
        }
        let up = ports.iter().all(|p| {
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], *p)), Duration::from_millis(200)).is_ok()
        });
        if up {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{name} did not listen on {ports:?} within {timeout:?}; see `scripts/test-peers`. Output:\n{}",
                output()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL and reap: a crash of the peer, not a clean shutdown. Nothing if it is not running.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
