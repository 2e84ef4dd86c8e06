//! The four forwarders of the `peers` scenario, each started fresh for a run: listening for
//! syslog (RFC 5424, octet counting) on a loopback port and forwarding Splunk-HEC-shaped
//! events in batches to the [`super::counter::Counter`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::http::{Auth, Conn};
use crate::server::{free_port, Server, SpawnOptions};

/// Events per forwarded batch, the same for every contender.
pub const BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Contender {
    /// auditrelay: `syslog` source → log (fsync) → `splunk_hec` sink.
    Auditrelay,
    /// syslog-ng: `syslog()` source → `http()` destination, memory queue, flow control.
    #[value(name = "syslog-ng-memory")]
    SyslogNgMemory,
    /// syslog-ng: as above with `disk-buffer(reliable(yes))`.
    #[value(name = "syslog-ng-disk")]
    SyslogNgDisk,
    /// rsyslog: `imtcp` → `omelasticsearch` (bulk) with a disk-assisted action queue.
    #[value(name = "rsyslog-da")]
    RsyslogDa,
}

impl Contender {
    pub const ALL: [Contender; 4] = [
        Contender::Auditrelay,
        Contender::SyslogNgMemory,
        Contender::SyslogNgDisk,
        Contender::RsyslogDa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Auditrelay => "auditrelay",
            Contender::SyslogNgMemory => "syslog-ng (memory queue)",
            Contender::SyslogNgDisk => "syslog-ng (reliable disk buffer)",
            Contender::RsyslogDa => "rsyslog (disk-assisted queue)",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Contender::Auditrelay => "auditrelay",
            Contender::SyslogNgMemory => "syslog-ng-memory",
            Contender::SyslogNgDisk => "syslog-ng-disk",
            Contender::RsyslogDa => "rsyslog-da",
        }
    }

    /// What a message the forwarder has taken from the socket survives.
    pub fn durability(self) -> &'static str {
        match self {
            Contender::Auditrelay => {
                "in the log and fsync'd at most one batch after it is read (never more than one \
                 batch ahead of the disk); what is in the log survives SIGKILL and power loss"
            }
            Contender::SyslogNgMemory => "memory only: a crash loses what is queued",
            Contender::SyslogNgDisk => {
                "written to the disk-buffer file before it is taken from the source \
                 (reliable mode); survives SIGKILL; no fsync per message (see the strace note)"
            }
            Contender::RsyslogDa => {
                "memory queue that spills to disk files only above its high watermark; \
                 a crash loses the in-memory part; queue files are not fsync'd \
                 (queue.syncqueuefiles off, the default)"
            }
        }
    }

    /// The output it posts: rsyslog's Debian build has no HTTP output.
    pub fn output(self) -> &'static str {
        match self {
            Contender::Auditrelay => "splunk_hec sink → POST /services/collector/event",
            Contender::SyslogNgMemory | Contender::SyslogNgDisk => {
                "http() destination, HEC envelopes one per line → POST /services/collector/event"
            }
            Contender::RsyslogDa => {
                "omelasticsearch bulkmode, HEC-shaped documents in _bulk framing → POST /_bulk \
                 (Debian's rsyslog has no omhttp)"
            }
        }
    }
}

/// A started contender: its process, the syslog port loggen sends to.
pub struct Running {
    pub pid: u32,
    pub port: u16,
    kind: Kind,
    _dir: tempfile::TempDir,
}

enum Kind {
    Server(Box<Server>),
    Peer(Child),
}

impl Running {
    /// The forwarder's own log (the last lines), for a run that stalled.
    pub fn log_tail(&self) -> String {
        match &self.kind {
            Kind::Server(s) => s.log_tail(6000),
            Kind::Peer(_) => {
                let text = std::fs::read_to_string(self._dir.path().join("stderr.log")).unwrap_or_default();
                let start = text.len().saturating_sub(6000);
                text.get(start..).unwrap_or_default().to_owned()
            }
        }
    }

