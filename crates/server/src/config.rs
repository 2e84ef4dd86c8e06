//! Settings: flag over environment over TOML file over default (api.md "Running it").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use auditrelay_core::Limits;
use auditrelay_sinks::http::Cidr;
use serde::Deserialize;

/// `auditrelay serve` flags. Each is optional here so the file and defaults can fill the gaps.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "AUDITRELAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded log and key files (created on first start).
    #[arg(long, env = "AUDITRELAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Unset = embedded SQLite; `postgres://…` = PostgreSQL.
    #[arg(long, env = "AUDITRELAY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Let sinks target loopback, private and link-local addresses.
    /// `--allow-private-networks` alone means true.
    #[arg(long, env = "AUDITRELAY_ALLOW_PRIVATE_NETWORKS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_networks: Option<bool>,
    /// Private ranges sinks may reach while the rest of the SSRF guard stays on, comma-separated
    /// CIDRs (e.g. `10.20.0.0/16,fd00:1::/64`): for a collector on an internal network.
    #[arg(long, env = "AUDITRELAY_ALLOW_PRIVATE_CIDRS", value_delimiter = ',')]
    pub allow_private_cidrs: Option<Vec<String>>,
    /// Serve HTTPS: PEM certificate chain (needs --tls-key).
    #[arg(long, env = "AUDITRELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Serve HTTPS: PEM private key (PKCS#8, PKCS#1 or SEC1; needs --tls-cert).
    #[arg(long, env = "AUDITRELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Hours the delivery log keeps each attempt (default 72).
    #[arg(long, env = "AUDITRELAY_DELIVERY_LOG_RETENTION_HOURS")]
    pub delivery_log_retention_hours: Option<u64>,
    /// TOML file with any of these settings.
    #[arg(long, env = "AUDITRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds between SSE heartbeat comments.
    #[arg(long, env = "AUDITRELAY_SSE_HEARTBEAT_SECS")]
    pub sse_heartbeat_secs: Option<u64>,
    /// Seconds between signed checkpoints of each tenant's hash chain (default 60).
    #[arg(long, env = "AUDITRELAY_CHECKPOINT_INTERVAL_SECS")]
    pub checkpoint_interval_secs: Option<u64>,
    /// Days events stay active (visible to /v1/events and /v1/stream) unless a tenant's policy
    /// says otherwise (default 90).
    #[arg(long, env = "AUDITRELAY_RETENTION_ACTIVE_DAYS")]
    pub retention_active_days: Option<u32>,
    /// Delete archived events past `--retention-purge-after-days` (default false).
    /// `--retention-auto-purge` alone means true.
    #[arg(long, env = "AUDITRELAY_RETENTION_AUTO_PURGE", num_args = 0..=1, default_missing_value = "true")]
    pub retention_auto_purge: Option<bool>,
    /// Days after which delivered events may be purged (default 365).
    #[arg(long, env = "AUDITRELAY_RETENTION_PURGE_AFTER_DAYS")]
    pub retention_purge_after_days: Option<u32>,
    /// Days after which events are purged even if a sink has not delivered them (default 730).
    #[arg(long, env = "AUDITRELAY_RETENTION_HARD_LIMIT_DAYS")]
    pub retention_hard_limit_days: Option<u32>,
    /// Seconds between retention passes (default 300).
    #[arg(long, env = "AUDITRELAY_RETENTION_INTERVAL_SECS")]
    pub retention_interval_secs: Option<u64>,
    /// Largest event in bytes (default 65536).
    #[arg(long, env = "AUDITRELAY_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// Largest request body in bytes (default 5 MiB).
    #[arg(long, env = "AUDITRELAY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Most events in one request (default 10000).
    #[arg(long, env = "AUDITRELAY_MAX_REQUEST_EVENTS")]
    pub max_request_events: Option<usize>,
    /// Requests per second each tenant key may make (token bucket; 0 = no limit; default 10000).
    #[arg(long, env = "AUDITRELAY_RATE_LIMIT_RPS")]
    pub rate_limit_rps: Option<u32>,
    /// Requests a tenant key may make in one burst above the rate (default 20000).
    #[arg(long, env = "AUDITRELAY_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Open long-polls (`wait` > 0) plus SSE streams each tenant key may hold (0 = no cap; default 16).
    #[arg(long, env = "AUDITRELAY_MAX_STREAMS_PER_KEY")]
    pub max_streams_per_key: Option<u32>,
    /// Seconds a client has to send a request's headers before the connection is closed (default 10).
    #[arg(long, env = "AUDITRELAY_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a client has to send a whole request body before it gets 408 (default 30).
    #[arg(long, env = "AUDITRELAY_BODY_READ_TIMEOUT_SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// Log filter (tracing env-filter syntax), e.g. `info,auditrelay=debug`.
    #[arg(long, env = "AUDITRELAY_LOG", default_value = "info")]
    pub log: String,
}

