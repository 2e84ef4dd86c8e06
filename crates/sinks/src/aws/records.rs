//! The record APIs (Kinesis `PutRecords`, Firehose `PutRecordBatch`, EventBridge `PutEvents`):
//! a batch goes out as calls within the service's limits, in offset order, and only the records
//! that failed are retried.
//!
//! Order. Each call answers per record; a record can fail while later ones in the same call
//! succeed (AWS does not order a `PutRecords` call's records either). A sink cannot take back a
//! record the service accepted, so resending from the first failure would duplicate every
//! accepted record after it without restoring the order. So:
//! - the records that failed go again, and nothing else (`Outcome::Partial { retry }`): no
//!   record is ever written twice by a retry;
//! - after a call in which any record failed, the batch's later calls are NOT sent: they join
//!   the retry, so records never overtake a failed one across calls, and the engine moves the
//!   tenant's cursor only once the whole batch is in (the lane sends the tenant's next batch
//!   after this one's verdict when `max_in_flight` is 1, the default);
//! - when a call's failures are a suffix of it — what throttling does: a shard or stream over
//!   its quota refuses the rest of the call — the order is exactly the log's. Only a failure
//!   followed by a success inside ONE call (an `InternalFailure` of one record) lets that record
//!   arrive after its successors, which the service, not the sink, decided.
//!
//! Per-record codes that say the record itself is bad (`MalformedDetail`) become dead letters
//! with that reason; every other failure is retried, bounded by the engine's attempt limit.
//!
//! A record kind is its call ([`RecordApi`]) and its parsed `config` ([`RecordKind`]); its
//! save-time validation and its sink are the same for every such kind ([`validate`], [`build`]).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};
use serde_json::Value;

use super::classify::record_retryable;
use super::json::{CallError, JsonClient};
use super::AwsSettings;
use crate::{AttemptReport, Batch, ConfigError, KindConfig, Outcome, Secrets, Sink, SinkEnv};

/// A service's limits on one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_records: usize,
    /// The call's size as the service counts it.
    pub max_bytes: usize,
    /// One record's size as the service counts it.
    pub max_record_bytes: usize,
}

/// One service's record API.
pub(crate) trait RecordApi: Send + Sync + 'static {
    /// `X-Amz-Target` of the call.
    const TARGET: &'static str;
    /// The member of the answer that lists a result per record, in request order.
    const RESULTS: &'static str;
    const LIMITS: Limits;
    /// One event (and its encoded record) as the call's entry, and its size as the service
    /// counts it.
    fn entry(&self, tenant: &str, event: &StoredEvent, record: Vec<u8>) -> Result<(Value, usize), String>;
    /// The call's JSON body for `entries`.
    fn body(&self, entries: Vec<Value>) -> Value;
}

/// A record kind's `config`: what its sink is made of once parsed and checked.
pub(crate) trait RecordKind: KindConfig {
    /// The call the kind makes.
    type Api: RecordApi;
    /// Parses and checks `config` (no network, no secrets) into the sink's parts.
    fn sink_parts(config: &Value) -> Result<RecordSinkParts<Self::Api>, ConfigError>;
}

/// A [`RecordSink`] but for its signed client.
pub(crate) struct RecordSinkParts<A> {
    pub api: A,
    /// What the records go into, for error texts (`Kinesis stream audit`).
    pub what: String,
    pub aws: AwsSettings,
    pub options: FormatOptions,
}

/// Save-time validation of a record kind: the endpoints against the SSRF policy, and the
/// credentials.
pub(crate) async fn validate<K: RecordKind>(
    config: &Value,
    secrets: &Secrets,
    env: &SinkEnv,
) -> Result<Secrets, ConfigError> {
    super::validate(&K::sink_parts(config)?.aws, secrets, env).await
}

