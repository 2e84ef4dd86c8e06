//! Delivering one batch to a Splunk HTTP Event Collector, with optional indexer
//! acknowledgements, and reading HEC's answer codes.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use auditrelay_core::StoredEvent;
use auditrelay_format::{Format, FormatError};
use serde::Deserialize;
use serde_json::Value;

use super::config::{parse_config, parse_token, HecConfig, Token};
use super::request::{ack_request, event_request, WireRequest};
use crate::http::{self, Answer};
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// How much of an answer is read: HEC answers are a few dozen bytes.
const ANSWER_LIMIT: usize = 64 * 1024;
/// The first wait before asking whether a batch is indexed; it doubles up to [`ACK_POLL_MAX`].
pub const ACK_POLL_FIRST: Duration = Duration::from_millis(100);
pub const ACK_POLL_MAX: Duration = Duration::from_secs(1);

/// A ready-to-send Splunk HEC sink. Debug output shows the host, never the token.
pub struct SplunkHecSink {
    cfg: HecConfig,
    token: Token,
    /// `X-Splunk-Request-Channel`: one random GUID per sink instance, sent when `acks` is on
    /// (ack ids are per channel, so the poll must use the channel the batch was sent on).
    channel: Option<String>,
    format: Format,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for SplunkHecSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplunkHecSink")
            .field("host", &self.cfg.base.host_str())
            .field("format", &self.format.name())
            .field("acks", &self.cfg.acks)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl SplunkHecSink {
    /// Builds the sink. No network here: the save-time SSRF check ran in [`super::validate`];
    /// send-time checks run on every delivery.
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        check_format(format)?;
        let cfg = parse_config(config)?;
        let token = parse_token(secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        let channel = cfg
            .acks
            .then(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string());
        Ok(SplunkHecSink {
            cfg,
            token,
            channel,
            format,
            client,
            env: env.clone(),
        })
    }

    /// The request channel (a GUID) when indexer acknowledgements are on.
    pub fn channel(&self) -> Option<&str> {
        self.channel.as_deref()
    }

    fn post(&self, request: WireRequest) -> reqwest::RequestBuilder {
        let mut builder = self.client.post(request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        builder.body(request.body)
    }

    /// Polls `/services/collector/ack` until Splunk says `ack_id` is indexed. Never gives up by
    /// itself: the engine's attempt timeout bounds it, and a timed-out attempt is retried (the
    /// batch is sent again: at-least-once).
    async fn await_ack(&self, channel: &str, ack_id: u64, events: &[StoredEvent], status: u16) -> AttemptReport {
        let mut delay = ACK_POLL_FIRST;
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(ACK_POLL_MAX);
            let request = self.post(ack_request(&self.cfg, &self.token, channel, ack_id));
            let answer = match http::exchange(request, ANSWER_LIMIT).await {
                Ok(answer) => answer,
                Err(report) => return prefixed(report, "indexer acknowledgement poll"),
            };
            if !(200..300).contains(&answer.status) {
                return prefixed(read_answer(&answer, events), "indexer acknowledgement poll");
            }
            match acked(&answer.body, ack_id) {
                Some(true) => return AttemptReport::delivered(Some(status)),
                Some(false) => continue,
                None => {
                    return AttemptReport {
                        outcome: Outcome::Retry { after: None },
                        status: Some(answer.status),
                        error: Some(format!(
                            "indexer acknowledgement poll: unreadable answer: {}",
                            answer.snippet()
                        )),
                    }
                }
            }
        }
    }
}

/// Refuses formats the kind does not list (the API checks too; this guards direct builders).
fn check_format(format: Format) -> Result<(), ConfigError> {
    let allowed = crate::kind_spec("splunk_hec").map_or(&[][..], |k| k.formats);
    if allowed.contains(&format.name()) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "format",
            format!(
                "`splunk_hec` sinks send {}, not `{}`",
                allowed.join(", "),
                format.name()
            ),
        ))
    }
}

