//! The HTTP accept loop, with the slow-client defences `axum::serve` cannot set:
//!
//! - a **header-read timeout**: hyper closes a connection whose request head is not complete
//!   in time (a client trickling headers byte by byte — slowloris). `axum::serve` gives hyper
//!   no timer, so hyper's own timeout never fires there; this loop gives it one.
//! - a **body-read timeout** ([`body_deadline`]): the whole body must arrive within the limit,
//!   however it is paced. An idle timeout between chunks would not do: one byte every few
//!   seconds never trips it.
//!
//! - with TLS ([`crate::tls`]), the handshake runs on the connection's own task, bounded by
//!   [`crate::tls::HANDSHAKE_TIMEOUT`], so a client that never finishes it holds nothing else.
//!
//! Graceful shutdown matches `axum::serve`: stop accepting, let open connections finish.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The error a body yields once its deadline has passed; `read_limited` turns it into 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits for open connections.
/// With `tls`, every connection shakes hands first (plain HTTP to that port gets no answer).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    body_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // hyper's header timeout starts with the first byte; a client that connects and
            // sends nothing would hold the connection forever without this wait.
            let mut first = [0u8; 1];
            tokio::select! {
                peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => match peeked {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                },
                _ = shutdown.cancelled() => return,
            }
            match tls {
                None => serve_connection(stream, app, &builder, watcher, body_timeout).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls_stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls_stream)) => tls_stream,
                            // Plain HTTP to the TLS port, scanners, stalled handshakes.
                            Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => return tracing::debug!("TLS handshake timed out"),
                        },
                        _ = shutdown.cancelled() => return,
                    };
                    serve_connection(tls_stream, app, &builder, watcher, body_timeout).await
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection, until it closes or graceful shutdown ends it.
async fn serve_connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    app: Router,
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    body_timeout: Duration,
) {
    {
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let deadline = tokio::time::Instant::now() + body_timeout;
            let req = req.map(|body| body_deadline(Body::new(body), deadline, body_timeout));
            let app = app.clone();
            async move {
                app.oneshot(req)
                    .await
                    .map_err(|never: Infallible| -> Infallible { match never {} })
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// `body`, failing with [`BodyTimedOut`] if it is not fully read by `deadline`. The deadline
/// counts from the request head, so it bounds the whole upload however it is paced.
fn body_deadline(body: Body, deadline: tokio::time::Instant, limit: Duration) -> Body {
    let stream = futures::stream::unfold(Some(body.into_data_stream()), move |inner| async move {
        let mut inner = inner?;
        match tokio::time::timeout_at(deadline, inner.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
            Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(axum::BoxError::from(BodyTimedOut(limit))), None)),
        }
    });
    Body::from_stream(stream)
}