    /// Stops it: SIGTERM for auditrelay (its own stop), SIGKILL for the peers (their queues are
    /// not needed after the count).
    pub async fn stop(self) -> Result<()> {
        match self.kind {
            Kind::Server(mut s) => {
                s.stop(Duration::from_secs(30)).await?;
            }
            Kind::Peer(mut c) => {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
        Ok(())
    }
}

pub struct Tools {
    pub server_bin: PathBuf,
    pub syslog_ng: PathBuf,
    pub rsyslogd: PathBuf,
    pub rsyslog_modules: PathBuf,
}

impl Tools {
    pub fn find(server_bin: PathBuf) -> Result<Tools> {
        let syslog_ng = ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("syslog-ng is not installed (scripts/bench peers installs it)")?;
        let root = std::env::var_os("AUDITRELAY_RSYSLOG_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/rsyslog"));
        let rsyslogd = root.join("usr/sbin/rsyslogd");
        let rsyslog_modules = root.join("usr/lib/x86_64-linux-gnu/rsyslog");
        if !rsyslog_modules.join("omelasticsearch.so").exists() {
            bail!(
                "rsyslog with omelasticsearch is not unpacked at {} (scripts/peer-rsyslog)",
                root.display()
            );
        }
        if !server_bin.exists() {
            bail!(
                "{} not found: build it with cargo build --release",
                server_bin.display()
            );
        }
        Ok(Tools {
            server_bin,
            syslog_ng,
            rsyslogd,
            rsyslog_modules,
        })
    }
}

fn syslog_ng_conf(port: u16, counter: u16, disk: Option<&Path>) -> String {
    // Flow control: a full queue slows the source instead of dropping (without it syslog-ng
    // drops at the queue limit and the comparison would be of losses, not throughput).
    let buffer = disk.map_or(String::new(), |d| {
        format!(
            "disk-buffer(reliable(yes) dir(\"{}\") disk-buf-size(2147483648) mem-buf-size(67108864))",
            d.display()
        )
    });
    format!(
        r#"@version: 3.38
options {{ stats-freq(0); log-fifo-size(100000); }};
source s_in {{ syslog(ip(127.0.0.1) port({port}) transport("tcp") log-iw-size(100000) max-connections(10)); }};
destination d_hec {{ http(url("http://127.0.0.1:{counter}/services/collector/event")
    method("POST") headers("Authorization: Splunk 11111111-2222-3333-4444-555555555555", "Content-Type: application/json")
    body('$(format-json time=$UNIXTIME host=$HOST source=$PROGRAM sourcetype=audit event=$MESSAGE)')
    batch-lines({BATCH}) batch-bytes(4194304) batch-timeout(200) workers(2) {buffer}); }};
log {{ source(s_in); destination(d_hec); flags(flow-control); }};
"#
    )
}

fn rsyslog_conf(port: u16, counter: u16, dir: &Path) -> String {
    // The documents are HEC envelopes (time, host, source, sourcetype, event) so every
    // contender forwards the same fields; omelasticsearch adds the `_bulk` action lines.
    format!(
        r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imtcp")
module(load="omelasticsearch")
template(name="hec" type="string"
  string="{{\"time\":%timereported:::date-unixtimestamp%,\"host\":\"%hostname:::json%\",\"source\":\"%app-name:::json%\",\"sourcetype\":\"audit\",\"event\":\"%msg:::json%\"}}")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omelasticsearch" server="127.0.0.1" serverport="{counter}" template="hec"
         searchIndex="audit" bulkmode="on" maxbytes="4m"
         queue.type="LinkedList" queue.filename="da" queue.spoolDirectory="{dir}"
         queue.size="100000" queue.highWatermark="80000" queue.lowWatermark="20000"
         queue.maxDiskSpace="2g" queue.saveOnShutdown="on" queue.dequeueBatchSize="{BATCH}"
         action.resumeRetryCount="-1")
}}
"#,
        dir = dir.display()
    )
}

async fn wait_port(port: u16, child: &mut Child, name: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().context("waiting for a contender")? {
            bail!(
                "{name} exited at start ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not listen on {port} within 20 s: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn spawn_peer(mut cmd: Command, name: &str, port: u16, dir: tempfile::TempDir) -> Result<Running> {
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().context("clone log handle")?)
        .stderr(log)
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("start {name}"))?;
    let pid = child.id().context("contender exited before its pid was read")?;
    wait_port(port, &mut child, name, &log_path).await?;
    Ok(Running {
        pid,
        port,
        kind: Kind::Peer(child),
        _dir: dir,
    })
}

