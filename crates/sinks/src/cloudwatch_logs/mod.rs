//! The `cloudwatch_logs` sink: each event becomes one log event (`PutLogEvents`) in a log
//! stream per tenant (`log_stream` template, default `{tenant}`) of one log group. A call holds
//! at most 10,000 events and 1 MiB (each event counted as its message's UTF-8 bytes + 26) and
//! spans at most 24 hours; its events go in chronological order (the event's `occurred_at`, else
//! `received_at`), as the service requires. A call is accepted or refused whole, except for
//! events the service rejects as too old, too new or past the group's retention
//! (`rejectedLogEventsInfo`): those become dead letters with that reason. With `create_missing`
//! the group and stream are created when the service says they do not exist.

use std::sync::Arc;

use async_trait::async_trait;
use auditrelay_core::StoredEvent;
use auditrelay_format::{encode, Format, FormatOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aws::json::{CallError, JsonClient};
use crate::aws::{self, aws_config, AwsSettings};
use crate::template::Template;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// The log stream template when none is configured.
pub const DEFAULT_LOG_STREAM: &str = "{tenant}";
/// Most events in one call.
pub const MAX_EVENTS: usize = 10_000;
/// Most bytes in one call, as the service counts them.
pub const MAX_BYTES: usize = 1_048_576;
/// The service's per-event overhead in that count.
pub const EVENT_OVERHEAD: usize = 26;
/// The largest message: 256 KiB less the overhead.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD;
/// The longest time span of one call.
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;

aws_config! {
    /// `config` of a `cloudwatch_logs` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "cloudwatch_logs config")]
    pub struct CloudWatchLogsConfig {
        /// The log group.
        #[schemars(length(min = 1, max = 512), pattern(r"^[._/#A-Za-z0-9-]+$"))]
        pub log_group: String,
        /// The log stream: text with a `{tenant}` placeholder (default `{tenant}`: one stream per
        /// tenant); no `:` or `*`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 512), pattern(r"^([^{}:*]|\{tenant\})+$"), extend("default" = DEFAULT_LOG_STREAM))]
        pub log_stream: Option<String>,
        /// Create the log group and stream when the service says they do not exist (needs
        /// `logs:CreateLogGroup` and `logs:CreateLogStream`). Default false: a missing group or
        /// stream pauses the sink.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub create_missing: Option<bool>,
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct CloudWatchSettings {
    pub log_group: String,
    pub log_stream: Template,
    pub create_missing: bool,
    pub aws: AwsSettings,
    pub options: FormatOptions,
}

impl CloudWatchLogsConfig {
    pub(crate) fn resolve(&self) -> Result<CloudWatchSettings, ConfigError> {
        let group = &self.log_group;
        if group.is_empty()
            || group.len() > 512
            || !group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b))
        {
            return Err(ConfigError::new(
                "config.log_group",
                "must be a log group name: 1-512 letters, digits, `.`, `-`, `_`, `/` and `#`",
            ));
        }
        let raw = self.log_stream.as_deref().unwrap_or(DEFAULT_LOG_STREAM);
        if raw.is_empty() || raw.len() > 512 || raw.contains([':', '*']) {
            return Err(ConfigError::new(
                "config.log_stream",
                "must be 1-512 bytes without `:` or `*`",
            ));
        }
        let log_stream = Template::parse_strict(raw, false).map_err(|m| ConfigError::new("config.log_stream", m))?;
        Ok(CloudWatchSettings {
            log_group: group.clone(),
            log_stream,
            create_missing: self.create_missing.unwrap_or(false),
            aws: self.aws_fields().resolve("logs")?,
            options: self.format_options()?,
        })
    }
}

/// One event as a log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEvent {
    /// Index into the batch.
    pub index: usize,
    pub timestamp: i64,
    pub message: String,
}

/// The event's time in epoch milliseconds: `occurred_at`, else `received_at`, else `now_ms`.
pub(crate) fn timestamp(event: &StoredEvent, now_ms: i64) -> i64 {
    let times = event.times();
    [times.occurred_at, times.received_at]
        .into_iter()
        .flatten()
        .find_map(|t| auditrelay_core::time::parse_rfc3339(&t))
        .map_or(now_ms, |t| t.as_millisecond())
}

