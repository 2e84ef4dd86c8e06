//! The syslog listener's I/O: accept (bounded by `max_connections`), optional TLS, and per
//! connection a loop that decodes the complete frames already buffered and appends them as one
//! batch, reading and parsing the next batch while that one is made durable, never more than
//! one batch ahead. A slow disk therefore slows the sender through TCP flow control; nothing
//! read is dropped. With RELP, a message is answered only once durable.

use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::NewEvent;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::config::SyslogSettings;
use super::event::{malformed, to_event};
use super::framing::{Frame, FrameDecoder};
use super::message::parse;
use super::relp;
use crate::append::validate_event;
use crate::supervisor::RunContext;

/// Frames appended in one batch at most (one group commit).
const MAX_BATCH: usize = 1000;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes taken from a connection for one batch: what the sender has already sent is read
/// at once, up to this, so batches (and fsyncs) are as few as possible. A crash loses at most
/// one such batch (read, not yet durable) more than the socket buffers hold (plain TCP syslog
/// has no acknowledgement; RELP has).
const READ_AHEAD: usize = 4 * READ_CHUNK;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Between retries of an append the store refused (it is down or shutting down).
const APPEND_RETRY: Duration = Duration::from_millis(500);

/// The TLS acceptor for `cert` and `key`; an error names the config field at fault.
pub(crate) fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<TlsAcceptor, (&'static str, String)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            (
                "config.cert_file",
                format!("reading the certificate chain {}: {e}", cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "config.cert_file",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            "config.key_file",
            format!("reading the private key {}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("config.tls", format!("choosing TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (
                "config.key_file",
                format!("the private key does not fit the certificate: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds `addr`, naming the usual causes of failure.
pub(crate) async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("cannot listen on {addr}: the address is already in use"),
        std::io::ErrorKind::PermissionDenied => format!("cannot listen on {addr}: permission denied"),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: no interface of this host has that address")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    })
}

pub(crate) async fn run(settings: SyslogSettings, ctx: RunContext) -> Result<(), String> {
    let tenant = ctx
        .tenant
        .clone()
        .ok_or_else(|| "a syslog source needs a tenant".to_owned())?;
    let tls = match &settings.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key).map_err(|(_, e)| e)?),
        None => None,
    };
    let listener = bind(settings.listen).await?;
    tracing::info!(source = %ctx.source_id, listen = %settings.listen, tls = tls.is_some(), "syslog source listening");
    ctx.status.set_state("running");
    let settings = Arc::new(settings);
    let tenant: Arc<str> = tenant.into();
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(source = %ctx.source_id, error = %e, "accepting a syslog connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (ctx, settings, tenant, tls) = (ctx.clone(), settings.clone(), tenant.clone(), tls.clone());
        connections.spawn(async move {
            let _permit = permit;
            let peer = peer.to_string();
            let outcome = match tls {
                Some(acceptor) => match handshake(acceptor, stream).await {
                    Ok(tls_stream) => serve(tls_stream, &peer, &ctx, &settings, &tenant).await,
                    Err(e) => Err(e),
                },
                None => serve(stream, &peer, &ctx, &settings, &tenant).await,
            };
            if let Err(e) = outcome {
                tracing::debug!(source = %ctx.source_id, %peer, error = %e, "syslog connection ended");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

/// Serves one connection in the source's protocol: RELP, or RFC 6587 framing.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    peer: &str,
    ctx: &RunContext,
    settings: &SyslogSettings,
    tenant: &str,
) -> Result<(), String> {
    if settings.relp {
        relp_connection(io, peer, ctx, settings, tenant).await
    } else {
        connection(io, peer, ctx, settings, tenant).await
    }
}

/// What the server answers, in the order of the client's commands.
enum Reply {
    /// A `syslog` command: "200 OK" once its event is durable.
    Ack(u32),
    /// Known at once (the `open` answer, a refusal).
    Now(Vec<u8>),
    /// `close`: answered, then `serverclose`, then the connection ends.
    Close(u32),
}

/// One RELP session: every complete command already buffered is handled; the `syslog` ones are
/// appended as one batch, and only once that batch is durable are their answers (the
/// acknowledgements) written, in command order. A connection that breaks before then leaves
/// the messages unacknowledged, and the client sends them again.
async fn relp_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: &str,
    ctx: &RunContext,
    settings: &SyslogSettings,
    tenant: &str,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut opened = false;
    loop {
        let mut frames: Vec<Frame> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut broken: Option<String> = None;
        while frames.len() < MAX_BATCH {
            let (command, used) = match relp::decode(&buf) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e.to_string());
                    break;
                }
            };
            buf.drain(..used);
            match command.command.as_str() {
                "open" if !opened => match relp::accept_offers(&command.data) {
                    Ok(offers) => {
                        opened = true;
                        replies.push(Reply::Now(relp::response(command.txnr, 200, "OK", Some(&offers))));
                    }
                    Err(e) => {
                        replies.push(Reply::Now(relp::response(command.txnr, 500, &e, None)));
                        broken = Some(e);
                        break;
                    }
                },
                "syslog" if opened => {
                    frames.push(relp_frame(command.data, settings.max_message_bytes));
                    replies.push(Reply::Ack(command.txnr));
                }
                "close" => {
                    replies.push(Reply::Close(command.txnr));
                    break;
                }
                other => {
                    let e = format!("unexpected command `{other}`");
                    replies.push(Reply::Now(relp::response(command.txnr, 500, &e, None)));
                    broken = Some(e);
                    break;
                }
            }
        }
        if !frames.is_empty() {
            append(frames, peer, ctx, settings, tenant).await?;
        }
        let mut out = Vec::new();
        let mut closing = false;
        for reply in replies {
            match reply {
                Reply::Ack(txnr) => out.extend(relp::response(txnr, 200, "OK", None)),
                Reply::Now(bytes) => out.extend(bytes),
                Reply::Close(txnr) => {
                    out.extend(relp::response(txnr, 200, "OK", None));
                    closing = true;
                }
            }
        }
        if closing || broken.is_some() {
            out.extend_from_slice(relp::serverclose());
        }
        if !out.is_empty() {
            io.write_all(&out).await.map_err(|e| format!("answering: {e}"))?;
            io.flush().await.map_err(|e| format!("answering: {e}"))?;
        }
        if let Some(e) = broken {
            let _ = io.shutdown().await;
            return Err(e);
        }
        if closing {
            let _ = io.shutdown().await;
            return Ok(());
        }
        if relp::decode(&buf).ok().flatten().is_some() {
            continue; // more complete commands than one batch took
        }
        let n = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            r = io.read(&mut chunk) => r.map_err(|e| format!("reading: {e}"))?,
        };
        if n == 0 {
            return Ok(()); // what was not answered is sent again by the client
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A RELP `syslog` command's data as a frame; one over the size limit is kept cut, as with
/// RFC 6587 framing.
fn relp_frame(mut data: Vec<u8>, max: usize) -> Frame {
    if data.len() <= max {
        return Frame {
            bytes: data,
            problem: None,
        };
    }
    let len = data.len();
    data.truncate(max);
    Frame {
        bytes: data,
        problem: Some(format!(
            "message of {len} bytes is longer than the {max} byte limit; kept its first {max} bytes"
        )),
    }
}

/// Reads one connection until it closes or the source stops. Two batches overlap: while one
/// is being made durable (the log writer's write + fsync, on its own thread), the next is read
/// from the socket and parsed; it is appended only once the one before it is durable. So at
/// most one batch (≤ `MAX_BATCH` frames, ≤ `READ_AHEAD` bytes) is read but not yet durable,
/// besides the socket buffers, and a slow disk still slows the sender through TCP flow control.
async fn connection<S: AsyncRead + Unpin>(
    mut io: S,
    peer: &str,
    ctx: &RunContext,
    settings: &SyslogSettings,
    tenant: &str,
) -> Result<(), String> {
    let mut decoder = FrameDecoder::new(settings.framing, settings.max_message_bytes);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_AHEAD + READ_CHUNK + settings.max_message_bytes);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut ended = false;
    let mut durable_next = Prepared::default();
    loop {
        let committing = commit(std::mem::take(&mut durable_next), ctx);
        let next = async {
            let mut frames: Vec<Frame> = Vec::new();
            loop {
                // Complete frames already here first (at most one batch).
                let used = decoder.decode(&buf, MAX_BATCH, &mut frames);
                buf.drain(..used);
                if !frames.is_empty() {
                    return prepare(&frames, peer, ctx, settings, tenant).map(Some);
                }
                if ended {
                    return match decoder.finish(&buf) {
                        Some(last) => prepare(&[last], peer, ctx, settings, tenant).map(Some),
                        None => Ok(None),
                    };
                }
                let n = tokio::select! {
                    _ = ctx.cancel.cancelled() => return Ok(None),
                    r = io.read(&mut chunk) => r.map_err(|e| format!("reading: {e}"))?,
                };
                ended = n == 0;
                buf.extend_from_slice(&chunk[..n]);
                // Take what else the sender has already sent (up to READ_AHEAD bytes) without
                // waiting, so that one append, one fsync, carries as many messages as are there.
                while !ended && buf.len() < READ_AHEAD {
                    match read_ready(&mut io, &mut chunk).await {
                        Some(Ok(0)) => ended = true,
                        Some(Ok(m)) => buf.extend_from_slice(&chunk[..m]),
                        Some(Err(e)) => return Err(format!("reading: {e}")),
                        None => break,
                    }
                }
            }
        };
        let (committed, next) = tokio::join!(committing, next);
        committed?;
        match next? {
            Some(batch) => durable_next = batch,
            // The connection ended (or the source stops) with everything read committed.
            None => return Ok(()),
        }
    }
}

/// Reads what the connection already holds, without waiting: `None` when nothing is there now.
async fn read_ready<S: AsyncRead + Unpin>(io: &mut S, chunk: &mut [u8]) -> Option<std::io::Result<usize>> {
    std::future::poll_fn(|cx| {
        let mut read = tokio::io::ReadBuf::new(chunk);
        match std::pin::Pin::new(&mut *io).poll_read(cx, &mut read) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Some(Ok(read.filled().len()))),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        }
    })
    .await
}

