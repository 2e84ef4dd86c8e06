//! `peers`: the same loggen load (syslog-ng's load generator: RFC 5424, octet counting, over
//! TCP) into auditrelay's `syslog` source and into syslog-ng and rsyslog, each forwarding
//! Splunk-HEC-shaped batches to one loopback [`counter::Counter`]. Per contender and run:
//! events/s (first loggen byte → last new event at the counter), the forwarder's CPU seconds
//! per million events (utime + stime from /proc), its peak RSS (VmHWM), events lost and
//! duplicated. Every contender runs once per round, `--runs` rounds, so drift on a shared
//! machine spreads over all of them; the report is the median per contender.
//!
//! Writes `results.json`, `results.md` and `chart.png` into `--peers-out` and prints the table
//! and one `BENCH_JSON {…}` line.

mod chart;
mod contenders;
mod counter;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::process::Command;

pub use contenders::Contender;
use contenders::{Tools, BATCH};
use counter::Counter;

use crate::procfs;

/// A run whose counter has not seen a new event for this long after loggen finished is over;
/// what is missing then is lost.
const STALL: Duration = Duration::from_secs(20);

/// What the `peers` scenario needs from the command line.
pub struct Options {
    pub events: u64,
    pub message_size: usize,
    pub runs: usize,
    pub contenders: Vec<Contender>,
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    pub server_bin: PathBuf,
}

/// One contender, one run.
#[derive(Debug, Clone)]
struct Run {
    sent: u64,
    distinct: u64,
    duplicates: u64,
    secs: f64,
    cpu_secs: f64,
    peak_rss: u64,
    requests: u64,
    body_bytes: u64,
    /// Objects in the bodies without a sequence number (rsyslog's `_bulk` action lines).
    without_seq: u64,
}

impl Run {
    fn events_per_sec(&self) -> f64 {
        self.distinct as f64 / self.secs
    }

    fn cpu_per_million(&self) -> f64 {
        self.cpu_secs / self.distinct.max(1) as f64 * 1e6
    }

    fn lost(&self) -> u64 {
        self.sent - self.distinct
    }

    fn to_json(&self) -> Value {
        json!({
            "sent": self.sent, "received": self.distinct, "duplicates": self.duplicates, "lost": self.lost(),
            "seconds": self.secs, "events_per_sec": self.events_per_sec(), "cpu_seconds": self.cpu_secs,
            "cpu_seconds_per_million": self.cpu_per_million(), "peak_rss_bytes": self.peak_rss,
            "requests": self.requests, "body_bytes": self.body_bytes, "objects_without_seq": self.without_seq,
        })
    }
}