/// A record kind's ready-to-send sink, from a validated definition. The kind names its STS
/// sessions (`auditrelay-kinesis`).
pub(crate) fn build<K: RecordKind>(
    config: &Value,
    secrets: &Secrets,
    format: Format,
    env: &SinkEnv,
) -> Result<Arc<dyn Sink>, ConfigError> {
    let parts = K::sink_parts(config)?;
    let client = super::build_client(parts.aws, secrets, env, K::SPEC.kind)?;
    Ok(Arc::new(RecordSink {
        api: parts.api,
        client,
        format,
        options: parts.options,
        what: parts.what,
    }))
}

/// A record kind's module-level `validate` and `build` (what `kinds.rs` dispatches to), for
/// its `config` type `$config` implementing [`RecordKind`].
macro_rules! record_kind_entry_points {
    ($config:ty) => {
        /// Save-time validation: the endpoints against the SSRF policy, and the credentials.
        pub async fn validate(
            config: &serde_json::Value,
            secrets: &mut crate::Secrets,
            env: &crate::SinkEnv,
        ) -> Result<crate::Secrets, crate::ConfigError> {
            crate::aws::records::validate::<$config>(config, secrets, env).await
        }

        /// Builds a ready-to-send sink from a validated definition.
        pub fn build(
            config: &serde_json::Value,
            secrets: &crate::Secrets,
            format: auditrelay_format::Format,
            env: &crate::SinkEnv,
        ) -> Result<std::sync::Arc<dyn crate::Sink>, crate::ConfigError> {
            crate::aws::records::build::<$config>(config, secrets, format, env)
        }
    };
}
pub(crate) use record_kind_entry_points;

/// Splits records of `sizes` into contiguous calls within `limits`.
pub(crate) fn chunks(sizes: &[usize], limits: Limits) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start >= limits.max_records || bytes + size > limits.max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// A sink over a [`RecordApi`].
pub(crate) struct RecordSink<A: RecordApi> {
    pub api: A,
    pub client: JsonClient,
    pub format: Format,
    pub options: FormatOptions,
    /// Kinesis and Firehose: what the batch's records go into, for error texts.
    pub what: String,
}

/// What one call's answer said about one record.
enum RecordResult {
    Accepted,
    Failed { code: String, message: String },
}

fn results(answer: &Value, member: &str, expected: usize) -> Option<Vec<RecordResult>> {
    let list = answer.get(member)?.as_array()?;
    if list.len() != expected {
        return None;
    }
    Some(
        list.iter()
            .map(|r| match r.get("ErrorCode").and_then(Value::as_str) {
                Some(code) if !code.is_empty() => RecordResult::Failed {
                    code: code.to_owned(),
                    message: r
                        .get("ErrorMessage")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                },
                _ => RecordResult::Accepted,
            })
            .collect(),
    )
}