/// The TOML file: same names as the flags, plus the two secrets that have no flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    allow_private_networks: Option<bool>,
    allow_private_cidrs: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_token: Option<String>,
    master_key: Option<String>,
    previous_master_keys: Option<Vec<String>>,
    integrity_key: Option<String>,
    sse_heartbeat_secs: Option<u64>,
    checkpoint_interval_secs: Option<u64>,
    delivery_log_retention_hours: Option<u64>,
    retention_active_days: Option<u32>,
    retention_auto_purge: Option<bool>,
    retention_purge_after_days: Option<u32>,
    retention_hard_limit_days: Option<u32>,
    retention_interval_secs: Option<u64>,
    max_event_bytes: Option<usize>,
    max_request_bytes: Option<usize>,
    max_request_events: Option<usize>,
    rate_limit_rps: Option<u32>,
    rate_limit_burst: Option<u32>,
    max_streams_per_key: Option<u32>,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
}

/// The certificate chain and private key `serve` terminates TLS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub allow_private_networks: bool,
    /// Private ranges sinks may reach although the SSRF guard is on.
    pub allow_private_cidrs: Vec<Cidr>,
    /// Certificate and key files when `serve` terminates TLS itself.
    pub tls: Option<TlsFiles>,
    /// Operator token from env or file; `None` = generated into the data dir on first start.
    pub admin_token: Option<String>,
    /// Base64 master key from env or file; `None` = generated into the data dir.
    /// Base64 Ed25519 seed that signs checkpoints, from env or file; `None` = generated into
    /// the data dir. Nodes sharing one PostgreSQL log must share it (one signer per log).
    pub integrity_key: Option<String>,
    pub master_key: Option<String>,
    /// Base64 keys that open (never seal) secrets sealed before a rotation, from
    /// `AUDITRELAY_PREVIOUS_MASTER_KEYS` (comma-separated) or the file.
    pub previous_master_keys: Vec<String>,
    pub sse_heartbeat_secs: u64,
    pub checkpoint_interval_secs: u64,
    pub delivery_log_retention_hours: u64,
    /// The retention policy of tenants without their own.
    pub retention: crate::retention::RetentionPolicy,
    pub retention_interval_secs: u64,
    pub limits: Limits,
    pub abuse: AbuseLimits,
}