/// Splits log events (in offset order) into calls: ≤ 10,000 events and 1 MiB in offset order,
/// then each sorted by time (stable, so equal times keep offset order) and cut where it would
/// span more than 24 hours.
pub(crate) fn calls(events: Vec<LogEvent>) -> Vec<Vec<LogEvent>> {
    let mut by_size: Vec<Vec<LogEvent>> = Vec::new();
    let mut current: Vec<LogEvent> = Vec::new();
    let mut bytes = 0;
    for e in events {
        let size = e.message.len() + EVENT_OVERHEAD;
        if !current.is_empty() && (current.len() >= MAX_EVENTS || bytes + size > MAX_BYTES) {
            by_size.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(e);
    }
    if !current.is_empty() {
        by_size.push(current);
    }
    let mut out = Vec::new();
    for mut call in by_size {
        call.sort_by_key(|e| e.timestamp);
        let mut part: Vec<LogEvent> = Vec::new();
        for e in call {
            if part
                .first()
                .is_some_and(|first| e.timestamp - first.timestamp > MAX_SPAN_MS)
            {
                out.push(std::mem::take(&mut part));
            }
            part.push(e);
        }
        if !part.is_empty() {
            out.push(part);
        }
    }
    out
}

/// The events of a call that `rejectedLogEventsInfo` names, with the reason.
pub(crate) fn rejected_by_service(info: &Value, len: usize) -> Vec<(usize, &'static str)> {
    let index = |k: &str| info.get(k).and_then(Value::as_u64).map(|i| i as usize);
    let mut out = Vec::new();
    for i in 0..len {
        let reason = if index("tooNewLogEventStartIndex").is_some_and(|s| i >= s) {
            Some("CloudWatch Logs rejected the event as too new (more than 2 hours in the future)")
        } else if index("expiredLogEventEndIndex").is_some_and(|e| i <= e) {
            Some("CloudWatch Logs rejected the event as older than the log group's retention")
        } else if index("tooOldLogEventEndIndex").is_some_and(|e| i <= e) {
            Some("CloudWatch Logs rejected the event as too old (more than 14 days, or before the group's creation)")
        } else {
            None
        };
        if let Some(reason) = reason {
            out.push((i, reason));
        }
    }
    out
}

/// A ready-to-send sink.
pub struct CloudWatchLogsSink {
    cfg: CloudWatchSettings,
    client: JsonClient,
    format: Format,
}

impl std::fmt::Debug for CloudWatchLogsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchLogsSink")
            .field("log_group", &self.cfg.log_group)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

const PUT: &str = "Logs_20140328.PutLogEvents";

impl CloudWatchLogsSink {
    /// Creates the group (if missing) and the stream. Errors are the attempt's.
    async fn create(&self, stream: &str) -> Result<(), AttemptReport> {
        let group = json!({"logGroupName": self.cfg.log_group});
        for (target, body) in [
            ("Logs_20140328.CreateLogGroup", group),
            (
                "Logs_20140328.CreateLogStream",
                json!({"logGroupName": self.cfg.log_group, "logStreamName": stream}),
            ),
        ] {
            match self.client.call(target, body.to_string().into_bytes()).await {
                Ok(_) => {}
                Err(CallError { code, .. }) if code.as_deref() == Some("ResourceAlreadyExistsException") => {}
                Err(CallError { report, .. }) => return Err(report),
            }
        }
        Ok(())
    }

    async fn put(&self, stream: &str, call: &[LogEvent]) -> Result<Value, CallError> {
        let events: Vec<Value> = call
            .iter()
            .map(|e| json!({"timestamp": e.timestamp, "message": e.message}))
            .collect();
        let body = json!({"logGroupName": self.cfg.log_group, "logStreamName": stream, "logEvents": events});
        self.client.call(PUT, body.to_string().into_bytes()).await
    }
}

#[async_trait]
impl Sink for CloudWatchLogsSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        let stream = self.cfg.log_stream.render("", batch.tenant_id);
        if stream.is_empty() || stream.len() > 512 || stream.contains([':', '*']) {
            return AttemptReport::failed(
                Outcome::Misconfigured,
                format!("log stream name `{stream}` is not valid (1-512 characters, no `:` or `*`)"),
            );
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut events = Vec::with_capacity(batch.events.len());
        for (index, event) in batch.events.iter().enumerate() {
            let message = encode(self.format, event, &self.cfg.options)
                .map_err(|e| format!("cannot encode event {} as `{}`: {e}", event.offset, self.format.name()))
                .and_then(|b| String::from_utf8(b).map_err(|_| format!("event {} is not UTF-8", event.offset)));
            match message {
                Ok(m) if m.len() <= MAX_MESSAGE_BYTES => events.push(LogEvent {
                    index,
                    timestamp: timestamp(event, now_ms),
                    message: m,
                }),
                Ok(m) => rejected.push((
                    index,
                    format!(
                        "event {} is {} bytes as a log message, over CloudWatch Logs' {MAX_MESSAGE_BYTES}",
                        event.offset,
                        m.len()
                    ),
                )),
                Err(why) => rejected.push((index, why)),
            }
        }
        let calls = calls(events);
        let mut retry: Vec<usize> = Vec::new();
        let mut after = None;
        let mut error: Option<String> = None;
        for (n, call) in calls.iter().enumerate() {
            let mut answer = self.put(&stream, call).await;
            if self.cfg.create_missing {
                if let Err(CallError { code, .. }) = &answer {
                    if code.as_deref() == Some("ResourceNotFoundException") {
                        if let Err(report) = self.create(&stream).await {
                            answer = Err(CallError { report, code: None });
                        } else {
                            answer = self.put(&stream, call).await;
                        }
                    }
                }
            }
            match answer {
                Ok(answer) => {
                    if let Some(info) = answer.get("rejectedLogEventsInfo") {
                        for (i, reason) in rejected_by_service(info, call.len()) {
                            rejected.push((call[i].index, reason.to_owned()));
                        }
                    }
                }
                Err(CallError { report, .. }) => {
                    let why = report.error.clone().unwrap_or_else(|| "failed".to_owned());
                    match report.outcome.clone() {
                        Outcome::Reject => rejected.extend(call.iter().map(|e| (e.index, why.clone()))),
                        _ if n == 0 && rejected.is_empty() => return report,
                        other => {
                            if let Outcome::Retry { after: a } = other {
                                after = a;
                            }
                            error = Some(why);
                            let mut rest: Vec<usize> = calls[n..].iter().flatten().map(|e| e.index).collect();
                            rest.sort_unstable();
                            retry = rest;
                            break;
                        }
                    }
                }
            }
        }
        if retry.is_empty() && rejected.is_empty() {
            return AttemptReport::delivered(Some(200));
        }
        rejected.sort_by_key(|(i, _)| *i);
        let mut text = format!(
            "{} of {} events into {}/{stream} to retry, {} refused",
            retry.len(),
            batch.events.len(),
            self.cfg.log_group,
            rejected.len()
        );
        if let Some(first) = error.as_deref().or(rejected.first().map(|(_, w)| w.as_str())) {
            text.push_str(": ");
            text.push_str(first);
        }
        AttemptReport {
            outcome: Outcome::Partial { retry, after, rejected },
            status: Some(200),
            error: Some(text),
        }
    }
}