#[async_trait]
impl Sink for SplunkHecSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        // HEC answers an empty body with code 5 ("No data"): nothing to send is not a failure.
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&self.cfg.base, &self.env) {
            return failure(Outcome::Misconfigured, None, message);
        }
        let request = match event_request(
            &self.cfg,
            &self.token,
            self.channel.as_deref(),
            self.format,
            batch.events,
        ) {
            Ok(request) => request,
            Err(failed) => return encode_failure(self.format, failed.offset, &failed.error),
        };
        let answer = match http::exchange(self.post(request), ANSWER_LIMIT).await {
            Ok(answer) => answer,
            Err(report) => return report,
        };
        let report = read_answer(&answer, batch.events);
        let Some(channel) = self.channel.as_deref() else {
            return report;
        };
        if report.outcome != Outcome::Delivered {
            return report;
        }
        // Accepted is not indexed: with acks the cursor moves only once Splunk says so.
        match reply(&answer.body).and_then(|r| r.ack_id) {
            Some(ack_id) => self.await_ack(channel, ack_id, batch.events, answer.status).await,
            None => failure(
                Outcome::Misconfigured,
                Some(answer.status),
                "config.acks is true but Splunk's answer carried no ackId: enable indexer acknowledgement on the \
                 HEC token, or set acks to false"
                    .to_owned(),
            ),
        }
    }
}

/// HEC's JSON answer: `{"text": "...", "code": N}`, plus `ackId` or `invalid-event-number`.
#[derive(Debug, Deserialize)]
struct Reply {
    text: Option<String>,
    code: Option<i64>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<u64>,
}

fn reply(body: &[u8]) -> Option<Reply> {
    serde_json::from_slice(body).ok()
}

/// What HEC's code says, over what the HTTP status says:
/// - 0 (and 17, "healthy") with a 2xx status: delivered;
/// - 8, 9, 18, 19, 20 (internal error, busy, queues full, ack service unavailable): retry,
///   honouring `Retry-After`;
/// - 1–4 (token disabled, required, invalid authorization, invalid token), 7 (incorrect index),
///   10, 11 (data channel missing, invalid), 14 (ACK disabled), 16 (query-string auth
///   disabled): misconfigured: the sink pauses and keeps the batch, as every batch would fail
///   alike;
/// - 5, 6, 12, 13, 15 (no data, invalid data format, event field required or blank, indexed
///   fields): this batch is refused: reject.
///
/// An answer without a known code (a proxy's HTML, an unknown code) is judged by its status
/// alone, as for any HTTP sink.
fn read_answer(answer: &Answer, events: &[StoredEvent]) -> AttemptReport {
    let Some(reply) = reply(&answer.body) else {
        return answer.report();
    };
    let Some(code) = reply.code else {
        return answer.report();
    };
    let ok = (200..300).contains(&answer.status);
    let outcome = match code {
        0 | 17 if ok => return AttemptReport::delivered(Some(answer.status)),
        8 | 9 | 18..=20 => Outcome::Retry {
            after: http::retry_after(&answer.headers),
        },
        1..=4 | 7 | 10 | 11 | 14 | 16 => Outcome::Misconfigured,
        5 | 6 | 12 | 13 | 15 => Outcome::Reject,
        _ => return answer.report(),
    };
    let mut error = format!(
        "HTTP {}: HEC code {code}: {}",
        answer.status,
        reply.text.as_deref().unwrap_or("(no text)")
    );
    if let Some(n) = reply.invalid_event_number {
        error.push_str(&format!(" (invalid-event-number {n}"));
        // HEC counts events from 0 in the order sent: name the event an operator can look up.
        if let Some(event) = usize::try_from(n).ok().and_then(|i| events.get(i)) {
            error.push_str(&format!(": offset {}, id {}", event.offset, event.id));
        }
        error.push(')');
    }
    AttemptReport {
        outcome,
        status: Some(answer.status),
        error: Some(error),
    }
}

/// `{"acks":{"7":true}}` → `Some(true)` for `ack_id` 7; `Some(false)` when not yet indexed (or not
/// mentioned); `None` when the answer is not an ack status at all.
fn acked(body: &[u8], ack_id: u64) -> Option<bool> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let acks = value.get("acks")?.as_object()?;
    Some(acks.get(&ack_id.to_string()).and_then(Value::as_bool).unwrap_or(false))
}

fn prefixed(mut report: AttemptReport, what: &str) -> AttemptReport {
    report.error = Some(format!("{what}: {}", report.error.unwrap_or_default()));
    report
}

fn failure(outcome: Outcome, status: Option<u16>, error: String) -> AttemptReport {
    AttemptReport {
        outcome,
        status,
        error: Some(error),
    }
}

