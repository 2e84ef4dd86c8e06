//! A real Kafka-compatible broker on 127.0.0.1: `tansu` (crates.io, not our code), built once per
//! machine by `scripts/peer-tansu` (called by `scripts/test-peers`), and `confluent-kafka` (PyPI)
//! to read topics back (`tests/peers/kafka_read.py`). A broker that cannot start FAILS the test.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::paths::{peer_python, repo_root};
use crate::peer_process::{free_port, kill, wait_listening};

/// Where `scripts/peer-tansu` caches the broker.
pub fn tansu_binary() -> PathBuf {
    let cache = std::env::var_os("AUDITRELAY_PEER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/auditrelay-peers"));
    let bin = cache.join("tansu-0.6.0/bin/tansu");
    assert!(
        bin.exists(),
        "the tansu broker is missing at {}: run `scripts/test-peers` (it builds it once, ~20 min)",
        bin.display()
    );
    bin
}

/// One record as the independent consumer saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i64,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub value: String,
}

/// A tansu broker process. Killed (SIGKILL) on drop.
pub struct Tansu {
    dir: tempfile::TempDir,
    pub port: u16,
    storage: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

impl Tansu {
    /// Records kept in memory: gone when the broker stops.
    pub fn start_in_memory() -> Tansu {
        Self::start("memory://tansu/".into(), Vec::new())
    }

    /// Records kept as objects in `bucket` of an S3 server (moto), so they survive a restart of
    /// the broker: what the outage test needs.
    pub fn start_on_s3(endpoint: &str, bucket: &str) -> Tansu {
        let env = [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT", endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self::start(format!("s3://{bucket}/"), env)
    }

    fn start(storage: String, env: Vec<(String, String)>) -> Tansu {
        let mut t = Tansu {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            storage,
            env,
            child: None,
            starts: 0,
        };
        t.spawn();
        t
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("tansu-{}.log", self.starts))
    }

    /// Starts the broker (again) on the same port and waits until it accepts connections.
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(tansu_binary());
        cmd.args([
            "broker",
            "--listener-url",
            &self.url(),
            "--advertised-listener-url",
            &self.url(),
        ])
        .args(["--storage-engine", &self.storage])
        .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu ({e}): run `scripts/test-peers`"));
        wait_listening(
            &mut child,
            "tansu",
            &[self.port],
            Duration::from_secs(30),
            &self.log_path(),
        );
        self.child = Some(child);
    }

    /// SIGKILL: a broker crash, not a clean shutdown.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// `tansu topic create NAME --partitions N`.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &self.url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every record of `topic`, read from the beginning by confluent-kafka, in partition order.
    /// Waits until at least `expected` records arrived (or 30 s without a new one).
    pub fn read(&self, topic: &str, expected: usize) -> Vec<Record> {
        let out = Command::new(peer_python())
            .arg(repo_root().join("tests/peers/kafka_read.py"))
            .args([&self.bootstrap(), topic, &expected.to_string(), "30"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kafka_read.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                Record {
                    partition: v["partition"].as_i64().unwrap(),
                    offset: v["offset"].as_i64().unwrap(),
                    key: v["key"].as_str().map(str::to_owned),
                    headers: v["headers"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                    value: v["value"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(tenant, event id, offset)` of each record from its headers, in partition order: the order
/// a consumer of each partition saw them (what `arrivals::check_arrivals` takes).
pub fn in_partition_order(records: &[Record]) -> Vec<(String, String, u64)> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    sorted
        .iter()
        .map(|r| {
            (
                r.headers.get("tenant_id").expect("tenant_id header").clone(),
                r.headers.get("event_id").expect("event_id header").clone(),
                r.headers.get("offset").expect("offset header").parse().unwrap(),
            )
        })
        .collect()
}
