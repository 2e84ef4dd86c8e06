//! Delivering one batch to Datadog's logs intake (v2), in as many requests as its limits need.

use std::fmt;

use async_trait::async_trait;
use auditrelay_format::Format;
use jiff::Timestamp;
use serde_json::Value;

use super::config::{parse_api_key, parse_config, ApiKey, DatadogSettings};
use super::request::{chunks, request, Chunk, WireRequest};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// A ready-to-send Datadog sink. Debug output shows the intake host, never the API key.
pub struct DatadogSink {
    cfg: DatadogSettings,
    api_key: ApiKey,
    format: Format,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for DatadogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatadogSink")
            .field("host", &self.cfg.url.host_str())
            .field("format", &self.format.name())
            .field("service", &self.cfg.service)
            .finish_non_exhaustive()
    }
}

impl DatadogSink {
    /// Builds the sink. No network here: the save-time SSRF check ran in [`super::validate`];
    /// send-time checks run on every delivery.
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        let allowed = crate::kind_spec("datadog").map_or(&[][..], |k| k.formats);
        if !allowed.contains(&format.name()) {
            return Err(ConfigError::new(
                "format",
                format!("`datadog` sinks send {}, not `{}`", allowed.join(", "), format.name()),
            ));
        }
        let cfg = parse_config(config)?;
        let api_key = parse_api_key(secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(DatadogSink {
            cfg,
            api_key,
            format,
            client,
            env: env.clone(),
        })
    }

    fn post(&self, request: WireRequest) -> reqwest::RequestBuilder {
        let mut builder = self.client.post(request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        builder.body(request.body)
    }

    async fn send_chunk(&self, chunk: &Chunk) -> AttemptReport {
        match request(&self.cfg, &self.api_key, chunk) {
            // Datadog's answers need no reading beyond the status: 2xx delivered, 400 and 413
            // rejected, 401/403 misconfigured, 408/429/5xx retried: the shared classification.
            Ok(request) => http::send(self.post(request)).await,
            // Compressing into memory does not fail; if it ever did, trying again is harmless.
            Err(e) => AttemptReport {
                outcome: Outcome::Retry { after: None },
                status: None,
                error: Some(format!("could not gzip the request body: {e}")),
            },
        }
    }
}

#[async_trait]
impl Sink for DatadogSink {
    /// Sends the batch's requests one after the other and stops at the first that fails: the
    /// attempt is delivered only if every request was, and otherwise takes the failing answer's
    /// outcome. A retry then sends the whole batch again, requests that were accepted included
    /// (at-least-once).
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.cfg.url, &self.env) {
            return AttemptReport {
                outcome: Outcome::Misconfigured,
                status: None,
                error: Some(message),
            };
        }
        let chunks = match chunks(&self.cfg, self.format, batch.events, Timestamp::now()) {
            Ok(chunks) => chunks,
            // A batch the format cannot encode is kept, not dropped: the sink pauses with the
            // cause (a format not built in).
            Err(failed) => {
                return AttemptReport {
                    outcome: Outcome::Misconfigured,
                    status: None,
                    error: Some(format!(
                        "cannot encode event {} as `{}`: {}",
                        failed.offset,
                        self.format.name(),
                        failed.error
                    )),
                };
            }
        };
        let total = chunks.len();
        let mut last = AttemptReport::delivered(None);
        for (n, chunk) in chunks.iter().enumerate() {
            last = self.send_chunk(chunk).await;
            if last.outcome != Outcome::Delivered {
                if total > 1 {
                    let offset = |i: usize| batch.events.get(i).map_or(0, |e| e.offset);
                    last.error = Some(format!(
                        "request {} of {total} (offsets {}–{}): {}",
                        n + 1,
                        offset(chunk.events.start),
                        offset(chunk.events.end.saturating_sub(1)),
                        last.error.unwrap_or_default()
                    ));
                }
                return last;
            }
        }
        last
    }
}
