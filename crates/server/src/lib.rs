//! The auditrelay server: configuration, auth, the HTTP API, metrics, and `serve`.

// `ApiError` carries a JSON detail value (~136 bytes). Handlers return it once per request, so
// boxing it would only add an allocation on the error path without a measurable gain.
#![allow(clippy::result_large_err)]

pub mod abuse;
pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod data_lock;
pub mod error;
pub mod graphql;
pub mod http_serve;
pub mod integrity;
pub mod keyfiles;
pub mod keys;
pub mod metrics;
pub mod retention;
pub mod sources;
pub mod state;
pub mod tls;
pub mod tokens;

use std::sync::Arc;

use anyhow::{bail, Context};
use auditrelay_core::time::{Clock, SystemClock};
use auditrelay_store::postgres::PostgresStore;
use auditrelay_store::sqlite::SqliteStore;
use auditrelay_store::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{ServeArgs, Settings};
use crate::state::{AppState, KnownTenants};

/// What a test running the server in its own process can swap in or listen to.
#[derive(Default)]
pub struct Hooks {
    /// Replaces the wall clock (retention tests move time by months).
    pub clock: Option<Arc<dyn Clock>>,
    /// Receives the bound address and the retention service once the server listens.
    pub on_listening: Option<tokio::sync::oneshot::Sender<Running>>,
    /// Cancelling it stops the server like SIGTERM.
    pub shutdown: Option<CancellationToken>,
}

/// A server that is listening.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub retention: Arc<retention::RetentionService>,
}

/// `auditrelay serve`: open the store, bind, serve until SIGTERM/SIGINT, then drain and exit.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    serve_with(args, Hooks::default()).await
}

