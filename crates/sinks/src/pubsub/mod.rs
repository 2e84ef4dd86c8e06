//! The `pubsub` sink: each event becomes one Google Cloud Pub/Sub message (`topics.publish`,
//! ≤ 1,000 messages and 10 MB per call, so a batch may take several calls, sent in order), its
//! `data` the encoded event and its attributes `event_type`, `tenant_id`, `offset`, `event_id`;
//! with `ordering`, the tenant is the ordering key. Authenticated with a service account key
//! (OAuth2 JWT bearer grant, token cached), or not at all against the emulator.

mod token;

use std::sync::Arc;

use async_trait::async_trait;
use auditrelay_format::{encode, Format, FormatOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use token::{ServiceAccount, Token};
pub use token::{DEFAULT_TOKEN_URI, SCOPE};

use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, SecretSpec, Secrets, Sink, SinkEnv};

pub const SERVICE_ACCOUNT_JSON: &str = "service_account_json";
pub const DEFAULT_ENDPOINT: &str = "https://pubsub.googleapis.com";
/// Pub/Sub's limits per publish call.
pub const MAX_MESSAGES: usize = 1000;
pub const MAX_REQUEST_BYTES: usize = 10_000_000;
/// JSON framing per message beyond its data and attribute values (keys, quotes, braces).
const MESSAGE_OVERHEAD: usize = 160;
/// How much of an error answer is read.
const MAX_ANSWER: usize = 16 * 1024;

crate::typed::with_format_options! {
    /// `config` of a `pubsub` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "pubsub config")]
    pub struct PubSubConfig {
        /// The Google Cloud project id that owns the topic.
        #[schemars(pattern(r"^[a-z0-9.:-]{1,100}$"))]
        pub project: String,
        /// The topic's name (not its full resource name).
        #[schemars(pattern(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"))]
        pub topic: String,
        /// The Pub/Sub API base URL (default `https://pubsub.googleapis.com`): a regional or
        /// private endpoint, or the emulator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::typed::opt_url_schema", extend("default" = DEFAULT_ENDPOINT))]
        pub endpoint: Option<String>,
        /// Publish with the tenant id as the ordering key (default false); subscriptions with
        /// message ordering then receive each tenant's events in order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ordering: Option<bool>,
        /// Talk to the Pub/Sub emulator (default false): no authentication, plain HTTP allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub emulator: Option<bool>,
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct PubSubSettings {
    pub endpoint: Url,
    pub publish_url: Url,
    pub topic_path: String,
    pub ordering: bool,
    pub emulator: bool,
    pub options: FormatOptions,
}

impl PubSubConfig {
    pub(crate) fn resolve(&self) -> Result<PubSubSettings, ConfigError> {
        let project = &self.project;
        if project.is_empty()
            || project.len() > 100
            || !project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".:-".contains(&b))
        {
            return Err(ConfigError::new(
                "config.project",
                "must be a Google Cloud project id (lowercase letters, digits, `-`, `.` and `:`)",
            ));
        }
        let topic = &self.topic;
        if !(3..=255).contains(&topic.len())
            || !topic.starts_with(|c: char| c.is_ascii_alphabetic())
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~+%-".contains(&b))
            || topic.starts_with("goog")
        {
            return Err(ConfigError::new(
                "config.topic",
                "must be a topic name: 3-255 letters, digits, `._~+%-`, starting with a letter, not `goog…`",
            ));
        }
        let emulator = self.emulator.unwrap_or(false);
        let endpoint = http::parse_url(self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT), "config.endpoint")?;
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(ConfigError::new("config.endpoint", "must not have a query or fragment"));
        }
        if endpoint.scheme() != "https" && !emulator && !is_loopback(&endpoint) {
            return Err(ConfigError::new(
                "config.endpoint",
                "must be https (plain http only with `emulator: true` or a loopback address)",
            ));
        }
        let base = endpoint.as_str().trim_end_matches('/');
        let publish = format!("{base}/v1/projects/{project}/topics/{topic}:publish");
        let publish_url = Url::parse(&publish).map_err(|e| ConfigError::new("config.endpoint", e.to_string()))?;
        Ok(PubSubSettings {
            endpoint,
            publish_url,
            topic_path: format!("projects/{project}/topics/{topic}"),
            ordering: self.ordering.unwrap_or(false),
            emulator,
            options: self.format_options()?,
        })
    }
}

/// A loopback host (`localhost`, 127.0.0.0/8, `::1`): plain HTTP never leaves the machine (a
/// local proxy or test double; reaching it needs `--allow-private-networks` anyway).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse(config: &Value) -> Result<PubSubSettings, ConfigError> {
    crate::typed::parse_config::<PubSubConfig>(config)?.resolve()
}

const SECRET_FIELD: &str = "secrets.service_account_json";