/// The medians of one contender's runs.
#[derive(Debug, Clone)]
pub struct Summary {
    pub contender: Contender,
    pub events_per_sec: f64,
    pub cpu_per_million: f64,
    pub peak_rss: u64,
    pub lost_max: u64,
    pub duplicates_max: u64,
    runs: Vec<Run>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Summary {
    fn of(contender: Contender, runs: Vec<Run>) -> Summary {
        Summary {
            contender,
            events_per_sec: median(runs.iter().map(Run::events_per_sec).collect()),
            cpu_per_million: median(runs.iter().map(Run::cpu_per_million).collect()),
            peak_rss: median(runs.iter().map(|r| r.peak_rss as f64).collect()) as u64,
            lost_max: runs.iter().map(Run::lost).max().unwrap_or(0),
            duplicates_max: runs.iter().map(|r| r.duplicates).max().unwrap_or(0),
            runs,
        }
    }
}

/// One run of `c`: a fresh counter and a fresh forwarder, loggen until it has sent every
/// message, then until the counter holds all of them (or nothing new arrived for [`STALL`]).
async fn run_once(c: Contender, tools: &Tools, opts: &Options) -> Result<Run> {
    let counter = Counter::start()?;
    let running = contenders::start(c, tools, counter.port(), &opts.work_dir).await?;
    let pid = running.pid;
    let cpu_start = procfs::cpu_time(pid).context("reading the forwarder's CPU time")?;
    let started = Instant::now();
    // -I: loggen stops after `--interval` seconds (10 by default) even when -n is not reached.
    let mut loggen = Command::new("loggen")
        .args([
            "--inet",
            "--stream",
            "--syslog-proto",
            "--quiet",
            "-I",
            "3600",
            "-r",
            "100000000",
        ])
        .args(["-s", &opts.message_size.to_string(), "-n", &opts.events.to_string()])
        .args(["127.0.0.1", &running.port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run loggen (syslog-ng-core)")?;
    let mut loggen_done: Option<Instant> = None;
    let mut progress = (0u64, Instant::now());
    loop {
        if loggen_done.is_none() {
            if let Some(status) = loggen.try_wait().context("waiting for loggen")? {
                if !status.success() {
                    let out = loggen.wait_with_output().await.context("loggen output")?;
                    bail!("loggen failed ({status}): {}", String::from_utf8_lossy(&out.stderr));
                }
                loggen_done = Some(Instant::now());
            }
        }
        let distinct = counter.counts().seqs.distinct();
        if distinct >= opts.events {
            break;
        }
        if distinct != progress.0 {
            progress = (distinct, Instant::now());
        }
        if loggen_done.is_some() && progress.1.elapsed() > STALL {
            eprintln!(
                "  {}: nothing new for {STALL:?} after loggen finished; {distinct} of {} arrived",
                c.key(),
                opts.events
            );
            eprintln!("  {} log, last lines:\n{}", c.key(), running.log_tail());
            break;
        }
        // Polling the counter (in-process, a mutex) for the end of the run; the measured
        // window ends at the counter's own timestamp of the last new event, not at this poll.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_end = procfs::cpu_time(pid).context("reading the forwarder's CPU time")?;
    let peak_rss = procfs::proc_status_kib(pid, "VmHWM:").unwrap_or(0) * 1024;
    let (distinct, duplicates, last_new, requests, body_bytes, without_seq) = {
        let counts = counter.counts();
        if let Some(what) = &counts.first_unexpected {
            bail!(
                "{}: {} unexpected requests at the receiver, first: {what}",
                c.key(),
                counts.unexpected
            );
        }
        (
            counts.seqs.distinct(),
            counts.seqs.duplicates(),
            counts.last_new,
            counts.requests,
            counts.body_bytes,
            counts.without_seq,
        )
    };
    running.stop().await?;
    let secs = last_new.map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64());
    Ok(Run {
        sent: opts.events,
        distinct,
        duplicates,
        secs,
        cpu_secs: cpu_end.saturating_sub(cpu_start).as_secs_f64(),
        peak_rss,
        requests,
        body_bytes,
        without_seq,
    })
}

/// Machine facts for the report: CPU model, cores, memory, kernel, peer versions.
fn machine(tools: &Tools) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map_or("unknown".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |bin: &Path, arg: &str| -> String {
        std::process::Command::new(bin)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
            .unwrap_or_default()
    };
    json!({
        "cpu": model, "cores": cores, "memory_gib": mem_kib as f64 / 1048576.0, "kernel": kernel.trim(),
        "syslog_ng": version(&tools.syslog_ng, "--version"),
        "rsyslog": version(&tools.rsyslogd, "-v").split(" compiled").next().unwrap_or("").trim(),
    })
}

pub async fn run(opts: Options) -> Result<bool> {
    let tools = Tools::find(opts.server_bin.clone())?;
    let mut machine = machine(&tools);
    // Other work on a shared machine skews every figure; the load averages say how much.
    machine["loadavg_start"] = json!(procfs::loadavg());
    eprintln!(
        "peers: {} loggen messages of {} bytes, {} runs of {:?}; machine {machine}",
        opts.events,
        opts.message_size,
        opts.runs,
        opts.contenders.iter().map(|c| c.key()).collect::<Vec<_>>()
    );
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); opts.contenders.len()];
    for round in 1..=opts.runs {
        for (i, &c) in opts.contenders.iter().enumerate() {
            let r = run_once(c, &tools, &opts)
                .await
                .with_context(|| format!("{} run {round}", c.key()))?;
            eprintln!(
                "  run {round} {:<17} {:>9.0} events/s  {:>6.2} CPU-s/M  RSS {:>6.1} MiB  lost {}  dup {}  ({} requests, {:.2} s)",
                c.key(),
                r.events_per_sec(),
                r.cpu_per_million(),
                r.peak_rss as f64 / 1048576.0,
                r.lost(),
                r.duplicates,
                r.requests,
                r.secs
            );
            runs[i].push(r);
        }
    }
    machine["loadavg_end"] = json!(procfs::loadavg());
    let summaries: Vec<Summary> = opts
        .contenders
        .iter()
        .zip(runs)
        .map(|(&c, r)| Summary::of(c, r))
        .collect();
    let report = report_json(&opts, &machine, &summaries);
    let table = markdown(&opts, &machine, &summaries);
    std::fs::create_dir_all(&opts.out_dir).with_context(|| format!("create {}", opts.out_dir.display()))?;
    let json_path = opts.out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    let md_path = opts.out_dir.join("results.md");
    std::fs::write(&md_path, &table).with_context(|| format!("write {}", md_path.display()))?;
    let png_path = opts.out_dir.join("chart.png");
    chart::draw(&png_path, &summaries, &machine, opts.runs).with_context(|| format!("draw {}", png_path.display()))?;
    println!("{table}");
    println!("BENCH_JSON {report}");
    eprintln!(
        "wrote {}, {} and {}",
        json_path.display(),
        md_path.display(),
        png_path.display()
    );
    Ok(summaries
        .iter()
        .all(|s| s.contender != Contender::Auditrelay || s.lost_max == 0))
}

fn auditrelay(summaries: &[Summary]) -> Option<&Summary> {
    summaries.iter().find(|s| s.contender == Contender::Auditrelay)
}

fn report_json(opts: &Options, machine: &Value, summaries: &[Summary]) -> Value {
    let ours = auditrelay(summaries);
    json!({
        "scenario": "peers",
        "machine": machine,
        "load": {"generator": "loggen --inet --stream --syslog-proto", "events": opts.events,
                 "message_bytes": opts.message_size, "batch_events": BATCH, "runs": opts.runs},
        "contenders": summaries.iter().map(|s| json!({
            "key": s.contender.key(), "name": s.contender.name(),
            "output": s.contender.output(), "durability": s.contender.durability(),
            "median": {"events_per_sec": s.events_per_sec, "cpu_seconds_per_million": s.cpu_per_million,
                       "peak_rss_bytes": s.peak_rss},
            "lost_max": s.lost_max, "duplicates_max": s.duplicates_max,
            "auditrelay_throughput_ratio": ours.map(|o| o.events_per_sec / s.events_per_sec),
            "cpu_ratio_to_auditrelay": ours.map(|o| s.cpu_per_million / o.cpu_per_million),
            "runs": s.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn markdown(opts: &Options, machine: &Value, summaries: &[Summary]) -> String {
    let ours = auditrelay(summaries);
    let mut out = format!(
        "Machine: {} ({} cores, {:.1} GiB, Linux {}); {} and {}.\n\
         Load averages (1/5/15 min) at the start: {}; at the end: {}.\n\
         Load: loggen, {} RFC 5424 messages of {} bytes over one TCP connection, octet counting; \
         batches of {BATCH} events; median of {} runs.\n\n\
         | contender | events/s | auditrelay ÷ it | CPU-s per M events | it ÷ auditrelay | peak RSS | lost (max) | duplicates (max) | durability |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        machine["cpu"].as_str().unwrap_or(""),
        machine["cores"],
        machine["memory_gib"].as_f64().unwrap_or(0.0),
        machine["kernel"].as_str().unwrap_or(""),
        machine["syslog_ng"].as_str().unwrap_or(""),
        machine["rsyslog"].as_str().unwrap_or(""),
        machine["loadavg_start"].as_str().unwrap_or("?"),
        machine["loadavg_end"].as_str().unwrap_or("?"),
        opts.events,
        opts.message_size,
        opts.runs,
    );
    for s in summaries {
        let (speed, cpu) = match ours {
            Some(o) => (
                format!("{:.2}×", o.events_per_sec / s.events_per_sec),
                format!("{:.2}×", s.cpu_per_million / o.cpu_per_million),
            ),
            None => ("–".into(), "–".into()),
        };
        out.push_str(&format!(
            "| {} | {:.0} | {speed} | {:.2} | {cpu} | {:.1} MiB | {} | {} | {} |\n",
            s.contender.name(),
            s.events_per_sec,
            s.cpu_per_million,
            s.peak_rss as f64 / 1048576.0,
            s.lost_max,
            s.duplicates_max,
            s.contender.durability()
        ));
    }
    out.push_str("\nOutputs: ");
    out.push_str(
        &summaries
            .iter()
            .map(|s| format!("{}: {}", s.contender.name(), s.contender.output()))
            .collect::<Vec<_>>()
            .join("; "),
    );
    out.push_str(
        "\n\nThe strace note (measured by hand, not by this run): `strace -f -c -e trace=fsync,fdatasync,msync,pwrite64` \
         on syslog-ng 3.38 with `disk-buffer(reliable(yes))` while it forwarded 20,000 loggen messages counted \
         20,003 `pwrite64` calls and no `fsync`, `fdatasync` or `msync`: its disk buffer is in the page cache, so it \
         survives the process's crash but not the machine's. Plain syslog over TCP has no acknowledgement, so \
         none of the forwarders (auditrelay included) can tell its sender when a message is safe; see the \
         SIGKILL test in crates/server/tests/it/sources_syslog.rs for what is lost in flight.\n",
    );
    out
}
