//! What the AWS sink kinds (`cloudwatch_logs`, `kinesis`, `firehose`, `eventbridge`; also
//! `security_lake`, and `s3` for signing only) share:
//! the common `config` fields and their checks ([`config`]), credentials — static keys or STS
//! AssumeRole, cached until shortly before they expire ([`credentials`], [`sts`]) — request
//! signing with the maintained `aws-sigv4` crate ([`sign`]), one AWS JSON 1.1 call
//! (`X-Amz-Target`) with the service's errors classified ([`json`], [`classify`]), and, for the
//! record APIs, a kind's whole `validate` and `build` and sending a batch as calls within the
//! service's limits, retrying only the records that failed ([`records`]).
//!
//! Every endpoint (the service's and STS's) passes the SSRF guard: at save time in `validate`,
//! at send time through the guarded client and the literal-address check.

pub(crate) mod classify;
pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod json;
pub(crate) mod records;
pub(crate) mod sign;
pub(crate) mod sts;

pub(crate) use config::{aws_config, AwsFields, AwsSettings, SECRETS};
pub use config::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN};
pub(crate) use credentials::{CredentialSource, Keys};

/// The formats an AWS kind carrying each event as an opaque record can send (`cloudwatch_logs`,
/// `kinesis`, `firehose`; EventBridge narrows them, its `detail` being a JSON object).
pub(crate) const RECORD_FORMATS: &[&str] = &["json", "ocsf", "cef", "leef", "raw"];

/// What an AWS kind accepts: `formats`, the AWS keys as its secrets, and no secret that rotates
/// (keys are replaced, not rotated alongside).
pub(crate) const fn kind_spec(kind: &'static str, formats: &'static [&'static str]) -> crate::KindSpec {
    crate::KindSpec {
        kind,
        formats,
        secrets: SECRETS,
        rotating_secrets: &[],
    }
}

/// Save-time validation of an AWS kind: its endpoints (the service's and STS's) against the
/// SSRF policy, and the static keys if given. Generates no secrets.
pub(crate) async fn validate(
    settings: &AwsSettings,
    secrets: &crate::Secrets,
    env: &crate::SinkEnv,
) -> Result<crate::Secrets, crate::ConfigError> {
    settings.check_endpoints(env).await?;
    credentials::static_keys(secrets)?;
    Ok(crate::Secrets::new())
}

/// The signed client of a sink: static keys from `secrets` (or the environment), the role to
/// assume if any, the guarded HTTP client.
pub(crate) fn build_client(
    settings: AwsSettings,
    secrets: &crate::Secrets,
    env: &crate::SinkEnv,
    kind: &str,
) -> Result<json::JsonClient, crate::ConfigError> {
    let keys = credentials::static_keys(secrets)?;
    let http = crate::http::client(env).map_err(|e| crate::ConfigError::new("kind", e.to_string()))?;
    let credentials = CredentialSource::new(
        keys,
        settings.role.clone(),
        &settings.region,
        &format!("auditrelay-{kind}"),
    );
    Ok(json::JsonClient {
        settings,
        credentials,
        http,
        env: env.clone(),
    })
}
