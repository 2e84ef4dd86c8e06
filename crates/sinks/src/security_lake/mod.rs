//! The `security_lake` sink: Amazon Security Lake's custom-source layout in its S3 bucket. Each
//! batch becomes Apache Parquet objects, one per OCSF class (and event day), under
//! `ext/{source_name}/region={region}/accountId={account_id}/eventDay={YYYYMMDD}/`, named from the
//! batch (tenant, class, first and last offset) so a retry overwrites instead of adding a copy.
//! Records are the `ocsf` format's; columns are fixed per class ([`schema`]), arrays are Parquet
//! `LIST`s, open-ended objects JSON text. Objects are `PUT` with the S3 API, signed by the shared
//! AWS code (static keys or AssumeRole with an external id).

mod columns;
mod config;
mod object;
mod schema;
mod sink;

use std::sync::Arc;

use auditrelay_format::Format;
use serde_json::Value;

pub use config::SecurityLakeConfig;
pub use sink::{SecurityLakeSink, CONTENT_TYPE};

use crate::aws::{self, CredentialSource};
use crate::{ConfigError, KindBatch, Secrets, Sink, SinkEnv};

/// Default batching: Security Lake prefers few large objects (its guidance is objects of tens of
/// MiB or more, at most every few minutes), so up to 64 MiB of events or 5 minutes.
pub const LAKE_BATCH: KindBatch = KindBatch {
    max_events: 10_000,
    max_bytes: 64 * 1024 * 1024,
    flush_interval_ms: 5 * 60 * 1000,
};

/// Save-time validation: the bucket's and STS's endpoints against the SSRF policy, and the
/// credentials.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let cfg = config::parse(config)?;
    let bucket = cfg.bucket_url()?;
    crate::http::check_url(bucket.as_str(), "config.endpoint", env).await?;
    if let Some(role) = &cfg.aws.role {
        crate::http::check_url(role.sts_url.as_str(), "config.sts_endpoint", env).await?;
    }
    aws::credentials::static_keys(secrets)?;
    Ok(Secrets::new())
}

/// Builds a ready-to-send sink from a validated definition.
pub fn build(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Arc<dyn Sink>, ConfigError> {
    if format != Format::Ocsf {
        return Err(ConfigError::new(
            "format",
            format!("`security_lake` sinks send `ocsf`, not `{}`", format.name()),
        ));
    }
    let cfg = config::parse(config)?;
    let keys = aws::credentials::static_keys(secrets)?;
    let http = crate::http::client(env).map_err(|e| ConfigError::new("kind", e.to_string()))?;
    let credentials = CredentialSource::new(
        keys,
        cfg.aws.role.clone(),
        &cfg.aws.region,
        &format!("auditrelay-security-lake-{}", cfg.source_name),
    );
    Ok(Arc::new(SecurityLakeSink {
        cfg,
        credentials,
        http,
        env: env.clone(),
    }))
}

impl crate::KindConfig for SecurityLakeConfig {
    const SPEC: crate::KindSpec = crate::KindSpec {
        kind: "security_lake",
        formats: &["ocsf"],
        secrets: aws::SECRETS,
        rotating_secrets: &[],
    };
    const DEFAULT_BATCH: Option<KindBatch> = Some(LAKE_BATCH);

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}
