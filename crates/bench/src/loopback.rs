//! A loopback server on a thread and single-threaded runtime of its own, so that what the bench
//! receives is never served behind the harness's own work: bound to an ephemeral port on
//! 127.0.0.1, stopped through a oneshot.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::sync::oneshot;

/// The running server: its address, and what stops it and waits for it.
pub struct Loopback {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds 127.0.0.1:0 and runs `serve(listener, stop)` on a thread named `name`.
pub fn spawn<F, Fut>(name: &str, serve: F) -> Result<Loopback>
where
    F: FnOnce(std::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").with_context(|| format!("{name}: bind 127.0.0.1:0"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("{name}: non-blocking listener"))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("{name}: local address"))?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(|| format!("{name}: runtime"))?;
    let thread = std::thread::Builder::new()
        .name(format!("bench-{name}"))
        .spawn(move || rt.block_on(serve(listener, stop_rx)))
        .with_context(|| format!("spawn the {name} thread"))?;
    Ok(Loopback {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