fn account(settings: &PubSubSettings, secrets: &Secrets) -> Result<Option<ServiceAccount>, ConfigError> {
    match (settings.emulator, secrets.get(SERVICE_ACCOUNT_JSON)) {
        (true, Some(_)) => Err(ConfigError::new(
            SECRET_FIELD,
            "is not used with `emulator: true` (the emulator takes no credentials)",
        )),
        (true, None) => Ok(None),
        (false, None) => Err(ConfigError::new(SECRET_FIELD, "is required unless `emulator` is true")),
        (false, Some(raw)) => ServiceAccount::parse(raw, SECRET_FIELD).map(Some),
    }
}

/// Save-time validation: the endpoint and the token URI against the SSRF policy, and the key.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse(config)?;
    http::check_url(parsed.endpoint.as_str(), "config.endpoint", env).await?;
    if let Some(account) = account(&parsed, secrets)? {
        http::check_url(account.token_uri.as_str(), &format!("{SECRET_FIELD}.token_uri"), env).await?;
    }
    Ok(Secrets::new())
}

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    let settings = parse(config)?;
    let account = account(&settings, secrets)?;
    let client = http::client(env).map_err(|e| ConfigError::new("config", e.to_string()))?;
    Ok(Arc::new(PubSubSink {
        settings,
        account,
        client,
        env: env.clone(),
        format,
        token: tokio::sync::Mutex::new(None),
    }))
}

/// A ready-to-send `pubsub` sink.
pub struct PubSubSink {
    settings: PubSubSettings,
    account: Option<ServiceAccount>,
    client: reqwest::Client,
    env: SinkEnv,
    format: Format,
    /// Held across a fetch, so concurrent lanes share one token request.
    token: tokio::sync::Mutex<Option<Token>>,
}

impl PubSubSink {
    /// The `Authorization` value: the cached token, or a fresh one.
    async fn bearer(&self, account: &ServiceAccount) -> Result<String, AttemptReport> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if std::time::Instant::now() < t.refresh_at {
                return Ok(t.bearer.clone());
            }
        }
        http::check_url_literal(&account.token_uri, &self.env)
            .map_err(|m| AttemptReport::failed(Outcome::Misconfigured, format!("token_uri: {m}")))?;
        let fresh = token::fetch(&self.client, account).await?;
        let bearer = fresh.bearer.clone();
        *slot = Some(fresh);
        Ok(bearer)
    }

    async fn drop_token(&self) {
        *self.token.lock().await = None;
    }

    /// One publish call. 401/403/404 pause the sink with Google's message; 429/5xx retry; any
    /// other failure refuses the batch.
    async fn publish(&self, messages: &[Value]) -> AttemptReport {
        let mut request = self
            .client
            .post(self.settings.publish_url.clone())
            .json(&json!({ "messages": messages }));
        if let Some(account) = &self.account {
            match self.bearer(account).await {
                Ok(bearer) => request = request.header(reqwest::header::AUTHORIZATION, bearer),
                Err(report) => return report,
            }
        }
        let answer = match http::exchange(request, MAX_ANSWER).await {
            Ok(a) => a,
            Err(report) => return report,
        };
        if (200..300).contains(&answer.status) {
            return AttemptReport::delivered(Some(answer.status));
        }
        if answer.status == 401 {
            // A revoked or expired token: the next attempt fetches another.
            self.drop_token().await;
        }
        let mut report = answer.report();
        if matches!(answer.status, 401 | 403 | 404) {
            report.outcome = Outcome::Misconfigured;
        }
        let message = google_message(&answer.body).unwrap_or_else(|| answer.snippet());
        report.error = Some(format!(
            "topic {}: HTTP {}: {message}",
            self.settings.topic_path, answer.status
        ));
        report
    }
}

/// `error.message` of a Google API error body.
fn google_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v.pointer("/error/message")?.as_str()?;
    Some(
        m.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1000)
            .collect(),
    )
}