/// Starts `c` forwarding to the counter at `counter_port`; returns when it listens.
pub async fn start(c: Contender, tools: &Tools, counter_port: u16, work_dir: &Path) -> Result<Running> {
    let dir = tempfile::Builder::new()
        .prefix("auditrelay-peers-")
        .tempdir_in(work_dir)
        .with_context(|| format!("temporary dir in {}", work_dir.display()))?;
    let port = free_port()?;
    match c {
        Contender::SyslogNgMemory | Contender::SyslogNgDisk => {
            let d = dir.path();
            let disk = (c == Contender::SyslogNgDisk).then_some(d);
            std::fs::write(d.join("conf"), syslog_ng_conf(port, counter_port, disk)).context("write syslog-ng conf")?;
            let mut cmd = Command::new(&tools.syslog_ng);
            cmd.args(["-F", "--no-caps", "-f"])
                .arg(d.join("conf"))
                .arg("-R")
                .arg(d.join("persist"))
                .arg("-p")
                .arg(d.join("pid"))
                .arg("-c")
                .arg(d.join("ctl"));
            spawn_peer(cmd, c.name(), port, dir).await
        }
        Contender::RsyslogDa => {
            let d = dir.path();
            std::fs::write(d.join("rsyslog.conf"), rsyslog_conf(port, counter_port, d))
                .context("write rsyslog conf")?;
            let mut cmd = Command::new(&tools.rsyslogd);
            cmd.arg("-n")
                .arg("-f")
                .arg(d.join("rsyslog.conf"))
                .arg("-M")
                .arg(&tools.rsyslog_modules)
                .arg("-i")
                .arg(d.join("rsyslogd.pid"));
            spawn_peer(cmd, c.name(), port, dir).await
        }
        Contender::Auditrelay => {
            let token = format!("peers-operator-{:08}", std::process::id());
            let server = Server::spawn(SpawnOptions {
                bin: tools.server_bin.clone(),
                database_url: None,
                admin_token: token.clone(),
                keep_data: false,
                work_dir: Some(dir.path().to_path_buf()),
            })
            .await?;
            let operator = Auth::bearer(&token)?;
            configure_auditrelay(&server, &operator, port, counter_port).await?;
            let pid = server.pid();
            let deadline = Instant::now() + Duration::from_secs(20);
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                if Instant::now() > deadline {
                    bail!("auditrelay's syslog source did not listen on {port} within 20 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Running {
                pid,
                port,
                kind: Kind::Server(Box::new(server)),
                _dir: dir,
            })
        }
    }
}

async fn post(conn: &mut Conn, operator: &Auth, path: &str, body: serde_json::Value) -> Result<()> {
    let resp = conn.post_json(path, operator, Bytes::from(body.to_string())).await?;
    if resp.status != StatusCode::CREATED {
        bail!("POST {path} answered {}: {}", resp.status, resp.body_snippet());
    }
    Ok(())
}

/// One tenant, a `splunk_hec` sink to the counter (batches of [`BATCH`], flushed after 200 ms
/// like syslog-ng's `batch-timeout(200)`), then the `syslog` source.
async fn configure_auditrelay(server: &Server, operator: &Auth, port: u16, counter: u16) -> Result<()> {
    let mut conn = Conn::connect(Arc::clone(&server.target)).await?;
    post(
        &mut conn,
        operator,
        "/v1/tenants",
        json!({"id": "peers", "name": "Peers"}),
    )
    .await?;
    post(
        &mut conn,
        operator,
        "/v1/sinks",
        json!({
            "name": "hec", "kind": "splunk_hec", "tenant": "peers",
            "config": {"url": format!("http://127.0.0.1:{counter}"), "sourcetype": "audit"},
            "secrets": {"token": "11111111-2222-3333-4444-555555555555"},
            "batch": {"max_events": BATCH, "max_bytes": 4 * 1024 * 1024, "flush_interval_ms": 200},
            "max_in_flight": 2,
        }),
    )
    .await?;
    post(
        &mut conn,
        operator,
        "/v1/sources",
        json!({"name": "syslog", "kind": "syslog", "tenant": "peers",
               "config": {"listen": format!("127.0.0.1:{port}")}}),
    )
    .await
}
