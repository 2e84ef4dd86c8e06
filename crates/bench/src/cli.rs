//! Command line: the scenarios ([`Scenario`]) and every option ([`Cli`]), with their checks.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use crate::events::EventSize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// 1 event per request, `--connections` keep-alive connections.
    #[value(name = "ingest-1")]
    Ingest1,
    /// `--batch-size` events per request (JSON array).
    #[value(name = "ingest-100")]
    Ingest100,
    /// Append → long-poll wakeup latency.
    Wakeup,
    /// Ingest → webhook sink → loopback receiver throughput, sink batches of
    /// 100 events, `--deliver-in-flight` in flight, while `--connections`
    /// ingest `--batch-size` events/request for `--duration`.
    #[value(name = "deliver-100")]
    Deliver100,
    /// As deliver-100 with sink batches of 1,000 events.
    #[value(name = "deliver-1000")]
    Deliver1000,
    /// Ingest → receipt latency at `--latency-rate` events/s on one
    /// connection (sink batches ≤ 100 events, 1 in flight).
    #[value(name = "deliver-latency")]
    DeliverLatency,
    /// A sink backlog: a paused webhook sink while `--backlog-events` are
    /// ingested at full speed (server RSS sampled every 200 ms), then the
    /// sink resumed and the drain into the receiver measured. Not part of
    /// `all`.
    Backlog,
    /// `--sinks` one-tenant webhook sinks, each delivered one event, then
    /// the server's CPU over `--duration` while they are idle and its RSS
    /// per sink; then `--dead-sinks` more behind a closed port with events
    /// pending, and the CPU while they fail. Not part of `all`.
    #[value(name = "many-sinks")]
    ManySinks,
    /// The `postgres_outbox` and `mysql_outbox` sources draining `--outbox-rows` committed rows
    /// each, `--runs` times, beside each database's own ceiling (the relay's select + delete,
    /// nothing appended). Needs the databases (`--outbox-postgres`, `--outbox-mysql`). Not part
    /// of `all`.
    Outbox,
    /// The same loggen load into auditrelay's syslog source and into syslog-ng and rsyslog, each
    /// forwarding Splunk-HEC-shaped batches to one loopback receiver (`--peers-*` options; a
    /// fresh forwarder per run, `--runs` rounds). Run alone; not part of `all`.
    Peers,
    /// All of the above except `backlog` and `many-sinks`, in that order.
    All,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ingest1 => "ingest-1",
            Scenario::Ingest100 => "ingest-100",
            Scenario::Wakeup => "wakeup",
            Scenario::Deliver100 => "deliver-100",
            Scenario::Deliver1000 => "deliver-1000",
            Scenario::DeliverLatency => "deliver-latency",
            Scenario::Backlog => "backlog",
            Scenario::ManySinks => "many-sinks",
            Scenario::Outbox => "outbox",
            Scenario::Peers => "peers",
            Scenario::All => "all",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay-bench",
    version,
    about = "Benchmark the auditrelay server: ingest throughput and latency beside two in-process \
             ceilings (a do-nothing HTTP server, a minimal durable appender), bytes on disk per event, \
             long-poll wakeup latency, webhook delivery throughput, ingest-to-receipt latency and a \
             sink backlog's memory and drain",
    after_help = "Exit status: 0 = ran clean; 1 = could not run; 2 = ran but saw errors (non-202 answers, \
                  failed checks) or the server did not exit 0 on SIGTERM."
)]
pub struct Cli {
    /// Scenarios to run (default: all). Same as --scenario.
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,

    /// Scenarios to run, comma-separated (default: all).
    #[arg(long = "scenario", value_name = "SCENARIO", value_enum, value_delimiter = ',')]
    pub scenario_flag: Vec<Scenario>,

    /// Server binary to start [default: `auditrelay` next to this binary,
    /// else target/release/auditrelay].
    #[arg(long, conflicts_with = "url")]
    pub server_bin: Option<PathBuf>,

    /// Benchmark an already-running server at this base URL (plain http)
    /// instead of starting one; needs --token.
    #[arg(long, requires = "token")]
    pub url: Option<String>,

    /// Operator token. With --url: the running server's token; otherwise
    /// the token given to the started server [default: generated].
    #[arg(long, env = "AUDITRELAY_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Passed to `auditrelay serve --database-url` (e.g. postgres://…);
    /// unset = embedded SQLite in the temporary data dir.
    #[arg(long, env = "AUDITRELAY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Measurement time per ingest scenario, seconds; also the ingest time of
    /// deliver-100/-1000 and the measured sending time of deliver-latency.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Warm-up before each ingest measurement, seconds (also deliver-latency's
    /// unmeasured lead-in; deliver-100/-1000 have none).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Concurrent keep-alive connections for the ingest and deliver-100/-1000
    /// scenarios.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,

    /// Events per request in ingest-100 and deliver-100/-1000.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,

    /// Sink `max_in_flight` (batches on the wire at once) in deliver-100/-1000.
    #[arg(long, default_value_t = 4)]
    pub deliver_in_flight: usize,

    /// deliver-latency's steady ingest rate, events/s (sent in 10 ms ticks of
    /// rate/100 events; below 100/s, one event per longer tick).
    #[arg(long, default_value_t = 1000.0)]
    pub latency_rate: f64,

