//! Delivering one batch: its Parquet objects, each `PUT` to the Security Lake bucket with the S3
//! API, signed with SigV4 (`aws-sigv4`); the answer classified with the AWS table.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use super::config::LakeSettings;
use super::object::{objects, LakeObject};
use crate::aws::classify::{classify, error_code, is_expired_token};
use crate::aws::sign::{s3_key_path, sign_s3, Unsigned};
use crate::aws::{CredentialSource, Keys};
use crate::http;
use crate::{AttemptReport, Batch, Outcome, Sink, SinkEnv};

/// How much of an error answer is read: S3's XML errors are a few hundred bytes.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Parquet's media type (registered with IANA as `application/vnd.apache.parquet`).
pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// A ready-to-send `security_lake` sink. Debug shows the bucket and source, never a secret.
pub struct SecurityLakeSink {
    pub(crate) cfg: LakeSettings,
    pub(crate) credentials: CredentialSource,
    pub(crate) http: reqwest::Client,
    pub(crate) env: SinkEnv,
}

impl fmt::Debug for SecurityLakeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityLakeSink")
            .field("bucket", &self.cfg.bucket)
            .field("source_name", &self.cfg.source_name)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl SecurityLakeSink {
    /// One signed `PUT`; `Ok` on a 2xx.
    async fn put(&self, object: &LakeObject, keys: &Keys) -> Result<u16, AttemptReport> {
        let url = self
            .cfg
            .object_url(&s3_key_path(&object.key))
            .map_err(|e| AttemptReport::failed(Outcome::Misconfigured, e.to_string()))?;
        // reqwest connects to IP-literal hosts without asking the guarding resolver.
        http::check_url_literal(&url, &self.env).map_err(|m| AttemptReport::failed(Outcome::Misconfigured, m))?;
        let signed = sign_s3(
            &Unsigned {
                method: "PUT",
                url: &url,
                headers: &[("content-type", CONTENT_TYPE)],
                body: &object.body,
            },
            keys,
            &self.cfg.aws.region,
            SystemTime::now(),
        )
        .map_err(|e| AttemptReport::failed(Outcome::Misconfigured, e))?;
        let mut request = self.http.put(url).header("content-type", CONTENT_TYPE);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let answer = http::exchange(request.body(object.body.clone()), ERROR_BODY_LIMIT).await?;
        if (200..300).contains(&answer.status) {
            tracing::debug!(
                key = %object.key,
                class_uid = object.class_uid,
                rows = object.rows,
                bytes = object.body.len(),
                "security_lake object stored"
            );
            return Ok(answer.status);
        }
        let (code, message) = error_code(&answer.body, &answer.headers);
        let mut outcome = classify(answer.status, code.as_deref(), &answer.headers);
        if is_expired_token(code.as_deref()) {
            self.credentials.invalidate(keys).await;
            outcome = Outcome::Retry { after: None };
        }
        let detail = message.unwrap_or_else(|| answer.snippet());
        let error = format!(
            "PUT s3://{}/{} answered HTTP {} {}: {detail}",
            self.cfg.bucket,
            object.key,
            answer.status,
            code.as_deref().unwrap_or("")
        );
        Err(AttemptReport {
            outcome,
            status: Some(answer.status),
            error: Some(self.credentials.scrub(&keys.scrub(&error))),
        })
    }
}

#[async_trait]
impl Sink for SecurityLakeSink {
    /// Every object of the batch, one `PUT` after the other. Delivered only when all were
    /// stored; a retry writes every object again under the same keys (overwriting, never adding).
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        if batch.events.is_empty() {
            return AttemptReport::delivered(None);
        }
        // A batch that cannot become Parquet is kept, not dropped: pause with the cause.
        let objects = match objects(&self.cfg, &self.cfg.options, batch.tenant_id, batch.events) {
            Ok(objects) => objects,
            Err(e) => return AttemptReport::failed(Outcome::Misconfigured, e.to_string()),
        };
        let keys = match self.credentials.get(&self.http, &self.env).await {
            Ok(keys) => keys,
            Err(report) => return report,
        };
        let mut status = None;
        for object in &objects {
            match self.put(object, &keys).await {
                Ok(s) => status = Some(s),
                Err(report) => return report,
            }
        }
        AttemptReport::delivered(status)
    }
}
