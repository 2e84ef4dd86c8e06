//! Delivering one batch as one S3 object, and reading S3's XML error codes.

use std::fmt;

use async_trait::async_trait;
use auditrelay_format::Format;
use jiff::Timestamp;
use serde_json::Value;

use super::config::{parse_config, parse_credentials, Credentials, S3Settings};
use super::request::{request, RequestError};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// How much of an error answer is read: S3's XML errors are a few hundred bytes.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A ready-to-send S3 sink. Debug output shows the bucket and endpoint, never the secret.
pub struct S3Sink {
    cfg: S3Settings,
    creds: Credentials,
    format: Format,
    client: reqwest::Client,
    env: SinkEnv,
}

impl fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink")
            .field("bucket", &self.cfg.bucket)
            .field("endpoint", &self.cfg.endpoint.as_ref().map(|u| u.as_str()))
            .field("format", &self.format.name())
            .finish_non_exhaustive()
    }
}

impl S3Sink {
    /// Builds the sink. No network here: the save-time SSRF check ran in [`super::validate`];
    /// send-time checks run on every delivery.
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        let allowed = crate::kind_spec("s3").map_or(&[][..], |k| k.formats);
        if !allowed.contains(&format.name()) {
            return Err(ConfigError::new(
                "format",
                format!("`s3` sinks send {}, not `{}`", allowed.join(", "), format.name()),
            ));
        }
        let cfg = parse_config(config)?;
        let creds = parse_credentials(secrets)?;
        let client = http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
        Ok(S3Sink {
            cfg,
            creds,
            format,
            client,
            env: env.clone(),
        })
    }
}

/// The `<Code>` of an S3 XML error body, if any.
pub(crate) fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// S3's codes where they say more than the status: credentials, a missing bucket or a wrong
/// region pause the sink whatever the status; throttling and S3's internal errors are retried.
/// Everything else follows the shared HTTP table.
pub(crate) fn classify(status: u16, code: Option<&str>, headers: &reqwest::header::HeaderMap) -> Outcome {
    match code {
        Some(
            "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "AccessDenied"
            | "NoSuchBucket"
            | "InvalidBucketName"
            | "AuthorizationHeaderMalformed"
            | "PermanentRedirect"
            | "AllAccessDisabled"
            | "AccountProblem",
        ) => Outcome::Misconfigured,
        Some("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout") => Outcome::Retry {
            after: http::retry_after(headers),
        },
        _ => http::classify(status, headers),
    }
}

#[async_trait]
impl Sink for S3Sink {
    /// One `PUT` of the whole batch. Delivered only on a 2xx; the key depends on the batch alone,
    /// so the retry of a batch S3 stored but whose answer was lost overwrites the same object.
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        let wire = match request(
            &self.cfg,
            &self.creds,
            self.format,
            batch.tenant_id,
            batch.events,
            Timestamp::now(),
        ) {
            Ok(wire) => wire,
            Err(e @ RequestError::Compress(_)) => {
                return AttemptReport {
                    outcome: Outcome::Retry { after: None },
                    status: None,
                    error: Some(e.to_string()),
                }
            }
            // A batch that cannot become an object is kept, not dropped: pause with the cause.
            Err(e) => {
                return AttemptReport {
                    outcome: Outcome::Misconfigured,
                    status: None,
                    error: Some(e.to_string()),
                }
            }
        };
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        if let Err(message) = http::check_url_literal(&wire.url, &self.env) {
            return AttemptReport {
                outcome: Outcome::Misconfigured,
                status: None,
                error: Some(message),
            };
        }
        let mut builder = self.client.put(wire.url);
        for (name, value) in wire.headers {
            builder = builder.header(name, value);
        }
        let answer = match http::exchange(builder.body(wire.body), ERROR_BODY_LIMIT).await {
            Ok(answer) => answer,
            Err(report) => return report,
        };
        if (200..300).contains(&answer.status) {
            return AttemptReport::delivered(Some(answer.status));
        }
        let code = error_code(&answer.body);
        let mut report = answer.report();
        report.outcome = classify(answer.status, code, &answer.headers);
        let code = code.map(|c| format!(" {c}")).unwrap_or_default();
        report.error = Some(format!(
            "PUT s3://{}/{} answered HTTP {}{code}: {}",
            self.cfg.bucket,
            wire.key,
            answer.status,
            answer.snippet()
        ));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn s3_codes() {
        let h = HeaderMap::new();
        let xml = |code: &str| format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>");
        let c = |status: u16, code: &str| classify(status, error_code(xml(code).as_bytes()), &h);
        assert_eq!(c(403, "SignatureDoesNotMatch"), Outcome::Misconfigured);
        assert_eq!(c(403, "InvalidAccessKeyId"), Outcome::Misconfigured);
        assert_eq!(c(404, "NoSuchBucket"), Outcome::Misconfigured);
        assert_eq!(c(400, "AuthorizationHeaderMalformed"), Outcome::Misconfigured);
        assert_eq!(c(301, "PermanentRedirect"), Outcome::Misconfigured);
        assert_eq!(c(503, "SlowDown"), Outcome::Retry { after: None });
        assert_eq!(c(400, "RequestTimeout"), Outcome::Retry { after: None });
        assert_eq!(c(400, "EntityTooLarge"), Outcome::Reject);
        assert_eq!(classify(503, None, &h), Outcome::Retry { after: None });
        assert_eq!(
            classify(500, error_code(b"not xml"), &h),
            Outcome::Retry { after: None }
        );
    }
}