/// Per-key rate and stream limits and the slow-client timeouts (`0` turns a limit off).
#[derive(Debug, Clone, Copy)]
pub struct AbuseLimits {
    pub rate_limit_rps: u32,
    pub rate_limit_burst: u32,
    pub max_streams_per_key: u32,
    pub header_read_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileSettings::default(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_event_bytes: args
                .max_event_bytes
                .or(file.max_event_bytes)
                .unwrap_or(defaults.max_event_bytes),
            max_request_bytes: args
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(defaults.max_request_bytes),
            max_request_events: args
                .max_request_events
                .or(file.max_request_events)
                .unwrap_or(defaults.max_request_events),
        };
        if limits.max_event_bytes == 0 || limits.max_request_bytes == 0 || limits.max_request_events == 0 {
            bail!("size limits must be greater than zero");
        }
        let settings = Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./auditrelay-data")),
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|s| !s.is_empty()),
            allow_private_networks: args
                .allow_private_networks
                .or(file.allow_private_networks)
                .unwrap_or(false),
            allow_private_cidrs: parse_cidrs(args.allow_private_cidrs.clone().or(file.allow_private_cidrs))?,
            tls: match (
                args.tls_cert.clone().or(file.tls_cert),
                args.tls_key.clone().or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                (Some(_), None) => bail!("--tls-cert needs --tls-key (the certificate's private key)"),
                (None, Some(_)) => bail!("--tls-key needs --tls-cert (the certificate chain)"),
            },
            admin_token: env_nonempty("AUDITRELAY_ADMIN_TOKEN").or(file.admin_token),
            master_key: env_nonempty("AUDITRELAY_MASTER_KEY").or(file.master_key),
            integrity_key: env_nonempty("AUDITRELAY_INTEGRITY_KEY").or(file.integrity_key),
            previous_master_keys: match env_nonempty("AUDITRELAY_PREVIOUS_MASTER_KEYS") {
                Some(list) => list
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
                None => file.previous_master_keys.unwrap_or_default(),
            },
            sse_heartbeat_secs: args.sse_heartbeat_secs.or(file.sse_heartbeat_secs).unwrap_or(15).max(1),
            checkpoint_interval_secs: args
                .checkpoint_interval_secs
                .or(file.checkpoint_interval_secs)
                .unwrap_or(60)
                .max(1),
            delivery_log_retention_hours: args
                .delivery_log_retention_hours
                .or(file.delivery_log_retention_hours)
                .unwrap_or(72)
                .max(1),
            retention: {
                let d = crate::retention::RetentionPolicy::default();
                crate::retention::RetentionPolicy {
                    active_days: args
                        .retention_active_days
                        .or(file.retention_active_days)
                        .unwrap_or(d.active_days),
                    auto_purge: args
                        .retention_auto_purge
                        .or(file.retention_auto_purge)
                        .unwrap_or(d.auto_purge),
                    purge_after_days: args
                        .retention_purge_after_days
                        .or(file.retention_purge_after_days)
                        .unwrap_or(d.purge_after_days),
                    hard_limit_days: args
                        .retention_hard_limit_days
                        .or(file.retention_hard_limit_days)
                        .unwrap_or(d.hard_limit_days),
                }
            },
            retention_interval_secs: args
                .retention_interval_secs
                .or(file.retention_interval_secs)
                .unwrap_or(300)
                .max(1),
            limits,
            abuse: AbuseLimits {
                rate_limit_rps: args.rate_limit_rps.or(file.rate_limit_rps).unwrap_or(10_000),
                rate_limit_burst: args.rate_limit_burst.or(file.rate_limit_burst).unwrap_or(20_000),
                max_streams_per_key: args.max_streams_per_key.or(file.max_streams_per_key).unwrap_or(16),
                header_read_timeout: std::time::Duration::from_secs(
                    args.header_read_timeout_secs
                        .or(file.header_read_timeout_secs)
                        .unwrap_or(10)
                        .max(1),
                ),
                body_read_timeout: std::time::Duration::from_secs(
                    args.body_read_timeout_secs
                        .or(file.body_read_timeout_secs)
                        .unwrap_or(30)
                        .max(1),
                ),
            },
        };
        if let Err(e) = settings.retention.validate() {
            bail!("--retention-{}: {}", e.field.replace('_', "-"), e.message);
        }
        if let Some(token) = &settings.admin_token {
            if token.len() < 16 {
                bail!("the operator token must be at least 16 characters");
            }
        }
        Ok(settings)
    }
}

fn parse_cidrs(raw: Option<Vec<String>>) -> anyhow::Result<Vec<Cidr>> {
    raw.unwrap_or_default()
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Cidr>().context("--allow-private-cidrs"))
        .collect()
}

fn load_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}
