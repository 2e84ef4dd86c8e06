//! Small readers for /proc: memory high-water mark and CPU time.

use std::time::Duration;

/// A `kB` field of /proc/<pid>/status (e.g. `VmHWM:`), in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The 1/5/15-minute load averages from /proc/loadavg, e.g. "0.52 0.61 0.70".
pub fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let three: Vec<&str> = s.split_whitespace().take(3).collect();
    (three.len() == 3).then(|| three.join(" "))
}

/// Clock ticks per second for /proc/<pid>/stat times. Linux exposes
/// USER_HZ = 100 to user space on every mainstream architecture.
const USER_HZ: u64 = 100;

/// User + system CPU time consumed so far by a process (all its threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state); utime is field 14 → index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// User + system CPU time of this process's threads whose name (`comm`) starts with `prefix`
/// (threads that already exited are not counted). `None` when /proc is unreadable.
pub fn threads_cpu_time(prefix: &str) -> Option<Duration> {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Some(t) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat_cpu_ticks)
        {
            ticks += t;
        }
    }
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Whose CPU a load measures: the server process, or the threads of an in-process ceiling
/// (named with this prefix).
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    Process(u32),
    Threads(&'static str),
}

impl Probe {
    pub fn cpu_time(self) -> Option<Duration> {
        match self {
            Probe::Process(pid) => cpu_time(pid),
            Probe::Threads(prefix) => threads_cpu_time(prefix),
        }
    }

    /// Current resident set size in bytes (a server process only).
    pub fn rss_bytes(self) -> Option<u64> {
        match self {
            Probe::Process(pid) => proc_status_kib(pid, "VmRSS:").map(|k| k * 1024),
            Probe::Threads(_) => None,
        }
    }
}

/// CPU time consumed by a [`Probe`] over an interval.
#[derive(Clone, Copy)]
pub struct ProbeMeter {
    probe: Probe,
    start_cpu: Option<Duration>,
    start: std::time::Instant,
}

impl ProbeMeter {
    pub fn start(probe: Probe) -> Self {
        Self {
            probe,
            start_cpu: probe.cpu_time(),
            start: std::time::Instant::now(),
        }
    }

    /// (CPU seconds used, wall seconds) since `start`.
    pub fn used(&self) -> Option<(f64, f64)> {
        let used = self.probe.cpu_time()?.checked_sub(self.start_cpu?)?;
        Some((used.as_secs_f64(), self.start.elapsed().as_secs_f64()))
    }
}

/// Samples the CPU time of a process over an interval.
#[derive(Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    start_cpu: Option<Duration>,
    start: std::time::Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Self {
        Self {
            pid,
            start_cpu: cpu_time(pid),
            start: std::time::Instant::now(),
        }
    }

    /// CPU use since `start`, in percent of one core (200 = two cores busy).
    pub fn percent(&self) -> Option<f64> {
        let used = cpu_time(self.pid)?.checked_sub(self.start_cpu?)?;
        let wall = self.start.elapsed().as_secs_f64();
        (wall > 0.0).then(|| used.as_secs_f64() / wall * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tauditrelay\nVmPeak:\t  123 kB\nVmHWM:\t   4567 kB\nVmRSS:\t 890 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM:"), Some(4567));
        assert_eq!(parse_status_kib(s, "VmRSS:"), Some(890));
        assert_eq!(parse_status_kib(s, "VmSwap:"), None);
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (a b) c)) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 4 0 1000 0 0";
        assert_eq!(parse_stat_cpu_ticks(line), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn measures_named_threads() -> anyhow::Result<()> {
        if !std::path::Path::new("/proc/self/task").exists() {
            return Ok(());
        }
        let t = std::thread::Builder::new().name("probe-test-spin".into()).spawn(|| {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(120) {
                x = x.wrapping_add(1);
            }
            std::thread::sleep(Duration::from_millis(300));
            x
        })?;
        std::thread::sleep(Duration::from_millis(200));
        let used = threads_cpu_time("probe-test-spin");
        let _ = t.join();
        // How much CPU the spinning thread got depends on the machine's load: only that it was
        // found and read.
        assert!(used.is_some(), "{used:?}");
        assert_eq!(threads_cpu_time("no-such-thread-prefix"), Some(Duration::ZERO));
        Ok(())
    }

    #[test]
    fn reads_own_process() {
        if std::path::Path::new("/proc/self/status").exists() {
            let pid = std::process::id();
            assert!(proc_status_kib(pid, "VmHWM:").is_some_and(|v| v > 0));
            assert!(cpu_time(pid).is_some());
        }
    }
}