/// [`serve`] with test hooks.
pub async fn serve_with(args: ServeArgs, hooks: Hooks) -> anyhow::Result<()> {
    init_tracing(&args.log);
    let clock: Arc<dyn Clock> = hooks.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let settings = Settings::resolve(&args)?;
    let metrics = Arc::new(metrics::Metrics::install());

    create_private_dir(&settings.data_dir)?;
    // Held until exit: `keys rotate` must not re-seal secrets under a running server.
    let _data_dir_lock = data_lock::DataDirLock::acquire_for_serve(&settings.data_dir)?;
    // Read the certificate before opening anything, so a bad path fails the start at once.
    let tls_config = settings.tls.as_ref().map(tls::server_config).transpose()?;
    let store: Arc<dyn Store> = match settings.database_url.as_deref() {
        None => {
            let store = SqliteStore::open(&settings.data_dir, Some(Arc::new(metrics::observe_group)))
                .with_context(|| format!("opening the log in {}", settings.data_dir.display()))?;
            tracing::info!(path = %store.path().display(), "embedded SQLite log open");
            Arc::new(store)
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // The URL may carry a password: it is never logged or put into an error.
            let store = PostgresStore::connect(url, Some(Arc::new(metrics::observe_group)))
                .await
                .context("connecting to PostgreSQL (--database-url)")?;
            tracing::info!("PostgreSQL log open");
            Arc::new(store)
        }
        Some(_) => bail!("--database-url must start with postgres:// (or be unset for the embedded store)"),
    };

    let (operator_hash, generated) = keyfiles::operator_token(&settings.data_dir, settings.admin_token.as_deref())?;
    let keyring = keyfiles::keyring(
        &settings.data_dir,
        settings.master_key.as_deref(),
        &settings.previous_master_keys,
    )?;
    tracing::info!(current = %keyring.current_id(), retired = keyring.retired_ids().len(), "master keys loaded");

    audit::ensure_system_tenant(store.as_ref()).await?;
    let integrity = Arc::new(integrity::CheckpointSigner::from_seed(&keyfiles::integrity_key(
        &settings.data_dir,
        settings.integrity_key.as_deref(),
    )?));
    integrity::warn_on_foreign_checkpoints(store.as_ref(), &integrity).await;

    // Publish current heads so /metrics shows every tenant from the start.
    let mut after: Option<String> = None;
    loop {
        let page = store.list_tenants(after.as_deref(), 1000).await?;
        for t in &page {
            let head = store.head(&t.id).await?;
            ::metrics::gauge!(metrics::LOG_HEAD, "tenant" => t.id.clone()).set(head as f64);
        }
        if page.len() < 1000 {
            break;
        }
        after = page.last().map(|t| t.id.clone());
    }

    let engine = auditrelay_engine::Engine::start(
        store.clone(),
        auditrelay_engine::EngineConfig {
            env: auditrelay_sinks::SinkEnv {
                allow_private_networks: settings.allow_private_networks,
                allowed_private_cidrs: settings.allow_private_cidrs.clone(),
            },
            keyring,
            delivery_log_retention: std::time::Duration::from_secs(settings.delivery_log_retention_hours * 3600),
            sink_factory: None,
        },
    );
    if settings.allow_private_networks {
        tracing::warn!("sinks may target private, loopback and link-local addresses (--allow-private-networks)");
    } else if !settings.allow_private_cidrs.is_empty() {
        let ranges: Vec<String> = settings.allow_private_cidrs.iter().map(|c| c.to_string()).collect();
        tracing::warn!(ranges = %ranges.join(","), "sinks may target these private ranges (--allow-private-cidrs)");
    }

    let shutdown = hooks.shutdown.unwrap_or_default();
    let retention = Arc::new(retention::RetentionService::new(
        store.clone(),
        engine.clone(),
        integrity.clone(),
        clock.clone(),
        settings.retention,
    ));
    let tenants = Arc::new(KnownTenants::default());
    let (sources, sources_task) = sources::start(
        store.clone(),
        sources::ServerAppender {
            store: store.clone(),
            tenants: tenants.clone(),
            limits: settings.limits,
            clock: clock.clone(),
        },
        engine.master_key().clone(),
        engine.node_id().to_owned(),
        shutdown.clone(),
    );
    let state = AppState {
        sources,
        engine: engine.clone(),
        auth: Arc::new(Authenticator::new(operator_hash, store.clone())),
        store: store.clone(),
        limits: settings.limits,
        sse_heartbeat: std::time::Duration::from_secs(settings.sse_heartbeat_secs),
        tenants,
        shutdown: shutdown.clone(),
        metrics,
        abuse: Arc::new(abuse::Abuse::new(&settings.abuse)),
        data_dir: settings.data_dir.clone(),
        integrity: integrity.clone(),
        clock: clock.clone(),
        retention: retention.clone(),
    };
    let purges = tokio::spawn(retention.clone().run(
        std::time::Duration::from_secs(settings.retention_interval_secs),
        shutdown.clone(),
    ));
    let checkpoints = tokio::spawn(integrity::run_checkpoints(
        store.clone(),
        integrity,
        std::time::Duration::from_secs(settings.checkpoint_interval_secs),
        shutdown.clone(),
    ));
    let app = api::router(state).merge(console::router());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;

    if let Some(token) = generated {
        println!("auditrelay: generated operator token (shown once; store it now): {token}");
    }
    let scheme = if tls_config.is_some() { "https" } else { "http" };
    println!("auditrelay: listening on {scheme}://{local}");
    tracing::info!(%local, scheme, data_dir = %settings.data_dir.display(), "auditrelay serving");

    if let Some(tx) = hooks.on_listening {
        let _ = tx.send(Running { addr: local, retention });
    }
    tokio::spawn(wait_for_signal(shutdown.clone()));
    http_serve::serve(
        listener,
        app,
        settings.abuse.header_read_timeout,
        settings.abuse.body_read_timeout,
        tls_config.map(tokio_rustls::TlsAcceptor::from),
        shutdown.clone(),
    )
    .await
    .context("serving HTTP")?;

    // Sources stopped accepting at the signal; their in-flight appends finish before the store
    // closes.
    let _ = sources_task.await;
    tracing::info!("draining: finishing deliveries on the wire and committing cursors");
    // Attempts on the wire finish (each bounded by its sink's timeout); past this bound we
    // stop waiting: an unfinished batch is simply delivered again after the restart.
    if tokio::time::timeout(std::time::Duration::from_secs(30), engine.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("deliveries still in flight after 30 s; they will be retried after the restart");
    }
    // The last checkpoint covers everything appended before the stop.
    let _ = checkpoints.await;
    let _ = purges.await;
    tracing::info!("draining: finishing queued writes");
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The data dir holds the audit trail and key material: readable by the service user only.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let existed = dir.exists();
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    if !existed {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

async fn wait_for_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

fn init_tracing(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