#[async_trait]
impl<A: RecordApi> Sink for RecordSink<A> {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // Entries in offset order; an event that cannot become a record is a dead letter now.
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut entries: Vec<(usize, Value)> = Vec::with_capacity(batch.events.len());
        let mut sizes = Vec::with_capacity(batch.events.len());
        for (i, event) in batch.events.iter().enumerate() {
            let made = encode(self.format, event, &self.options)
                .map_err(|e| format!("cannot encode event {} as `{}`: {e}", event.offset, self.format.name()))
                .and_then(|record| self.api.entry(batch.tenant_id, event, record));
            match made {
                Ok((entry, size)) if size <= A::LIMITS.max_record_bytes => {
                    entries.push((i, entry));
                    sizes.push(size);
                }
                Ok((_, size)) => rejected.push((
                    i,
                    format!(
                        "event {} is {size} bytes as a record, over the service's {} per record",
                        event.offset,
                        A::LIMITS.max_record_bytes
                    ),
                )),
                Err(why) => rejected.push((i, why)),
            }
        }
        let calls = chunks(&sizes, A::LIMITS);
        let mut retry: Vec<usize> = Vec::new();
        let mut after = None;
        let mut errors: Vec<String> = Vec::new();
        let mut status = None;
        let mut failed_calls = 0;
        for (n, range) in calls.iter().enumerate() {
            let indices: Vec<usize> = entries[range.clone()].iter().map(|(i, _)| *i).collect();
            let body = self
                .api
                .body(entries[range.clone()].iter().map(|(_, e)| e.clone()).collect());
            let bytes = match serde_json::to_vec(&body) {
                Ok(b) => b,
                Err(e) => {
                    return AttemptReport::failed(Outcome::Misconfigured, format!("cannot serialise the call: {e}"))
                }
            };
            let rest = || {
                calls[n..]
                    .iter()
                    .flat_map(|r| entries[r.clone()].iter().map(|(i, _)| *i))
            };
            match self.client.call(A::TARGET, bytes).await {
                Err(CallError { report, .. }) => {
                    status = report.status.or(status);
                    let why = report.error.clone().unwrap_or_else(|| "failed".to_owned());
                    match report.outcome.clone() {
                        // The service refused this call's records for good: dead letters; the
                        // rest of the batch still goes.
                        Outcome::Reject => {
                            rejected.extend(indices.iter().map(|&i| (i, why.clone())));
                            failed_calls += 1;
                        }
                        // Nothing taken yet: the whole attempt failed like this call did.
                        _ if n == 0 && rejected.is_empty() => return report,
                        Outcome::Retry { after: a } => {
                            after = a;
                            errors.push(why);
                            retry.extend(rest());
                            break;
                        }
                        // Credentials or the stream went wrong mid-batch: retry what is left;
                        // its first call then pauses the sink with the same answer.
                        _ => {
                            errors.push(why);
                            retry.extend(rest());
                            break;
                        }
                    }
                }
                Ok(answer) => {
                    status = Some(200);
                    let Some(per_record) = results(&answer, A::RESULTS, indices.len()) else {
                        errors.push(format!(
                            "the answer does not list {} results in `{}`",
                            indices.len(),
                            A::RESULTS
                        ));
                        retry.extend(rest());
                        break;
                    };
                    let mut any_retry = false;
                    for (&i, result) in indices.iter().zip(per_record) {
                        if let RecordResult::Failed { code, message } = result {
                            let why = format!("{code}: {message}");
                            if record_retryable(&code) {
                                any_retry = true;
                                retry.push(i);
                                if errors.len() < 3 {
                                    errors.push(why);
                                }
                            } else {
                                rejected.push((i, why));
                            }
                        }
                    }
                    if any_retry {
                        // Later calls are not sent: they wait behind the failed records.
                        retry.extend(
                            calls[n + 1..]
                                .iter()
                                .flat_map(|r| entries[r.clone()].iter().map(|(i, _)| *i)),
                        );
                        break;
                    }
                }
            }
        }
        if retry.is_empty() && rejected.is_empty() {
            return AttemptReport::delivered(status);
        }
        let total = batch.events.len();
        let mut error = format!(
            "{} of {total} records into {} to retry, {} refused",
            retry.len(),
            self.what,
            rejected.len()
        );
        if failed_calls > 0 {
            error.push_str(&format!(" ({failed_calls} calls refused)"));
        }
        if let Some(first) = errors.first().or(rejected.first().map(|(_, w)| w)) {
            error.push_str(": ");
            error.push_str(first);
        }
        rejected.sort_by_key(|(i, _)| *i);
        AttemptReport {
            outcome: Outcome::Partial { retry, after, rejected },
            status,
            error: Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_both_limits() {
        let limits = Limits {
            max_records: 3,
            max_bytes: 10,
            max_record_bytes: 10,
        };
        assert_eq!(chunks(&[1; 7], limits), vec![0..3, 3..6, 6..7]);
        assert_eq!(chunks(&[4, 4, 4, 10, 1], limits), vec![0..2, 2..3, 3..4, 4..5]);
        assert!(chunks(&[], limits).is_empty());
    }
}