fn parse(config: &Value) -> Result<CloudWatchSettings, ConfigError> {
    crate::typed::parse_config::<CloudWatchLogsConfig>(config)?.resolve()
}

/// Save-time validation: the endpoints against the SSRF policy, and the credentials.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    aws::validate(&parse(config)?.aws, secrets, env).await
}

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    let cfg = parse(config)?;
    let client = aws::build_client(cfg.aws.clone(), secrets, env, "cloudwatch-logs")?;
    Ok(Arc::new(CloudWatchLogsSink { cfg, client, format }))
}

impl crate::KindConfig for CloudWatchLogsConfig {
    const SPEC: crate::KindSpec = aws::kind_spec("cloudwatch_logs", aws::RECORD_FORMATS);

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: usize, timestamp: i64, len: usize) -> LogEvent {
        LogEvent {
            index,
            timestamp,
            message: "x".repeat(len),
        }
    }

    #[test]
    fn config() {
        let c = parse(&json!({"log_group": "/audit/relay", "region": "eu-west-1"})).unwrap();
        assert_eq!(c.log_stream.render("", "acme"), "acme");
        assert!(!c.create_missing);
        assert_eq!(c.aws.url.as_str(), "https://logs.eu-west-1.amazonaws.com/");
        let e = |v: Value| parse(&v).unwrap_err().field;
        assert_eq!(e(json!({"log_group": "a b", "region": "r"})), "config.log_group");
        assert_eq!(
            e(json!({"log_group": "a", "region": "r", "log_stream": "a:b"})),
            "config.log_stream"
        );
        assert_eq!(
            e(json!({"log_group": "a", "region": "r", "log_stream": "{type}"})),
            "config.log_stream"
        );
        assert_eq!(
            e(json!({"log_group": "a", "region": "r", "create_missing": "yes"})),
            "config.create_missing"
        );
    }

    #[test]
    fn calls_are_chronological_and_within_limits() {
        // Sorted by time within a call, equal times in offset order.
        let out = calls(vec![ev(0, 5, 1), ev(1, 3, 1), ev(2, 5, 1), ev(3, 1, 1)]);
        let order: Vec<usize> = out[0].iter().map(|e| e.index).collect();
        assert_eq!(order, vec![3, 1, 0, 2]);
        // 10,000 events per call.
        let out = calls((0..10_001).map(|i| ev(i, 0, 1)).collect());
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![10_000, 1]);
        // 1 MiB per call, counting 26 bytes per event.
        let big = MAX_BYTES / 2 - EVENT_OVERHEAD;
        let out = calls(vec![ev(0, 0, big), ev(1, 0, big), ev(2, 0, 1)]);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        // 24 hours per call.
        let out = calls(vec![ev(0, 0, 1), ev(1, MAX_SPAN_MS, 1), ev(2, MAX_SPAN_MS + 1, 1)]);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn service_rejections() {
        let info = json!({"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 4});
        let r = rejected_by_service(&info, 6);
        assert_eq!(r.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 4, 5]);
        assert!(r[0].1.contains("too old") && r[2].1.contains("too new"));
        let r = rejected_by_service(&json!({"expiredLogEventEndIndex": 0}), 2);
        assert_eq!(r.len(), 1);
        assert!(r[0].1.contains("retention"));
    }
}
