//! Delivering one batch to Azure Monitor (Logs Ingestion) or a Data Collector-compatible
//! receiver.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use auditrelay_format::{Format, FormatOptions};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::config::{
    parse_config, parse_credential, Credential, DataCollectorSettings, LogsIngestionSettings, ModeConfig, Secret,
    SecretBytes,
};
use super::request::{
    data_collector_request, ingestion_request, pack, record, token_request, Call, RecordError, WireRequest,
    DATA_COLLECTOR_MAX_POST_BYTES, MAX_CALL_BYTES,
};
use super::token::{self, refresh_at, scrub, Token, TokenCache};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// The sink's wall clock: token expiry and the Data Collector's `x-ms-date`. Replaceable so tests
/// can move time and snapshot signed requests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Data Collector `400` error codes that say the sink is configured wrong (the workspace, the
/// log type, the request shape), not that this batch is bad: every batch would fail alike.
const DATA_COLLECTOR_CONFIG_ERRORS: &[&str] = &[
    "InactiveCustomer",
    "InvalidApiVersion",
    "InvalidCustomerId",
    "InvalidLogType",
    "MissingApiVersion",
    "MissingContentType",
    "MissingLogType",
    "UnsupportedContentType",
];

/// A ready-to-send `sentinel` sink. Holds the client secret or the workspace key and, in
/// `logs_ingestion` mode, the cached access token; its Debug output shows none of them.
pub struct SentinelSink {
    format: Format,
    options: FormatOptions,
    target: Target,
    client: reqwest::Client,
    env: SinkEnv,
    clock: Clock,
}

// One per sink, built once: the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Target {
    LogsIngestion {
        config: LogsIngestionSettings,
        client_secret: Secret,
        tokens: TokenCache,
    },
    DataCollector {
        config: DataCollectorSettings,
        key: SecretBytes,
    },
}

impl fmt::Debug for SentinelSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SentinelSink");
        d.field("format", &self.format.name());
        match &self.target {
            Target::LogsIngestion { config, .. } => d
                .field("mode", &"logs_ingestion")
                .field("endpoint", &config.ingestion_url.host_str())
                .field("authority", &config.token_url.host_str())
                .field("client_id", &config.client_id),
            Target::DataCollector { config, .. } => d
                .field("mode", &"data_collector")
                .field("url", &config.url.host_str())
                .field("workspace_id", &config.workspace_id)
                .field("log_type", &config.log_type),
        };
        d.finish_non_exhaustive()
    }
}

impl SentinelSink {
    /// Builds the sink. No network here (the save-time checks ran in [`super::validate`]; the
    /// send-time ones run on every delivery). Logs a warning in `data_collector` mode: Azure no
    /// longer accepts it.
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        if !matches!(format, Format::Json | Format::Ocsf) {
            return Err(ConfigError::new(
                "format",
                format!(
                    "`sentinel` sinks send JSON records: `json` or `ocsf`, not `{}`",
                    format.name()
                ),
            ));
        }
        let parsed = parse_config(config)?;
        let credential = parse_credential(&parsed.mode, secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        let target = match (parsed.mode, credential) {
            (ModeConfig::LogsIngestion(config), Credential::ClientSecret(client_secret)) => Target::LogsIngestion {
                config,
                client_secret,
                tokens: TokenCache::default(),
            },
            (ModeConfig::DataCollector(config), Credential::SharedKey(key)) => {
                tracing::warn!(
                    host = config.url.host_str().unwrap_or(""),
                    workspace_id = %config.workspace_id,
                    "sentinel sink in data_collector mode: Microsoft shut the HTTP Data Collector API off on \
                     2026-09-14, so this mode only works against compatible receivers; use logs_ingestion for \
                     Azure Monitor and Microsoft Sentinel"
                );
                Target::DataCollector { config, key }
            }
            // parse_credential answers with the mode's own credential.
            _ => return Err(ConfigError::new("secrets", "credential does not match the mode")),
        };
        Ok(SentinelSink {
            format,
            options: parsed.options,
            target,
            client,
            env: env.clone(),
            clock: Arc::new(Timestamp::now),
        })
    }

