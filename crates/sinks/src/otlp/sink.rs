//! Delivering one batch: one OTLP/HTTP export request, classified by OTLP's own retry rules.

use async_trait::async_trait;
use auditrelay_format::Format;
use auditrelay_otlp::wire;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::Value;

use super::config::{parse, OtlpSettings};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// How much of a success answer is read for `partial_success` (OTLP answers are tiny).
const ANSWER_LIMIT: usize = 64 * 1024;

/// A ready-to-send otlp sink.
#[derive(Debug)]
pub struct OtlpSink {
    settings: OtlpSettings,
    client: reqwest::Client,
    env: SinkEnv,
}

/// OTLP/HTTP's retry rules (OTLP specification, "Failures"): 429, 502, 503 and 504 are
/// retryable, honouring `Retry-After`; 401/403/404/410 mean the sink itself is wrong (pause);
/// every other 4xx and 5xx refuses the batch for good ("MUST NOT retry").
pub fn classify_otlp(status: u16, headers: &HeaderMap) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 | 502 | 503 | 504 => Outcome::Retry {
            after: http::retry_after(headers),
        },
        401 | 403 | 404 | 410 => Outcome::Misconfigured,
        _ => Outcome::Reject,
    }
}

impl OtlpSink {
    /// Builds the sink; no network (see [`super::validate`] for the save-time checks).
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        if format != Format::Otlp {
            return Err(ConfigError::new("format", "`otlp` sinks send the `otlp` format only"));
        }
        let settings = parse(config, secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(OtlpSink {
            settings,
            client,
            env: env.clone(),
        })
    }

    /// The request body for `batch` (pure): the events grouped by resource and scope, encoded
    /// per `protocol`, gzipped unless `compression` is `none`.
    pub fn body(&self, batch: &Batch<'_>) -> Result<Vec<u8>, String> {
        let request = auditrelay_otlp::from_event::to_request(batch.events);
        let encoded = wire::encode_request(&request, self.settings.protocol.encoding()).map_err(|e| e.to_string())?;
        Ok(if self.settings.gzip {
            wire::gzip(&encoded)
        } else {
            encoded
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = self.settings.headers.clone();
        let encoding = self.settings.protocol.encoding();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()));
        if self.settings.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        headers
    }
}

#[async_trait]
impl Sink for OtlpSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.settings.url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, message);
        }
        let body = match self.body(batch) {
            Ok(body) => body,
            Err(message) => return AttemptReport::failed(Outcome::Misconfigured, message),
        };
        let request = self
            .client
            .post(self.settings.url.clone())
            .headers(self.headers())
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return http::transport_error(&err),
        };
        let status = response.status().as_u16();
        let outcome = classify_otlp(status, response.headers());
        if outcome != Outcome::Delivered {
            let mut report = http::report_response(response).await;
            report.outcome = outcome;
            return report;
        }
        let (answer, _) = http::read_prefix(&mut response, ANSWER_LIMIT).await;
        let encoding = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(auditrelay_otlp::Encoding::from_media_type)
            .unwrap_or(self.settings.protocol.encoding());
        let mut report = AttemptReport::delivered(Some(status));
        // OTLP: a partial success must not be retried; the receiver has dropped those records
        // for good. The engine records the note on the delivery log and in health.
        if let Some(partial) = wire::decode_response(&answer, encoding) {
            if partial.rejected_log_records > 0 || !partial.error_message.is_empty() {
                report.error = Some(format!(
                    "partial_success: the receiver rejected {} of {} log records: {}",
                    partial.rejected_log_records,
                    batch.events.len(),
                    partial
                        .error_message
                        .chars()
                        .take(http::ERROR_SNIPPET_BYTES)
                        .collect::<String>()
                ));
            }
        }
        report
    }
}
