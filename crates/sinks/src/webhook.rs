//! The `webhook` sink: the batch as JSON, signed per Standard Webhooks.
// HELPER: replace this stub (see the task description).

use async_trait::async_trait;
use serde_json::Value;

use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

pub async fn validate(_config: &Value, _secrets: &mut Secrets, _env: &SinkEnv) -> Result<Secrets, ConfigError> {
    Ok(Secrets::new())
}

pub struct WebhookSink;

impl WebhookSink {
    pub fn new(_config: &Value, _secrets: &Secrets, _format: &str, _env: &SinkEnv) -> Result<Self, ConfigError> {
        Ok(WebhookSink)
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, _batch: &Batch<'_>) -> AttemptReport {
        AttemptReport {
            outcome: Outcome::Reject,
            status: None,
            error: Some("not implemented".into()),
        }
    }
}