/// Turns frames into events (a message that cannot become one becomes `syslog.malformed`) and
/// appends them, retrying until they are durable or the source stops.
async fn append(
    frames: Vec<Frame>,
    peer: &str,
    ctx: &RunContext,
    settings: &SyslogSettings,
    tenant: &str,
) -> Result<(), String> {
    let batch = prepare(&frames, peer, ctx, settings, tenant)?;
    commit(batch, ctx).await
}

/// Events made from frames, not yet appended.
#[derive(Default)]
struct Prepared {
    events: Vec<NewEvent>,
    malformed: u64,
}

/// The CPU half of `append`: parse and validate, nothing awaited.
fn prepare(
    frames: &[Frame],
    peer: &str,
    ctx: &RunContext,
    settings: &SyslogSettings,
    tenant: &str,
) -> Result<Prepared, String> {
    let limits = ctx.appender.limits();
    let received_at = ctx.appender.now_rfc3339();
    let now = jiff::Timestamp::now();
    let mut batch = Prepared {
        events: Vec::with_capacity(frames.len()),
        malformed: 0,
    };
    ctx.status.add_received(frames.len() as u64);
    for frame in frames {
        let candidate = match &frame.problem {
            Some(problem) => Err(problem.clone()),
            None => parse(&frame.bytes, settings.protocol, now)
                .map(|m| to_event(&m, &frame.bytes, peer, settings))
                .map_err(|e| e.0),
        };
        let event = match candidate.and_then(|e| validate_event(&e, tenant, &limits, &received_at)) {
            Ok(event) => event,
            Err(error) => {
                batch.malformed += 1;
                let event = malformed(&frame.bytes, &error, peer, limits.max_event_bytes);
                validate_event(&event, tenant, &limits, &received_at)
                    .map_err(|e| format!("a malformed message could not be kept: {e}"))?
            }
        };
        batch.events.push(event);
    }
    Ok(batch)
}

/// The waiting half of `append`: one group commit, retried until durable or the source stops.
async fn commit(batch: Prepared, ctx: &RunContext) -> Result<(), String> {
    if batch.events.is_empty() {
        return Ok(());
    }
    loop {
        match ctx.appender.append(batch.events.clone()).await {
            Ok(outcomes) => {
                let stored = outcomes.iter().filter(|o| !o.duplicate).count() as u64;
                ctx.status.add_appended(stored);
                ctx.status.add_malformed(batch.malformed);
                return Ok(());
            }
            Err(e) => {
                ctx.status.set_error(format!("appending: {e}"));
                tracing::warn!(source = %ctx.source_id, error = %e, "appending syslog messages failed; retrying");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => {
                        return Err(format!("stopped with {} messages not appended: {e}", batch.events.len()));
                    }
                    _ = tokio::time::sleep(APPEND_RETRY) => {}
                }
            }
        }
    }
}
