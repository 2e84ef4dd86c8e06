//! Delivering one batch with one `_bulk` request.

use std::fmt;

use async_trait::async_trait;
use auditrelay_format::Format;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Response, Url};
use serde_json::Value;

use super::config::{parse, ElasticSettings};
use super::request::{bulk_body, BulkBody};
use super::response::classify_answer;
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

pub const CONTENT_TYPE_NDJSON: &str = "application/x-ndjson";

/// The most of a 2xx `_bulk` answer read (about 200 bytes per item, more with errors): far
/// past any batch the engine builds; a longer answer is treated as unreadable.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A request ready to send, as built for one batch (exposed for snapshot tests).
#[derive(Debug, Clone)]
pub struct BulkRequest {
    pub url: Url,
    /// Every header but those reqwest adds itself (`content-length`, `user-agent`, …).
    /// `authorization` is marked sensitive.
    pub headers: HeaderMap,
    pub bulk: BulkBody,
}

/// A ready-to-send elastic sink. Debug shows no credential.
pub struct ElasticSink {
    config: ElasticSettings,
    format: Format,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for ElasticSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticSink")
            .field("host", &self.config.bulk_url.host_str())
            .field("index", &self.config.index.source())
            .field("action", &self.config.action.name())
            .field("format", &self.format.name())
            .finish_non_exhaustive()
    }
}

impl ElasticSink {
    /// Builds the sink; no network (see [`super::validate`] for the save-time checks).
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        if !matches!(format, Format::Json | Format::Ocsf | Format::Raw) {
            return Err(ConfigError::new(
                "format",
                format!(
                    "`elastic` sinks send JSON documents: `json`, `ocsf` or `raw`, not `{}`",
                    format.name()
                ),
            ));
        }
        let config = parse(config, secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(ElasticSink {
            config,
            format,
            client,
            env: env.clone(),
        })
    }

    /// The request for `batch` (pure). `Err` is a format failure common to every event.
    pub fn request(&self, batch: &Batch<'_>) -> Result<BulkRequest, String> {
        let c = &self.config;
        let bulk = bulk_body(batch.events, &c.index, c.action, self.format, &c.options)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_NDJSON));
        headers.insert(AUTHORIZATION, c.auth.0.clone());
        Ok(BulkRequest {
            url: c.bulk_url.clone(),
            headers,
            bulk,
        })
    }
}

/// Reads up to `limit` bytes; `None` past it or on a read error.
async fn read_body(response: &mut Response, limit: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if buf.len() + chunk.len() <= limit => buf.extend_from_slice(&chunk),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => return Some(buf),
        }
    }
}

/// Applies a whole-request verdict (no 2xx) to the events that were sent, keeping the events
/// refused before sending as rejected.
fn whole_request(report: AttemptReport, sent: &[usize], refused: Vec<(usize, String)>) -> AttemptReport {
    if refused.is_empty() {
        return report;
    }
    let error = report.error.clone().unwrap_or_default();
    let outcome = match report.outcome {
        Outcome::Retry { after } => Outcome::Partial {
            retry: sent.to_vec(),
            after,
            rejected: refused,
        },
        Outcome::Reject => {
            let mut rejected = refused;
            rejected.extend(sent.iter().map(|&i| (i, error.clone())));
            rejected.sort_by_key(|(i, _)| *i);
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected,
            }
        }
        // Misconfigured keeps the whole batch for later; the refused events are refused again.
        other => other,
    };
    AttemptReport { outcome, ..report }
}

#[async_trait]
impl Sink for ElasticSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        let n = batch.events.len();
        // `_bulk` refuses an empty body with a 400.
        if n == 0 {
            return AttemptReport::delivered(None);
        }
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.config.bulk_url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, message);
        }
        let request = match self.request(batch) {
            Ok(r) => r,
            Err(message) => return AttemptReport::failed(Outcome::Misconfigured, message),
        };
        let BulkBody { body, items, refused } = request.bulk;
        if items.is_empty() {
            // Every event refused before sending.
            let report = classify_answer(br#"{"errors":false}"#, 0, &[], refused, n, None);
            return AttemptReport { status: None, ..report };
        }
        let sent = self
            .client
            .post(request.url)
            .headers(request.headers)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return whole_request(http::transport_error(&e), &items, refused),
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return whole_request(http::report_response(response).await, &items, refused);
        }
        let after = http::retry_after(response.headers());
        let Some(answer) = read_body(&mut response, MAX_ANSWER_BYTES).await else {
            return failure_with_status(
                Outcome::Retry { after: None },
                status,
                format!(
                    "HTTP {status} but the answer could not be read whole (cut off, or over {MAX_ANSWER_BYTES} bytes)"
                ),
            );
        };
        classify_answer(&answer, status, &items, refused, n, after)
    }
}

fn failure_with_status(outcome: Outcome, status: u16, error: String) -> AttemptReport {
    AttemptReport {
        outcome,
        status: Some(status),
        error: Some(error),
    }
}
