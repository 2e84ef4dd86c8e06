//! Delivering one batch: one request (batched mode) or one request per event, in order.

use std::fmt;

use async_trait::async_trait;
use auditrelay_format::Format;
use serde_json::Value;

use super::config::{parse, GenericConfig};
use super::request::{batch_request, event_request, HttpRequest};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// A ready-to-send generic_https sink. Debug shows the auth header's name, never its value.
pub struct GenericHttpsSink {
    config: GenericConfig,
    format: Format,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for GenericHttpsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericHttpsSink")
            .field("host", &self.config.url.host_str())
            .field("per_event", &self.config.per_event)
            .field("format", &self.format.name())
            .field("auth", &self.config.auth)
            .finish_non_exhaustive()
    }
}

impl GenericHttpsSink {
    /// Builds the sink; no network (see [`super::validate`] for the save-time checks).
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        if format == Format::Raw {
            return Err(ConfigError::new(
                "format",
                "`generic_https` sinks send `json`, `cef`, `leef` or `ocsf`, not `raw`",
            ));
        }
        let config = parse(config, secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(GenericHttpsSink {
            config,
            format,
            client,
            env: env.clone(),
        })
    }

    pub fn per_event(&self) -> bool {
        self.config.per_event
    }

    /// The batched-mode request for `batch` (pure). `Err` is a format failure.
    pub fn batch_request(&self, batch: &Batch<'_>) -> Result<HttpRequest, String> {
        batch_request(&self.config, self.format, batch.tenant_id, batch.batch_id, batch.events)
    }

    /// The per-event-mode request for `batch.events[i]` (pure). `Err` is a format failure.
    pub fn event_request(&self, batch: &Batch<'_>, i: usize) -> Result<HttpRequest, String> {
        let event = batch
            .events
            .get(i)
            .ok_or_else(|| format!("no event #{i} in a batch of {}", batch.events.len()))?;
        event_request(&self.config, self.format, event)
    }

    async fn send(&self, request: HttpRequest) -> AttemptReport {
        let builder = self
            .client
            .post(request.url)
            .headers(request.headers)
            .body(request.body);
        http::send(builder).await
    }

    async fn deliver_batched(&self, batch: &Batch<'_>) -> AttemptReport {
        match self.batch_request(batch) {
            Ok(request) => self.send(request).await,
            Err(message) => failure(Outcome::Misconfigured, None, message),
        }
    }

    /// One request per event, in order. A refused event (3xx, 4xx other than 401/403/404/410) is
    /// dead-lettered and the next one is sent: stopping there would leave later events to the
    /// next attempts, and a run of bad events could use up the attempt limit before the good
    /// ones were even tried. A transient failure or a sink-level refusal stops the attempt: the
    /// events from there on go again (as `Partial`), so events already accepted are not sent
    /// twice; if it was the first event, it is a plain `Retry` or `Misconfigured`.
    async fn deliver_per_event(&self, batch: &Batch<'_>) -> AttemptReport {
        let n = batch.events.len();
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut last_status = None;
        for (i, event) in batch.events.iter().enumerate() {
            let report = match self.event_request(batch, i) {
                Ok(request) => self.send(request).await,
                Err(message) => failure(Outcome::Misconfigured, None, message),
            };
            last_status = report.status;
            let error = format!(
                "event {} of {n} ({}): {}",
                i + 1,
                event.id,
                report.error.as_deref().unwrap_or("failed")
            );
            let after = match report.outcome {
                Outcome::Delivered => continue,
                Outcome::Reject => {
                    rejected.push((i, error));
                    continue;
                }
                Outcome::Retry { after } => after,
                // `http::send` gives neither; taken as transient if it ever did.
                Outcome::Partial { after, .. } => after,
                Outcome::Misconfigured => None,
            };
            if i == 0 {
                return AttemptReport {
                    error: Some(error),
                    ..report
                };
            }
            let delivered = i - rejected.len();
            return AttemptReport {
                outcome: Outcome::Partial {
                    retry: (i..n).collect(),
                    after,
                    rejected,
                },
                status: report.status,
                error: Some(format!("{delivered} of {n} events delivered, then {error}")),
            };
        }
        if rejected.is_empty() {
            return AttemptReport::delivered(last_status);
        }
        let error = format!("{} of {n} events refused; first: {}", rejected.len(), rejected[0].1);
        let outcome = if n == 1 {
            Outcome::Reject
        } else {
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected,
            }
        };
        failure(outcome, last_status, error)
    }
}

#[async_trait]
impl Sink for GenericHttpsSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.config.url, &self.env) {
            return failure(Outcome::Misconfigured, None, message);
        }
        if self.config.per_event {
            self.deliver_per_event(batch).await
        } else {
            self.deliver_batched(batch).await
        }
    }
}

fn failure(outcome: Outcome, status: Option<u16>, error: String) -> AttemptReport {
    AttemptReport {
        outcome,
        status,
        error: Some(error),
    }
}
