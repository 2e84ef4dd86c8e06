//! Delivering one batch over the sink's one connection (TCP or TLS), reconnecting when it broke.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auditrelay_format::{encode, Format, FormatOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::config::{parse_config, SyslogSettings};
use super::message::{frame, is_header_token, message, MessageHeader, MAX_HOSTNAME};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// How long connecting (TCP and the TLS handshake together) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket write buffer: big enough that a batch goes out in few syscalls.
const WRITE_BUFFER: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

type Stream = BufWriter<Box<dyn Io>>;

/// A ready-to-send syslog sink. Holds at most one open connection.
pub struct SyslogSink {
    cfg: SyslogSettings,
    format: Format,
    header: MessageHeader,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    env: SinkEnv,
    conn: Mutex<Option<Stream>>,
}

impl fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogSink")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .field("tls", &self.cfg.tls)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl SyslogSink {
    /// Builds the sink: parses the config, loads the CA file, reads the local host name. No
    /// network here; the first delivery connects.
    pub fn new(config: &Value, _secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        let cfg = parse_config(config)?;
        let tls = if cfg.tls {
            let roots = match &cfg.ca_file {
                Some(path) => load_ca(path)?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            // An explicit provider: the process-wide default is ambiguous when several are linked.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let client = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ConfigError::new("config.tls", format!("TLS setup failed: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(cfg.host.clone())
                .map_err(|e| ConfigError::new("config.host", format!("not a valid TLS server name: {e}")))?;
            Some((TlsConnector::from(Arc::new(client)), name))
        } else {
            None
        };
        let header = MessageHeader {
            facility: cfg.facility,
            hostname: local_hostname(),
            app_name: cfg.app_name.clone(),
        };
        Ok(SyslogSink {
            cfg,
            format,
            header,
            tls,
            env: env.clone(),
            conn: Mutex::new(None),
        })
    }

    /// The framed messages of a batch, or the report for an event that cannot be encoded.
    fn frames(&self, batch: &Batch<'_>, options: &FormatOptions) -> Result<Vec<u8>, AttemptReport> {
        let mut out = Vec::new();
        for event in batch.events {
            let record = encode(self.format, event, options).map_err(|e| AttemptReport {
                // The same event would fail the same way on every attempt.
                outcome: Outcome::Reject,
                status: None,
                error: Some(format!("event {}: {e}", event.offset)),
            })?;
            out.extend_from_slice(&frame(&message(&self.header, event, &record)));
        }
        Ok(out)
    }

    /// Resolves the host, drops forbidden addresses (unless allowed), connects to the first
    /// address that answers and, with TLS, shakes hands.
    async fn connect(&self) -> Result<Stream, AttemptReport> {
        let addrs: Vec<SocketAddr> = match self.cfg.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.cfg.port)],
            Err(_) => tokio::net::lookup_host((self.cfg.host.as_str(), self.cfg.port))
                .await
                .map_err(|e| retry(format!("`{}` does not resolve: {e}", self.cfg.host)))?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| http::refusal(&self.env, a.ip()).is_none())
            .collect();
        if allowed.is_empty() {
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            return Err(AttemptReport {
                // Retrying cannot help until the operator changes the host or the policy.
                outcome: Outcome::Misconfigured,
                status: None,
                error: Some(format!(
                    "`{}` resolves only to forbidden addresses ({}); {}",
                    self.cfg.host,
                    list.join(", "),
                    http::POLICY
                )),
            });
        }
        let mut last = None;
        for addr in allowed {
            match tokio::time::timeout(CONNECT_TIMEOUT, self.open(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = Some(format!("connect to {addr}: {e}")),
                Err(_) => last = Some(format!("connect to {addr}: timed out after {CONNECT_TIMEOUT:?}")),
            }
        }
        Err(retry(last.unwrap_or_else(|| "no address to connect to".to_owned())))
    }

    async fn open(&self, addr: SocketAddr) -> io::Result<Stream> {
        let tcp = TcpStream::connect(addr).await?;
        // Messages are written in batches and flushed; Nagle would only add latency.
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
            None => Box::new(tcp),
        };
        Ok(BufWriter::with_capacity(WRITE_BUFFER, io))
    }
}

#[async_trait]
impl Sink for SyslogSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        let bytes = match self.frames(batch, &self.cfg.options) {
            Ok(bytes) => bytes,
            Err(report) => return report,
        };
        let mut guard = self.conn.lock().await;
        // Taken out, and put back only after a successful flush: if this future is dropped (the
        // engine's timeout) or a write fails halfway, the half-written connection is closed
        // instead of carrying a torn frame into the next batch.
        let kept = match guard.take() {
            Some(mut s) => is_alive(&mut s).await.then_some(s),
            None => None,
        };
        let mut stream = match kept {
            Some(s) => s,
            // Never connected, or the receiver closed it (restart, idle timeout): reconnect now
            // rather than spending an attempt on a connection known to be dead.
            None => match self.connect().await {
                Ok(s) => s,
                Err(report) => return report,
            },
        };
        let sent = async {
            stream.write_all(&bytes).await?;
            stream.flush().await
        }
        .await;
        match sent {
            Ok(()) => {
                *guard = Some(stream);
                AttemptReport::delivered(None)
            }
            Err(e) => retry(format!("write to {}:{} failed: {e}", self.cfg.host, self.cfg.port)),
        }
    }
}

/// Whether a kept connection still stands. A syslog receiver never sends application data, so a
/// read that completes at once means end-of-stream or an error: the peer has gone. A read that
/// would block means the connection is (as far as we can know) alive. TLS records the receiver
/// sends on its own (session tickets) are consumed inside rustls and yield no bytes here.
async fn is_alive(stream: &mut Stream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        // `timeout` polls the read once before looking at the (already expired) deadline.
        match tokio::time::timeout(Duration::ZERO, stream.get_mut().read(&mut buf)).await {
            Err(_) => return true,
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            // Unexpected bytes from the receiver: ignore them and look again.
            Ok(Ok(_)) => continue,
        }
    }
}

fn retry(error: String) -> AttemptReport {
    AttemptReport {
        outcome: Outcome::Retry { after: None },
        status: None,
        error: Some(error),
    }
}

/// The CA certificates in a PEM file, as a trust store.
pub(crate) fn load_ca(path: &Path) -> Result<RootCertStore, ConfigError> {
    let field = "config.ca_file";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::new(field, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(field, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            field,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(ConfigError::new(
            field,
            format!(
                "none of the {ignored} certificates in {} could be parsed",
                path.display()
            ),
        ));
    }
    Ok(roots)
}

/// The local host name for the HOSTNAME field (RFC 5424 prefers the FQDN or name); `-` when it
/// cannot be read or is not valid there.
fn local_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name = name.trim();
    if is_header_token(name, MAX_HOSTNAME) {
        name.to_owned()
    } else {
        "-".to_owned()
    }
}