    /// Replaces the wall clock (tests: expiring tokens without waiting, deterministic
    /// `x-ms-date` signatures).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The cached token, or a new one (and `true`) when there is none or it is due for refresh.
    async fn token(
        &self,
        config: &LogsIngestionSettings,
        secret: &Secret,
        tokens: &TokenCache,
    ) -> Result<(Token, bool), AttemptReport> {
        // Held across the fetch: other lanes wait for this token rather than fetch their own.
        let mut slot = tokens.slot.lock().await;
        let now = (self.clock)();
        if let Some(token) = slot.as_ref().filter(|t| now < t.refresh_at) {
            return Ok((token.clone(), false));
        }
        *slot = None;
        if let Err(message) = http::check_url_literal(&config.token_url, &self.env) {
            return Err(AttemptReport::failed(
                Outcome::Misconfigured,
                format!("config.authority_url: {message}"),
            ));
        }
        let grant = token::fetch(&self.client, token_request(config, secret.expose()), secret.expose()).await?;
        let token = Token {
            bearer: grant.bearer,
            raw: grant.raw,
            // From the time the request was made: the token may have been issued a moment
            // before the answer arrived.
            refresh_at: refresh_at(now, grant.lifetime),
            generation: tokens.next_generation(),
        };
        tracing::debug!(
            authority = config.token_url.host_str().unwrap_or(""),
            lifetime_secs = grant.lifetime.as_secs(),
            "fetched an access token for the Logs Ingestion API"
        );
        *slot = Some(token.clone());
        Ok((token, true))
    }

    async fn deliver_logs_ingestion(
        &self,
        config: &LogsIngestionSettings,
        secret: &Secret,
        tokens: &TokenCache,
        calls: Vec<Call>,
        rejected: Vec<(usize, String)>,
    ) -> AttemptReport {
        if calls.is_empty() {
            return settle(&calls, rejected, Vec::new());
        }
        if let Err(message) = http::check_url_literal(&config.ingestion_url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, format!("config.endpoint: {message}"));
        }
        let (token, fresh) = match self.token(config, secret, tokens).await {
            Ok(t) => t,
            Err(report) => return report,
        };
        let mut reports = Vec::with_capacity(calls.len());
        for call in &calls {
            let request = ingestion_request(config, &token.bearer, call.body.clone());
            let mut report = self.send(request).await;
            report.error = report.error.map(|e| scrub(&e, &token.raw));
            if report.status == Some(401) {
                // Expired early, revoked, or signed with a rotated key: drop it either way. A
                // cached token gets one more chance, as a fresh one on the next attempt; a token
                // issued moments ago being refused means the credentials do not fit the DCR.
                tokens.invalidate(token.generation).await;
                let error = report.error.take().unwrap_or_else(|| "HTTP 401".to_owned());
                if fresh {
                    report.outcome = Outcome::Misconfigured;
                    report.error = Some(format!(
                        "{error} (a token issued moments ago was refused: check that azure_tenant_id, client_id and \
                         scope belong to the DCR's cloud and tenant)"
                    ));
                } else {
                    report.outcome = Outcome::Retry { after: None };
                    report.error = Some(format!(
                        "{error} (the cached access token was refused; a new one is fetched on the next attempt)"
                    ));
                }
            }
            let stop = !matches!(report.outcome, Outcome::Delivered | Outcome::Reject);
            reports.push(report);
            if stop {
                break;
            }
        }
        settle(&calls, rejected, reports)
    }

    async fn deliver_data_collector(
        &self,
        config: &DataCollectorSettings,
        key: &SecretBytes,
        calls: Vec<Call>,
        rejected: Vec<(usize, String)>,
    ) -> AttemptReport {
        if calls.is_empty() {
            return settle(&calls, rejected, Vec::new());
        }
        if let Err(message) = http::check_url_literal(&config.url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, format!("config.url: {message}"));
        }
        let mut reports = Vec::with_capacity(calls.len());
        for call in &calls {
            // Signed per call at the time of sending: the receiver refuses an `x-ms-date` more
            // than 15 minutes off.
            let request = match data_collector_request(config, key.expose(), call.body.clone(), (self.clock)()) {
                Ok(r) => r,
                Err(message) => return AttemptReport::failed(Outcome::Misconfigured, message),
            };
            let mut report = self.send(request).await;
            if report.status == Some(400) {
                if let Some(code) = error_code(&report).filter(|c| DATA_COLLECTOR_CONFIG_ERRORS.contains(&c.as_str())) {
                    report.outcome = Outcome::Misconfigured;
                    report.error = report
                        .error
                        .map(|e| format!("{e} ({code}: the sink's configuration, not this batch)"));
                }
            }
            let stop = !matches!(report.outcome, Outcome::Delivered | Outcome::Reject);
            reports.push(report);
            if stop {
                break;
            }
        }
        settle(&calls, rejected, reports)
    }

    async fn send(&self, request: WireRequest) -> AttemptReport {
        http::send(
            self.client
                .post(request.url)
                .headers(request.headers)
                .body(request.body),
        )
        .await
    }
}

