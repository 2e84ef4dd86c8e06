//! Settings: flag over environment over TOML file over default (api.md "Running it").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use auditrelay_core::Limits;
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
    /// Hours the delivery log keeps each attempt (default 72).
    #[arg(long, env = "AUDITRELAY_DELIVERY_LOG_RETENTION_HOURS")]
    pub delivery_log_retention_hours: Option<u64>,
    /// TOML file with any of these settings.
    #[arg(long, env = "AUDITRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds between SSE heartbeat comments.
    #[arg(long, env = "AUDITRELAY_SSE_HEARTBEAT_SECS")]
    pub sse_heartbeat_secs: Option<u64>,
    /// Largest event in bytes (default 65536).
    #[arg(long, env = "AUDITRELAY_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// Largest request body in bytes (default 5 MiB).
    #[arg(long, env = "AUDITRELAY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Most events in one request (default 10000).
    #[arg(long, env = "AUDITRELAY_MAX_REQUEST_EVENTS")]
    pub max_request_events: Option<usize>,
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
    admin_token: Option<String>,
    master_key: Option<String>,
    sse_heartbeat_secs: Option<u64>,
    delivery_log_retention_hours: Option<u64>,
    max_event_bytes: Option<usize>,
    max_request_bytes: Option<usize>,
    max_request_events: Option<usize>,
}

/// Effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub allow_private_networks: bool,
    /// Operator token from env or file; `None` = generated into the data dir on first start.
    pub admin_token: Option<String>,
    /// Base64 master key from env or file; `None` = generated into the data dir.
    pub master_key: Option<String>,
    pub sse_heartbeat_secs: u64,
    pub delivery_log_retention_hours: u64,
    pub limits: Limits,
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
            admin_token: env_nonempty("AUDITRELAY_ADMIN_TOKEN").or(file.admin_token),
            master_key: env_nonempty("AUDITRELAY_MASTER_KEY").or(file.master_key),
            sse_heartbeat_secs: args.sse_heartbeat_secs.or(file.sse_heartbeat_secs).unwrap_or(15).max(1),
            delivery_log_retention_hours: args
                .delivery_log_retention_hours
                .or(file.delivery_log_retention_hours)
                .unwrap_or(72)
                .max(1),
            limits,
        };
        if let Some(token) = &settings.admin_token {
            if token.len() < 16 {
                bail!("the operator token must be at least 16 characters");
            }
        }
        Ok(settings)
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}