    /// After ingest stops, how long the delivery scenarios wait for the
    /// receiver to hold every event before counting the rest as missing,
    /// seconds.
    #[arg(long, default_value_t = 60.0)]
    pub drain_timeout: f64,

    /// Wakeup rounds.
    #[arg(long, default_value_t = 200)]
    pub wakeup_iterations: usize,

    /// Pause between parking the long-poll and appending, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub wakeup_delay_ms: u64,

    /// Tenant to create (409 = already there, reused).
    #[arg(long, default_value = "bench")]
    pub tenant: String,

    /// Client runtime threads (1 keeps the client on one core).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,

    /// Keep the temporary data dir (and server log) after the run.
    #[arg(long)]
    pub keep_data: bool,

    /// Where the started server's temporary data dir is created [default:
    /// the system temp dir]. The durable-appender ceiling writes beside it,
    /// on the same filesystem.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Measure each ingest scenario this many times (for auditrelay and each
    /// ceiling, interleaved) and report the median, min and max.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,

    /// Skip the ceilings (do-nothing HTTP server, minimal durable appender)
    /// in the ingest scenarios.
    #[arg(long)]
    pub no_ceilings: bool,

    /// Size of each benchmark event as sent: `500` (a realistic audit event,
    /// ~500 bytes), `2k` (the same with a bigger metadata), any byte count
    /// from 490 (`k` = ×1024), or `legacy` (the ~170-byte event of earlier
    /// runs).
    #[arg(long, default_value = "500", value_parser = parse_event_size)]
    pub event_size: EventSize,

    /// Give every event a unique client `id` (exercises the server's dedup
    /// check); by default the server assigns ids.
    #[arg(long)]
    pub client_ids: bool,

    /// Events the backlog scenario ingests while its sink is paused.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog_events: u64,

    /// Idle sinks (one tenant each) the many-sinks scenario creates.
    #[arg(long, default_value_t = 10_000)]
    pub sinks: usize,

    /// Sinks behind a dead receiver the many-sinks scenario adds (0 = skip
    /// that phase).
    #[arg(long, default_value_t = 1_000)]
    pub dead_sinks: usize,

    /// Committed rows per outbox run (each database, each run).
    #[arg(long, default_value_t = 100_000)]
    pub outbox_rows: u64,

    /// The outbox sources' `batch_size` (and the ceiling's).
    #[arg(long, default_value_t = 500)]
    pub outbox_batch: u32,

    /// PostgreSQL for the outbox scenario: a database per run is created and dropped through
    /// this connection.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub outbox_postgres: String,

    /// MySQL/MariaDB for the outbox scenario, as --outbox-postgres.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306/mysql")]
    pub outbox_mysql: String,
    /// peers: loggen messages per contender and run.
    #[arg(long, default_value_t = 500_000)]
    pub peers_events: u64,

    /// peers: loggen message size, bytes.
    #[arg(long, default_value_t = 300)]
    pub peers_message_size: usize,

    /// peers: the contenders, comma-separated (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub peers_contenders: Vec<crate::peers::Contender>,

    /// peers: where results.json, results.md and chart.png go.
    #[arg(long, default_value = "docs/bench/peers")]
    pub peers_out: PathBuf,
}

fn parse_event_size(s: &str) -> Result<EventSize, String> {
    EventSize::parse(s).map_err(|e| format!("{e:#}"))
}

impl Cli {
    pub fn selected(&self) -> Vec<Scenario> {
        let mut s: Vec<Scenario> = self
            .scenarios
            .iter()
            .chain(self.scenario_flag.iter())
            .copied()
            .collect();
        if s.is_empty() || s.contains(&Scenario::All) {
            s = vec![
                Scenario::Ingest1,
                Scenario::Ingest100,
                Scenario::Wakeup,
                Scenario::Deliver100,
                Scenario::Deliver1000,
                Scenario::DeliverLatency,
            ];
        }
        s.sort();
        s.dedup();
        s
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            bail!("--duration must be > 0");
        }
        if !(self.warmup >= 0.0 && self.warmup.is_finite()) {
            bail!("--warmup must be >= 0");
        }
        if self.outbox_rows == 0 || self.outbox_batch == 0 {
            bail!("--outbox-rows and --outbox-batch must be > 0");
        }
        if self.connections == 0 || self.batch_size == 0 || self.client_threads == 0 {
            bail!("--connections, --batch-size and --client-threads must be >= 1");
        }
        if !(1..=64).contains(&self.deliver_in_flight) {
            bail!("--deliver-in-flight must be 1..=64 (the server's limit)");
        }
        if !(self.latency_rate > 0.0 && self.latency_rate.is_finite()) {
            bail!("--latency-rate must be > 0");
        }
        if !(1..=100).contains(&self.runs) {
            bail!("--runs must be 1..=100");
        }
        if self.sinks == 0 {
            bail!("--sinks must be >= 1");
        }
        if self.backlog_events == 0 {
            bail!("--backlog-events must be >= 1");
        }
        if !(self.drain_timeout >= 0.0 && self.drain_timeout.is_finite()) {
            bail!("--drain-timeout must be >= 0");
        }
        Ok(())
    }
}
