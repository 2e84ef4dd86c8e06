//! A minimal HTTP/1.1 keep-alive client on raw hyper connections.
//!
//! Each [`Conn`] is exactly one TCP connection, used for one request at a
//! time, so "64 connections" really means 64 sockets and the client does no
//! pooling, retries or redirects behind our back.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server is: `http://host:port` plus an optional path prefix.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    authority: HeaderValue,
    prefix: String,
    base: String,
}

impl Target {
    pub fn parse(base: &str) -> Result<Self> {
        let uri: Uri = base.parse().with_context(|| format!("invalid --url {base:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("--url scheme {other:?} is not supported (plain http only)"),
            None => bail!("--url {base:?} needs a scheme, e.g. http://127.0.0.1:8080"),
        }
        let authority = uri.authority().with_context(|| format!("--url {base:?} has no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let port = authority.port_u16().unwrap_or(80);
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            host,
            port,
            authority: HeaderValue::from_str(authority.as_str())?,
            prefix,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// The base URL as given (without a trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn path(&self, path_and_query: &str) -> String {
        format!("{}{}", self.prefix, path_and_query)
    }
}

/// A bearer token, pre-encoded as a header value.
#[derive(Clone)]
pub struct Auth(HeaderValue);

impl Auth {
    pub fn bearer(token: &str) -> Result<Self> {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).context("token is not a valid header value")?;
        v.set_sensitive(true);
        Ok(Self(v))
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(…)")
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
}

/// A fully received response.
pub struct Resp {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Resp {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("unexpected body for status {}: {}", self.status, self.body_snippet()))
    }

    pub fn body_snippet(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let mut out: String = s.chars().take(300).collect();
        if s.chars().count() > 300 {
            out.push('…');
        }
        out
    }
}

pub const JSON: &str = "application/json";

impl Conn {
    pub async fn connect(target: Arc<Target>) -> Result<Self> {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("connect to {}:{}", target.host, target.port))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the peer
            // closes; errors surface on the next request.
            let _ = conn.await;
        });
        Ok(Self { sender, target })
    }

    /// Whether the connection can take another request.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Send one request and read the whole response body.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        auth: Option<&Auth>,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Resp> {
        self.sender.ready().await.context("connection not ready")?;
        let mut req = Request::builder()
            .method(method)
            .uri(self.target.path(path_and_query))
            .header(HOST, self.target.authority.clone());
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth.0.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).context("build request")?;
        let resp = self.sender.send_request(req).await.context("send request")?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("read response body")?
            .to_bytes();
        Ok(Resp { status, body })
    }

    /// A GET, sent again once on a fresh connection if it fails: a keep-alive connection left
    /// idle past the server's header-read timeout can be closed just as the request goes out
    /// (seen after a 10 s scenario), and a GET is safe to repeat.
    pub async fn get(&mut self, path_and_query: &str, auth: Option<&Auth>) -> Result<Resp> {
        match self.send(Method::GET, path_and_query, auth, None).await {
            Ok(resp) => Ok(resp),
            Err(_) => {
                *self = Conn::connect(self.target.clone()).await?;
                self.send(Method::GET, path_and_query, auth, None).await
            }
        }
    }

    pub async fn post_json(&mut self, path: &str, auth: &Auth, body: Bytes) -> Result<Resp> {
        self.send(Method::POST, path, Some(auth), Some((JSON, body))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() -> Result<()> {
        let t = Target::parse("http://127.0.0.1:8080/")?;
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.path("/v1/events"), "/v1/events");
        assert_eq!(t.base(), "http://127.0.0.1:8080");

        let t = Target::parse("http://example.test/relay")?;
        assert_eq!(t.port, 80);
        assert_eq!(t.path("/healthz"), "/relay/healthz");

        let t = Target::parse("http://[::1]:9000")?;
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));

        assert!(Target::parse("https://example.test").is_err());
        assert!(Target::parse("127.0.0.1:8080").is_err());
        Ok(())
    }
}
