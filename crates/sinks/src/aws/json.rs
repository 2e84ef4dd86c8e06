//! One AWS JSON 1.1 call (`POST /`, `X-Amz-Target: Service.Operation`), signed, with the answer
//! classified.

use std::fmt;
use std::time::SystemTime;

use serde_json::Value;

use super::classify::{classify, error_code, is_expired_token};
use super::sign::{sign, Unsigned};
use super::{AwsSettings, CredentialSource};
use crate::http;
use crate::{AttemptReport, Outcome, SinkEnv};

/// How much of an answer is read: a `PutRecords` answer for 500 records is ~60 KiB.
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// A signed JSON 1.1 client for one service, shared by a sink's lanes.
pub(crate) struct JsonClient {
    pub settings: AwsSettings,
    pub credentials: CredentialSource,
    pub http: reqwest::Client,
    pub env: SinkEnv,
}

impl fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonClient")
            .field("url", &self.settings.url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A failed call: the report for the engine, and the service's error code when it gave one.
#[derive(Debug)]
pub(crate) struct CallError {
    pub report: AttemptReport,
    pub code: Option<String>,
}

impl From<AttemptReport> for CallError {
    fn from(report: AttemptReport) -> Self {
        CallError { report, code: None }
    }
}

impl JsonClient {
    /// Calls `target` (`Kinesis_20131202.PutRecords`) with `body`; the answer's JSON on a 2xx.
    pub(crate) async fn call(&self, target: &str, body: Vec<u8>) -> Result<Value, CallError> {
        let keys = self.credentials.get(&self.http, &self.env).await?;
        let url = &self.settings.url;
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(url, &self.env) {
            return Err(AttemptReport::failed(Outcome::Misconfigured, message).into());
        }
        let content_type = "application/x-amz-json-1.1";
        let signed = sign(
            &Unsigned {
                method: "POST",
                url,
                headers: &[("content-type", content_type), ("x-amz-target", target)],
                body: &body,
            },
            &keys,
            &self.settings.region,
            self.settings.service,
            SystemTime::now(),
        )
        .map_err(|e| AttemptReport::failed(Outcome::Misconfigured, e))?;
        let mut request = self
            .http
            .post(url.clone())
            .header("content-type", content_type)
            .header("x-amz-target", target);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let answer = http::exchange(request.body(body), ANSWER_LIMIT).await?;
        let scrub = |text: &str| self.credentials.scrub(&keys.scrub(text));
        let operation = target.rsplit('.').next().unwrap_or(target);
        if (200..300).contains(&answer.status) {
            return serde_json::from_slice(&answer.body).map_err(|e| {
                // Which records were taken is unknown: the whole call goes again.
                CallError::from(AttemptReport {
                    outcome: Outcome::Retry { after: None },
                    status: Some(answer.status),
                    error: Some(format!(
                        "{operation} answered HTTP {} with unreadable JSON: {e}",
                        answer.status
                    )),
                })
            });
        }
        let (code, message) = error_code(&answer.body, &answer.headers);
        let mut outcome = classify(answer.status, code.as_deref(), &answer.headers);
        if is_expired_token(code.as_deref()) {
            self.credentials.invalidate(&keys).await;
            outcome = Outcome::Retry { after: None };
        }
        let detail = message.unwrap_or_else(|| answer.snippet());
        let error = format!(
            "{operation} at {} answered HTTP {} {}: {detail}",
            http::url_target(url),
            answer.status,
            code.as_deref().unwrap_or("")
        );
        Err(CallError {
            report: AttemptReport {
                outcome,
                status: Some(answer.status),
                error: Some(scrub(&error)),
            },
            code,
        })
    }
}