#[async_trait]
impl Sink for SentinelSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        let mut records = Vec::with_capacity(batch.events.len());
        let mut rejected = Vec::new();
        for (i, event) in batch.events.iter().enumerate() {
            match record(self.format, event, &self.options) {
                Ok(r) => records.push((i, r)),
                Err(RecordError::Format(message)) => return AttemptReport::failed(Outcome::Misconfigured, message),
                Err(RecordError::Event(message)) => rejected.push((i, message)),
            }
        }
        match &self.target {
            Target::LogsIngestion {
                config,
                client_secret,
                tokens,
            } => {
                let (calls, too_big) = pack(records, MAX_CALL_BYTES);
                rejected.extend(too_big);
                self.deliver_logs_ingestion(config, client_secret, tokens, calls, rejected)
                    .await
            }
            Target::DataCollector { config, key } => {
                let (calls, too_big) = pack(records, DATA_COLLECTOR_MAX_POST_BYTES);
                rejected.extend(too_big);
                self.deliver_data_collector(config, key, calls, rejected).await
            }
        }
    }
}

/// The error code of an Azure error answer, read back from the report's body snippet:
/// `{"Error": "InvalidLogType", …}` (Data Collector) or `{"error": {"code": …}}`.
fn error_code(report: &AttemptReport) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "Error", default)]
        data_collector: Option<String>,
        #[serde(default)]
        error: Option<Value>,
    }
    let status = report.status?;
    let error = report.error.as_deref()?;
    let snippet = error.strip_prefix(&format!("HTTP {status}: "))?;
    let body: Body = serde_json::from_str(snippet).ok()?;
    body.data_collector.or_else(|| {
        body.error
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// Combines the calls of one attempt into the engine's outcome. `reports` are the answers to
/// `calls[..reports.len()]`, in order; sending stopped at the first that was neither delivered
/// nor rejected. `rejected` holds events refused before sending (too big, not encodable).
/// - One call and nothing refused before sending: that call's report, unchanged.
/// - Every call delivered, nothing refused: `Delivered`.
/// - Nothing delivered and every event refused by the receiver: `Reject` (one dead letter).
/// - A call to retry after others went through: `Partial`, retrying that call's events and every
///   later call's, so delivered calls are not sent twice.
/// - Any call `Misconfigured`: the whole batch stays (calls already delivered are sent again
///   after the sink resumes: at-least-once).
pub(crate) fn settle(calls: &[Call], mut rejected: Vec<(usize, String)>, reports: Vec<AttemptReport>) -> AttemptReport {
    if calls.len() == 1 && rejected.is_empty() && reports.len() == 1 {
        if let Some(report) = reports.into_iter().next() {
            return report;
        }
        return AttemptReport::failed(Outcome::Retry { after: None }, "no answer".to_owned());
    }
    let total_calls = calls.len();
    let mut delivered_calls = 0;
    let mut refused_calls: Vec<(usize, AttemptReport)> = Vec::new();
    let mut status = None;
    for (k, (call, report)) in calls.iter().zip(reports).enumerate() {
        status = report.status.or(status);
        match &report.outcome {
            Outcome::Delivered => delivered_calls += 1,
            Outcome::Reject => {
                let why = report.error.clone().unwrap_or_else(|| "refused".to_owned());
                rejected.extend(call.indices.iter().map(|&i| (i, why.clone())));
                refused_calls.push((k, report));
            }
            Outcome::Misconfigured => {
                let error = report.error.unwrap_or_default();
                return AttemptReport {
                    outcome: Outcome::Misconfigured,
                    status: report.status,
                    error: Some(format!("call {} of {total_calls}: {error}", k + 1)),
                };
            }
            Outcome::Retry { after } | Outcome::Partial { after, .. } => {
                let after = *after;
                if delivered_calls == 0 && rejected.is_empty() {
                    return report_with_prefix(report, k, total_calls);
                }
                let retry: Vec<usize> = calls[k..].iter().flat_map(|c| c.indices.iter().copied()).collect();
                rejected.sort_by_key(|(i, _)| *i);
                let error = format!(
                    "call {} of {total_calls}: {}; {delivered_calls} delivered, {} events refused, {} to retry",
                    k + 1,
                    report.error.unwrap_or_default(),
                    rejected.len(),
                    retry.len()
                );
                return AttemptReport {
                    outcome: Outcome::Partial { retry, after, rejected },
                    status: report.status,
                    error: Some(error),
                };
            }
        }
    }
    if rejected.is_empty() {
        return AttemptReport::delivered(status);
    }
    let all_refused_by_receiver = delivered_calls == 0
        && refused_calls.len() == total_calls
        && rejected.len() == calls.iter().map(|c| c.indices.len()).sum::<usize>();
    if all_refused_by_receiver {
        if let Some((k, first)) = refused_calls.into_iter().next() {
            return report_with_prefix(first, k, total_calls);
        }
    }
    rejected.sort_by_key(|(i, _)| *i);
    let error = format!(
        "{} events refused ({delivered_calls} of {total_calls} calls delivered): {}",
        rejected.len(),
        rejected.first().map(|(_, why)| why.as_str()).unwrap_or("")
    );
    AttemptReport {
        outcome: Outcome::Partial {
            retry: Vec::new(),
            after: None,
            rejected,
        },
        status,
        error: Some(error),
    }
}

fn report_with_prefix(mut report: AttemptReport, k: usize, total: usize) -> AttemptReport {
    if total > 1 {
        report.error = report.error.map(|e| format!("call {} of {total}: {e}", k + 1));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(indices: &[usize]) -> Call {
        Call {
            indices: indices.to_vec(),
            body: b"[]".to_vec(),
        }
    }

    fn rep(outcome: Outcome, status: u16) -> AttemptReport {
        AttemptReport {
            error: (outcome != Outcome::Delivered).then(|| format!("HTTP {status}")),
            outcome,
            status: Some(status),
        }
    }

    #[test]
    fn settle_single_call_is_passed_through() {
        let r = rep(
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
            },
            429,
        );
        assert_eq!(settle(&[call(&[0, 1])], vec![], vec![r.clone()]), r);
        let r = rep(Outcome::Reject, 400);
        assert_eq!(settle(&[call(&[0])], vec![], vec![r.clone()]), r);
    }

    #[test]
    fn settle_many_calls() {
        let calls = [call(&[0, 1]), call(&[2, 3]), call(&[4])];
        let ok = || rep(Outcome::Delivered, 204);
        // All delivered.
        assert_eq!(
            settle(&calls, vec![], vec![ok(), ok(), ok()]),
            AttemptReport::delivered(Some(204))
        );
        // Second call busy: the first is not sent again.
        let busy = rep(
            Outcome::Retry {
                after: Some(Duration::from_secs(5)),
            },
            503,
        );
        let r = settle(&calls, vec![], vec![ok(), busy.clone()]);
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![2, 3, 4],
                after: Some(Duration::from_secs(5)),
                rejected: vec![]
            }
        );
        assert_eq!(r.status, Some(503));
        assert!(
            r.error.as_deref().unwrap().starts_with("call 2 of 3: HTTP 503"),
            "{r:?}"
        );
        // First call busy: a plain retry of the whole batch.
        let r = settle(&calls, vec![], vec![busy]);
        assert_eq!(
            r.outcome,
            Outcome::Retry {
                after: Some(Duration::from_secs(5))
            }
        );
        // One call refused: only its events are dead-lettered.
        let r = settle(&calls, vec![], vec![ok(), rep(Outcome::Reject, 400), ok()]);
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: vec![(2, "HTTP 400".into()), (3, "HTTP 400".into())]
            }
        );
        // Every call refused: one rejection of the batch.
        let r = settle(
            &calls,
            vec![],
            vec![
                rep(Outcome::Reject, 400),
                rep(Outcome::Reject, 400),
                rep(Outcome::Reject, 413),
            ],
        );
        assert_eq!(r.outcome, Outcome::Reject);
        assert_eq!(r.error.as_deref(), Some("call 1 of 3: HTTP 400"));
        // Misconfigured stops and keeps the batch.
        let r = settle(&calls, vec![], vec![ok(), rep(Outcome::Misconfigured, 403)]);
        assert_eq!(r.outcome, Outcome::Misconfigured);
        assert_eq!(r.error.as_deref(), Some("call 2 of 3: HTTP 403"));
    }

    #[test]
    fn settle_with_events_refused_before_sending() {
        let too_big = vec![(1, "the record is 2000000 bytes".to_owned())];
        let r = settle(&[call(&[0, 2])], too_big.clone(), vec![rep(Outcome::Delivered, 204)]);
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: too_big.clone()
            }
        );
        // Nothing left to send.
        let r = settle(&[], too_big.clone(), vec![]);
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: too_big.clone()
            }
        );
        // Retry after a pre-send refusal: retry the call, keep the refusal.
        let r = settle(
            &[call(&[0, 2])],
            too_big.clone(),
            vec![rep(Outcome::Retry { after: None }, 500)],
        );
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![0, 2],
                after: None,
                rejected: too_big
            }
        );
    }

    /// Collects the messages of WARN events (a minimal subscriber: no tracing-subscriber here).
    struct Warnings(std::sync::Mutex<Vec<String>>);

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            if *event.metadata().level() == tracing::Level::WARN {
                let mut m = Message(String::new());
                event.record(&mut m);
                self.0.lock().unwrap().push(m.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn data_collector_mode_warns_at_build_time() {
        let warnings = Arc::new(Warnings(std::sync::Mutex::new(Vec::new())));
        let secrets: Secrets = [("shared_key".to_owned(), "MDEy".to_owned())].into();
        let dc = serde_json::json!({"mode": "data_collector", "workspace_id": "ws"});
        tracing::subscriber::with_default(warnings.clone(), || {
            SentinelSink::new(&dc, &secrets, Format::Json, &SinkEnv::default()).unwrap();
        });
        let seen = warnings.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].contains("shut the HTTP Data Collector API off on 2026-09-14"),
            "{seen:?}"
        );
        assert!(seen[0].contains("compatible receivers"), "{seen:?}");

        let li = serde_json::json!({
            "endpoint": "https://dce.example.com",
            "dcr_id": "dcr-0123456789abcdef0123456789abcdef",
            "stream": "Custom-AuditRelay_CL",
            "azure_tenant_id": "t",
            "client_id": "c",
        });
        let secrets: Secrets = [("client_secret".to_owned(), "s".to_owned())].into();
        warnings.0.lock().unwrap().clear();
        tracing::subscriber::with_default(warnings.clone(), || {
            SentinelSink::new(&li, &secrets, Format::Json, &SinkEnv::default()).unwrap();
        });
        assert!(
            warnings.0.lock().unwrap().is_empty(),
            "no warning in logs_ingestion mode"
        );
    }

    #[test]
    fn error_codes_from_snippets() {
        let r = |status: u16, body: &str| AttemptReport {
            outcome: Outcome::Reject,
            status: Some(status),
            error: Some(format!("HTTP {status}: {body}")),
        };
        assert_eq!(
            error_code(&r(400, r#"{"Error":"InvalidLogType","Message":"x"}"#)).as_deref(),
            Some("InvalidLogType")
        );
        assert_eq!(
            error_code(&r(400, r#"{"error":{"code":"InvalidStream","message":"x"}}"#)).as_deref(),
            Some("InvalidStream")
        );
        assert_eq!(error_code(&r(400, "plain text")), None);
    }
}