/// Splits message sizes into consecutive calls within Pub/Sub's limits.
fn calls(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 16;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_MESSAGES || bytes + size > MAX_REQUEST_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 16;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[async_trait]
impl Sink for PubSubSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        if let Err(m) = http::check_url_literal(&self.settings.publish_url, &self.env) {
            return AttemptReport::failed(Outcome::Misconfigured, format!("endpoint: {m}"));
        }
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut messages: Vec<(usize, Value)> = Vec::new();
        let mut sizes = Vec::new();
        for (i, event) in batch.events.iter().enumerate() {
            let record = match encode(self.format, event, &self.options()) {
                Ok(r) => r,
                Err(e) => {
                    rejected.push((
                        i,
                        format!("cannot encode event {} as `{}`: {e}", event.offset, self.format.name()),
                    ));
                    continue;
                }
            };
            let data = STANDARD.encode(&record);
            let offset = event.offset.to_string();
            let size = data.len()
                + event.event_type.len()
                + batch.tenant_id.len() * 2
                + offset.len()
                + event.id.len()
                + MESSAGE_OVERHEAD;
            if size > MAX_REQUEST_BYTES {
                rejected.push((i, format!("event {} is over Pub/Sub's 10 MB per message", event.offset)));
                continue;
            }
            let mut message = json!({
                "data": data,
                "attributes": {
                    "event_type": event.event_type,
                    "tenant_id": batch.tenant_id,
                    "offset": offset,
                    "event_id": event.id,
                },
            });
            if self.settings.ordering {
                message["orderingKey"] = Value::String(batch.tenant_id.to_owned());
            }
            messages.push((i, message));
            sizes.push(size);
        }
        let mut last = None;
        for range in calls(&sizes) {
            let chunk: Vec<Value> = messages[range.clone()].iter().map(|(_, m)| m.clone()).collect();
            let report = self.publish(&chunk).await;
            let partial = range.start > 0 || !rejected.is_empty();
            match report.outcome {
                Outcome::Delivered => {}
                Outcome::Retry { after } if partial => {
                    // Earlier calls went through: only the rest goes again.
                    let retry = messages[range.start..].iter().map(|(i, _)| *i).collect();
                    return AttemptReport {
                        outcome: Outcome::Partial { retry, after, rejected },
                        status: report.status,
                        error: report.error,
                    };
                }
                Outcome::Reject if partial => {
                    let why = report.error.clone().unwrap_or_default();
                    rejected.extend(messages[range.clone()].iter().map(|(i, _)| (*i, why.clone())));
                    let retry = messages[range.end..].iter().map(|(i, _)| *i).collect();
                    return AttemptReport {
                        outcome: Outcome::Partial {
                            retry,
                            after: None,
                            rejected,
                        },
                        status: report.status,
                        error: report.error,
                    };
                }
                _ => return report,
            }
            last = report.status;
        }
        if rejected.is_empty() {
            AttemptReport::delivered(last)
        } else {
            let error = rejected.first().map(|(_, why)| why.clone());
            AttemptReport {
                outcome: Outcome::Partial {
                    retry: Vec::new(),
                    after: None,
                    rejected,
                },
                status: last,
                error,
            }
        }
    }
}

impl PubSubSink {
    fn options(&self) -> FormatOptions {
        self.settings.options.clone()
    }
}

impl crate::KindConfig for PubSubConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "pubsub",
        formats: &["json", "ocsf", "cef", "leef", "raw"],
        secrets: &[SecretSpec::optional(
            SERVICE_ACCOUNT_JSON,
            "a service account key file (JSON) with `roles/pubsub.publisher` on the topic; required unless `emulator` is true",
        )],
        rotating_secrets: &[],
    };

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        let c = parse(&json!({"project": "my-proj", "topic": "audit"})).unwrap();
        assert_eq!(
            c.publish_url.as_str(),
            "https://pubsub.googleapis.com/v1/projects/my-proj/topics/audit:publish"
        );
        assert!(!c.ordering && !c.emulator);
        let e = |v: Value| parse(&v).unwrap_err().field;
        assert_eq!(e(json!({"project": "My Proj", "topic": "audit"})), "config.project");
        assert_eq!(e(json!({"project": "p", "topic": "goog-x"})), "config.topic");
        assert_eq!(
            e(json!({"project": "p", "topic": "audit", "endpoint": "http://pubsub.example.com"})),
            "config.endpoint"
        );
        let c =
            parse(&json!({"project": "p", "topic": "audit", "endpoint": "http://127.0.0.1:8085/", "emulator": true}))
                .unwrap();
        assert_eq!(
            c.publish_url.as_str(),
            "http://127.0.0.1:8085/v1/projects/p/topics/audit:publish"
        );
        let mut s = Secrets::new();
        assert!(account(&c, &s).unwrap().is_none());
        s.insert(SERVICE_ACCOUNT_JSON.into(), "{}".into());
        assert_eq!(account(&c, &s).unwrap_err().field, SECRET_FIELD);
    }

    #[test]
    fn calls_respect_limits() {
        assert_eq!(calls(&[10; 2500]), vec![0..1000, 1000..2000, 2000..2500]);
        assert_eq!(calls(&[4_000_000; 3]), vec![0..2, 2..3]);
        assert!(calls(&[]).is_empty());
    }

    #[test]
    fn google_messages() {
        let body = br#"{"error":{"code":404,"message":"Resource not found (resource=audit).","status":"NOT_FOUND"}}"#;
        assert_eq!(google_message(body).unwrap(), "Resource not found (resource=audit).");
        assert!(google_message(b"<html>").is_none());
    }
}
