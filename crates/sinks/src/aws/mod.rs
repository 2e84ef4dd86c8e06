//! What the AWS sink kinds (`cloudwatch_logs`, `kinesis`, `firehose`, `eventbridge`; also
//! `security_lake`, and `s3` for signing only) share:
//! the common `config` fields and their checks ([`config`]), credentials — static keys or STS
//! AssumeRole, cached until shortly before they expire ([`credentials`], [`sts`]) — request
//! signing with the maintained `aws-sigv4` crate ([`sign`]), one AWS JSON 1.1 call
//! (`X-Amz-Target`) with the service's errors classified ([`json`], [`classify`]), and sending a
//! batch as calls within a service's limits, retrying only the records that failed ([`batch`]).
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
pub(crate) mod template;

pub(crate) use config::{aws_config, AwsFields, AwsSettings, SECRETS};
pub use config::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN};
pub(crate) use credentials::{CredentialSource, Keys};

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
