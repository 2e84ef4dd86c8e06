//! Where the server is, how to authenticate, and how its JSON errors read.

use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

/// How to reach the server. Shared by every client subcommand (`#[command(flatten)]`).
#[derive(clap::Args, Clone)]
pub struct ConnectionArgs {
    /// Base URL of the auditrelay server (a path prefix, if any, is kept).
    #[arg(long, env = "AUDITRELAY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Operator token or tenant key, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "AUDITRELAY_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Tenant to act in; needed with the operator token (sent as `?tenant=`).
    #[arg(long)]
    pub tenant: Option<String>,
}

/// Written by hand rather than derived so that the token never ends up in a log line or a
/// panic message through `{:?}`.
impl fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// The connection settings cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("invalid --url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the token is empty: set --token or AUDITRELAY_TOKEN")]
    EmptyToken,
}

impl ConnectionArgs {
    /// The token to send, without surrounding whitespace (a token read from a file with
    /// `$(cat …)` or pasted into an env file often carries some; no valid token contains any).
    pub fn bearer(&self) -> Result<&str, ConnectionError> {
        let token = self.token.trim();
        if token.is_empty() {
            Err(ConnectionError::EmptyToken)
        } else {
            Ok(token)
        }
    }

    /// `{url}{path}`, with `?tenant=` when a tenant was named. `path` is appended to the base
    /// URL's own path (rather than resolved against it, as `Url::join` would) so that a server
    /// published under a prefix such as `https://host/auditrelay` works.
    pub fn endpoint(&self, path: &str) -> Result<Url, ConnectionError> {
        let invalid = |reason: String| ConnectionError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let mut url = Url::parse(self.url.trim()).map_err(|e| invalid(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("the scheme must be http or https".into()));
        }
        if url.cannot_be_a_base() {
            return Err(invalid("not a base URL".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment".into()));
        }
        let joined = format!("{}/{}", url.path().trim_end_matches('/'), path.trim_start_matches('/'));
        url.set_path(&joined);
        if let Some(tenant) = &self.tenant {
            url.query_pairs_mut().append_pair("tenant", tenant);
        }
        Ok(url)
    }

    /// Checks the URL and token up front, so that a typo fails before any input is read.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        self.bearer()?;
        self.endpoint("/")?;
        Ok(())
    }
}

/// The HTTP client every subcommand uses. `no_proxy()`: the server is usually on the same host
/// or network, and an inherited `HTTP_PROXY` silently routing audit events (and the bearer
/// token) through a proxy would be a surprise. `timeout` bounds a whole request, including a
/// long-poll, so callers pass what their slowest legitimate answer needs.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        // Below the server's idle-connection cut-off (its 10 s header-read timeout), so a pooled
        // connection is never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .user_agent(concat!("auditrelay-client/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A non-success answer from the server: its `{"error": {"code", "message", "detail"}}` body, or
/// (from a proxy or a server too broken to answer JSON) the start of whatever body came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ApiError {
    /// Reads the body of an error answer. Never fails: an unreadable body still yields the status.
    pub async fn from_response(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        Self::from_body(status, &body)
    }

    /// Interprets an error body (see [`ApiError::from_response`]).
    pub fn from_body(status: StatusCode, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            #[serde(default)]
            code: Option<String>,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            detail: Option<Value>,
        }
        let fallback_code = status
            .canonical_reason()
            .map(|r| r.to_ascii_lowercase().replace(' ', "_"))
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            return ApiError {
                status: status.as_u16(),
                code: env.error.code.unwrap_or(fallback_code),
                message: env.error.message.unwrap_or_default(),
                // `null` and `{}` say nothing; leave them out of the message.
                detail: env
                    .error
                    .detail
                    .filter(|d| !d.is_null() && d.as_object().is_none_or(|o| !o.is_empty())),
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        const MAX: usize = 300;
        let message = match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        };
        ApiError {
            status: status.as_u16(),
            code: fallback_code,
            message,
            detail: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// An error and its sources on one line: reqwest's own message ("error sending request for
/// url …") leaves the useful part ("connection refused") to its source chain.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// A transport error on one line, without the URL (the caller's message says which request it
/// was, and a repeated URL with its query string buries the reason).
pub(crate) fn transport_error(err: reqwest::Error) -> String {
    error_chain(&err.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str, tenant: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            url: url.into(),
            token: " tok \n".into(),
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn endpoint_keeps_prefix_and_adds_tenant() {
        let c = conn("https://h.example/relay/", Some("acme co"));
        assert_eq!(
            c.endpoint("/v1/events").map(|u| u.to_string()).ok(),
            Some("https://h.example/relay/v1/events?tenant=acme+co".to_string())
        );
        let c = conn("http://127.0.0.1:8080", None);
        assert_eq!(
            c.endpoint("/v1/events").map(|u| u.to_string()).ok(),
            Some("http://127.0.0.1:8080/v1/events".to_string())
        );
        assert_eq!(c.bearer().ok(), Some("tok"));
    }

    #[test]
    fn bad_urls_and_tokens_are_rejected() {
        assert!(conn("ftp://x", None).validate().is_err());
        assert!(conn("not a url", None).validate().is_err());
        assert!(conn("http://x/?a=b", None).validate().is_err());
        let mut c = conn("http://x", None);
        c.token = "  ".into();
        assert!(matches!(c.validate(), Err(ConnectionError::EmptyToken)));
    }

    #[test]
    fn debug_redacts_token() {
        let text = format!("{:?}", conn("http://x", None));
        assert!(!text.contains("tok\""), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn api_error_parses_envelope_and_falls_back() {
        let e = ApiError::from_body(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":"invalid_event","message":"bad type","detail":{"index":3,"field":"type"}}}"#,
        );
        assert_eq!(e.code, "invalid_event");
        assert_eq!(
            e.to_string(),
            r#"HTTP 400 invalid_event: bad type (detail: {"index":3,"field":"type"})"#
        );
        let e = ApiError::from_body(StatusCode::BAD_GATEWAY, b"<html>upstream down</html>");
        assert_eq!(e.code, "bad_gateway");
        assert_eq!(e.message, "<html>upstream down</html>");
    }
}
