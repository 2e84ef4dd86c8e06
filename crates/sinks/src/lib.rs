//! Delivery targets. A sink turns one batch of events into bytes on the wire, makes ONE attempt,
//! and classifies what happened ([`Outcome`]). It never retries, never sleeps, never touches the
//! store: the engine owns retries, backoff, the breaker, dead letters and cursors (invariant *sinks classify, the engine decides*,
//! after Vector's RetryLogic/Driver split).
//!
//! Adding a kind: a folder beside `webhook/` whose config struct implements
//! [`kinds::KindConfig`], plus one variant in [`kinds::SinkConfig`] (the `sink_kinds!` list).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use auditrelay_core::StoredEvent;

pub mod aws;
pub mod cloudwatch_logs;
pub mod datadog;
pub mod elastic;
pub mod eventbridge;
pub mod firehose;
pub mod generic_https;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kinds;
pub mod kinesis;
pub mod otlp;
pub mod pubsub;
pub mod registry;
pub mod s3;
mod secret_header;
pub mod security_lake;
pub mod sentinel;
pub mod splunk_hec;
pub mod syslog;
mod template;
#[cfg(test)]
mod test_support;
mod token_lifetime;
pub mod typed;
pub mod webhook;

pub use kinds::{
    config_schema, default_batch, sink_kinds, KindBatch, KindConfig, KindSpec, SecretSpec, SinkConfig, SinkKindInfo,
};
pub use registry::{build, kind_spec, validate_config, SinkEnv};

/// Secret name → value, decrypted. Only the engine and the sink that uses them hold this.
pub type Secrets = BTreeMap<String, String>;

/// One batch of one tenant's events, in offset order.
pub struct Batch<'a> {
    pub sink_id: &'a str,
    pub tenant_id: &'a str,
    /// Stable across every attempt at this batch (the webhook id, the idempotency key), so a
    /// receiver can drop a duplicate delivery.
    pub batch_id: &'a str,
    pub events: &'a [StoredEvent],
}

/// What the engine should do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted the batch: commit the cursor past it.
    Delivered,
    /// Transient (network error, timeout, 408, 429, 5xx): try again, no sooner than `after`
    /// when the receiver said so (`Retry-After`).
    Retry { after: Option<Duration> },
    /// The receiver refused this batch for good (3xx, other 4xx): dead-letter it.
    Reject,
    /// The sink itself is misconfigured or gone (401, 403, 404, 410): pause the sink, keep the
    /// batch where it is.
    Misconfigured,
    /// Part of the batch was accepted (Elastic `_bulk` answering 200 with `"errors": true`).
    /// Indices are into `Batch::events`; every event not listed was accepted. `retry` events
    /// go again (no sooner than `after`); `rejected` ones are dead-lettered with their reason.
    Partial {
        retry: Vec<usize>,
        after: Option<Duration>,
        rejected: Vec<(usize, String)>,
    },
}

/// The report of one attempt: the outcome plus what to show an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub outcome: Outcome,
    /// The receiver's status (HTTP status code), when it answered.
    pub status: Option<u16>,
    /// Human-readable cause for anything but `Delivered` (e.g. `HTTP 503: <body snippet>`,
    /// `connection refused`). Never contains a secret.
    pub error: Option<String>,
}

impl AttemptReport {
    pub fn delivered(status: Option<u16>) -> Self {
        AttemptReport {
            outcome: Outcome::Delivered,
            status,
            error: None,
        }
    }

    /// An attempt that ended before any receiver answered (a refused address, a transport
    /// failure, an invalid batch): no status, only the cause.
    pub fn failed(outcome: Outcome, error: impl Into<String>) -> Self {
        AttemptReport {
            outcome,
            status: None,
            error: Some(error.into()),
        }
    }
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// Makes one attempt at delivering `batch`. The engine bounds it with the sink's
    /// `timeout_ms` and drops the future on timeout.
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport;
}

/// A sink definition that cannot work, with the path of the offending field
/// (e.g. `config.url`, `secrets.signing_secret`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}