/// A batch the format cannot encode is kept, not dropped: the sink pauses with the cause (a
/// format not built in), and resumes once that is fixed.
fn encode_failure(format: Format, offset: u64, error: &FormatError) -> AttemptReport {
    failure(
        Outcome::Misconfigured,
        None,
        format!("cannot encode event {offset} as `{}`: {error}", format.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn answer(status: u16, body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("9"));
        Answer {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn events() -> Vec<StoredEvent> {
        (1..=3)
            .map(|o| StoredEvent {
                tenant_id: "acme".into(),
                offset: 40 + o,
                id: format!("evt_{o}"),
                event_type: "a.b".into(),
                body: "{}".into(),
                chain: None,
            })
            .collect()
    }

    #[test]
    fn hec_code_table() {
        let retry = Outcome::Retry {
            after: Some(Duration::from_secs(9)),
        };
        let body = |code: i64| format!(r#"{{"text":"t{code}","code":{code}}}"#);
        for (status, code, want) in [
            (200, 0, Outcome::Delivered),
            (200, 17, Outcome::Delivered),
            (403, 1, Outcome::Misconfigured),
            (401, 2, Outcome::Misconfigured),
            (401, 3, Outcome::Misconfigured),
            (403, 4, Outcome::Misconfigured),
            (400, 5, Outcome::Reject),
            (400, 6, Outcome::Reject),
            (400, 7, Outcome::Misconfigured),
            (500, 8, retry.clone()),
            (503, 9, retry.clone()),
            (400, 10, Outcome::Misconfigured),
            (400, 11, Outcome::Misconfigured),
            (400, 12, Outcome::Reject),
            (400, 13, Outcome::Reject),
            (400, 14, Outcome::Misconfigured),
            (400, 15, Outcome::Reject),
            (400, 16, Outcome::Misconfigured),
            (503, 18, retry.clone()),
            (503, 19, retry.clone()),
            (503, 20, retry.clone()),
            // Unknown codes: the status decides.
            (400, 99, Outcome::Reject),
            (503, 99, retry.clone()),
        ] {
            let report = read_answer(&answer(status, &body(code)), &events());
            assert_eq!(report.outcome, want, "HTTP {status} code {code}");
            assert_eq!(report.status, Some(status));
            if want != Outcome::Delivered && code != 99 {
                assert_eq!(
                    report.error.unwrap(),
                    format!("HTTP {status}: HEC code {code}: t{code}")
                );
            }
        }
    }

    #[test]
    fn invalid_event_number_names_the_event() {
        let a = answer(
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":1}"#,
        );
        let report = read_answer(&a, &events());
        assert_eq!(report.outcome, Outcome::Reject);
        assert_eq!(
            report.error.unwrap(),
            "HTTP 400: HEC code 6: Invalid data format (invalid-event-number 1: offset 42, id evt_2)"
        );
    }

    #[test]
    fn answers_without_a_code_fall_back_to_the_status() {
        let r = read_answer(&answer(502, "<html>bad gateway</html>"), &events());
        assert_eq!(
            r.outcome,
            Outcome::Retry {
                after: Some(Duration::from_secs(9))
            }
        );
        assert_eq!(r.error.unwrap(), "HTTP 502: <html>bad gateway</html>");
        assert_eq!(read_answer(&answer(200, ""), &events()).outcome, Outcome::Delivered);
        assert_eq!(
            read_answer(&answer(404, "{}"), &events()).outcome,
            Outcome::Misconfigured
        );
        // Code 0 with a failing status: the status wins.
        assert_eq!(
            read_answer(&answer(500, r#"{"code":0}"#), &events()).outcome,
            Outcome::Retry {
                after: Some(Duration::from_secs(9))
            }
        );
    }

    #[test]
    fn ack_answers() {
        assert_eq!(acked(br#"{"acks":{"7":true}}"#, 7), Some(true));
        assert_eq!(acked(br#"{"acks":{"7":false}}"#, 7), Some(false));
        assert_eq!(acked(br#"{"acks":{}}"#, 7), Some(false));
        assert_eq!(acked(br#"{"acks":{"8":true}}"#, 7), Some(false));
        assert_eq!(acked(br#"{"text":"x"}"#, 7), None);
        assert_eq!(acked(b"nope", 7), None);
    }
}
