//! A `moto` S3 server in server mode (PyPI, installed by `scripts/test-peers`) on 127.0.0.1,
//! optionally checking SigV4, with `boto3` helpers to set it up and read it back. Killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::paths::{peer_python, repo_root};
use crate::peer_process::{free_port, kill, wait_listening};

/// A moto server on 127.0.0.1. Killed on drop.
pub struct Moto {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Check SigV4 (after the first 4 unauthenticated calls that create the IAM user).
    pub auth: bool,
    child: Option<Child>,
}

pub fn moto_binary() -> PathBuf {
    let bin = repo_root().join(".peers/venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run `scripts/test-peers` first",
        bin.display()
    );
    bin
}

impl Moto {
    pub fn start(auth: bool) -> Moto {
        let mut moto = Moto {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            auth,
            child: None,
        };
        moto.spawn();
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts moto and waits until it answers on its port.
    pub fn spawn(&mut self) {
        let log = File::create(self.dir.path().join("moto.log")).unwrap();
        let mut cmd = Command::new(moto_binary());
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if self.auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): run `scripts/test-peers` first"));
        wait_listening(
            &mut child,
            "moto_server",
            &[self.port],
            Duration::from_secs(30),
            &self.dir.path().join("moto.log"),
        );
        self.child = Some(child);
    }

    /// SIGKILL: a receiver crash.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Creates the IAM user + key (when checking auth) and `bucket`; returns the key pair.
    pub fn setup(&self, bucket: &str) -> (String, String) {
        let mut cmd = Command::new(peer_python());
        cmd.arg(repo_root().join("tests/peers/s3_setup.py"))
            .arg(self.endpoint())
            .arg(bucket);
        if !self.auth {
            cmd.arg("--no-iam");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "s3_setup.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["access_key_id"].as_str().unwrap().to_owned(),
            v["secret_access_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Every object in `bucket`, as boto3 reads it: key → (content type, content encoding, lines).
    pub fn read(&self, bucket: &str, creds: &(String, String)) -> BTreeMap<String, (Value, Value, Vec<Value>)> {
        let out = Command::new(peer_python())
            .arg(repo_root().join("tests/peers/s3_read.py"))
            .args([&self.endpoint(), bucket, &creds.0, &creds.1])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "s3_read.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let o: Value = serde_json::from_str(l).unwrap();
                let lines = o["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| serde_json::from_str(x.as_str().unwrap()).unwrap())
                    .collect();
                (
                    o["key"].as_str().unwrap().to_owned(),
                    (o["content_type"].clone(), o["content_encoding"].clone(), lines),
                )
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
