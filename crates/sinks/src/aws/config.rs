//! The `config` fields every AWS kind takes (`region`, `endpoint`, `role_arn`, `external_id`,
//! `sts_endpoint`) and the secrets (`access_key_id`, `secret_access_key`, `session_token`).

use reqwest::Url;

use crate::http;
use crate::{ConfigError, SecretSpec, SinkEnv};

/// The access key id secret (`AKIA…`, `ASIA…`).
pub const ACCESS_KEY_ID: &str = "access_key_id";
/// The secret access key; only ever HMAC key material.
pub const SECRET_ACCESS_KEY: &str = "secret_access_key";
/// A session token that goes with temporary keys.
pub const SESSION_TOKEN: &str = "session_token";

/// The secrets of every AWS kind.
pub(crate) const SECRETS: &[SecretSpec] = &[
    SecretSpec::optional(
        ACCESS_KEY_ID,
        "with `secret_access_key`; without both, the server's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (with `role_arn`: the keys that assume the role)",
    ),
    SecretSpec::optional(SECRET_ACCESS_KEY, "with `access_key_id`"),
    SecretSpec::optional(SESSION_TOKEN, "for temporary keys (`ASIA…`), with both keys"),
];

/// Defines a kind's config struct: its own fields, then the AWS fields, then the format options.
macro_rules! aws_config {
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($fields:tt)* }) => {
        crate::typed::with_format_options! {
            $(#[$attr])*
            #[schemars(transform = crate::aws::config::role_rule)]
            $vis struct $name {
                $($fields)*
                /// The AWS region, e.g. `eu-west-1` (it is part of every signature).
                #[schemars(pattern(r"^[a-z0-9-]{1,64}$"))]
                pub region: String,
                /// The service's endpoint instead of AWS's own (a VPC endpoint, FIPS, a local test
                /// server): a base URL without query or fragment.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(schema_with = "crate::typed::opt_url_schema")]
                pub endpoint: Option<String>,
                /// An IAM role to assume with STS `AssumeRole` (using the keys in `secrets`, or the
                /// server's environment); its temporary credentials are cached until shortly before
                /// they expire.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(length(min = 20, max = 2048), pattern(r"^arn:[a-z0-9-]+:iam::[0-9]{12}:role/[!-~]+$"))]
                pub role_arn: Option<String>,
                /// The external id the role's trust policy requires (only with `role_arn`).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(length(min = 2, max = 1224), pattern(r"^[\w+=,.@:/-]+$"))]
                pub external_id: Option<String>,
                /// STS's endpoint (only with `role_arn`; default `https://sts.{region}.amazonaws.com`).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(schema_with = "crate::typed::opt_url_schema")]
                pub sts_endpoint: Option<String>,
            }
        }

        impl $name {
            /// The AWS fields, for [`crate::aws::AwsFields::resolve`].
            pub(crate) fn aws_fields(&self) -> crate::aws::AwsFields<'_> {
                crate::aws::AwsFields {
                    region: &self.region,
                    endpoint: self.endpoint.as_deref(),
                    role_arn: self.role_arn.as_deref(),
                    external_id: self.external_id.as_deref(),
                    sts_endpoint: self.sts_endpoint.as_deref(),
                }
            }
        }
    };
}
pub(crate) use aws_config;

/// `external_id` and `sts_endpoint` only with `role_arn`.
pub(crate) fn role_rule(schema: &mut schemars::Schema) {
    crate::typed::add_rule(
        schema,
        serde_json::json!({
            "if": {"properties": {"role_arn": {"type": "string"}}, "required": ["role_arn"]},
            "else": {"properties": {"external_id": {"type": "null"}, "sts_endpoint": {"type": "null"}}},
        }),
    );
}

/// `^arn:[a-z0-9-]+:iam::[0-9]{12}:role/[!-~]+$`, the schema's pattern.
fn valid_role_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("iam::") else {
        return false;
    };
    let (account, rest) = rest.split_at_checked(12).unwrap_or(("", ""));
    let Some(role) = rest.strip_prefix(":role/") else {
        return false;
    };
    (20..=2048).contains(&arn.len())
        && !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.bytes().all(|b| b.is_ascii_digit())
        && !role.is_empty()
        && role.bytes().all(|b| b.is_ascii_graphic())
}

/// The AWS fields of a config, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AwsFields<'a> {
    pub region: &'a str,
    pub endpoint: Option<&'a str>,
    pub role_arn: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub sts_endpoint: Option<&'a str>,
}

/// The role to assume.
#[derive(Debug, Clone)]
pub(crate) struct RoleSettings {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub sts_url: Url,
}

/// The checked AWS fields of one kind.
#[derive(Debug, Clone)]
pub(crate) struct AwsSettings {
    pub region: String,
    /// Where requests go (`https://{service}.{region}.amazonaws.com/` by default).
    pub url: Url,
    /// The SigV4 signing name (`logs`, `kinesis`, `firehose`, `events`).
    pub service: &'static str,
    pub role: Option<RoleSettings>,
}

fn endpoint_url(raw: &str, field: &str) -> Result<Url, ConfigError> {
    let url = http::parse_url(raw, field)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(field, "must have no query or fragment"));
    }
    Ok(url)
}

impl AwsFields<'_> {
    /// What the schema cannot say: URL syntax, the role fields together.
    pub(crate) fn resolve(&self, service: &'static str) -> Result<AwsSettings, ConfigError> {
        let region = self.region;
        if region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::new(
                "config.region",
                "must be a region name such as eu-west-1 (lowercase letters, digits, `-`)",
            ));
        }
        let url = match self.endpoint {
            Some(raw) => endpoint_url(raw, "config.endpoint")?,
            None => endpoint_url(&format!("https://{service}.{region}.amazonaws.com/"), "config.region")?,
        };
        let role = match self.role_arn {
            None => {
                for (field, set) in [
                    ("config.external_id", self.external_id.is_some()),
                    ("config.sts_endpoint", self.sts_endpoint.is_some()),
                ] {
                    if set {
                        return Err(ConfigError::new(field, "only with `role_arn`"));
                    }
                }
                None
            }
            Some(arn) => {
                if !valid_role_arn(arn) {
                    return Err(ConfigError::new(
                        "config.role_arn",
                        "must be an IAM role ARN such as arn:aws:iam::123456789012:role/auditrelay",
                    ));
                }
                if let Some(id) = self.external_id {
                    let ok = (2..=1224).contains(&id.len())
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
                    if !ok {
                        return Err(ConfigError::new(
                            "config.external_id",
                            "must be 2-1224 characters: letters, digits and _+=,.@:/-",
                        ));
                    }
                }
                let sts_url = match self.sts_endpoint {
                    Some(raw) => endpoint_url(raw, "config.sts_endpoint")?,
                    None => endpoint_url(&format!("https://sts.{region}.amazonaws.com/"), "config.region")?,
                };
                Some(RoleSettings {
                    role_arn: arn.to_owned(),
                    external_id: self.external_id.map(str::to_owned),
                    sts_url,
                })
            }
        };
        Ok(AwsSettings {
            region: region.to_owned(),
            url,
            service,
            role,
        })
    }
}

impl AwsSettings {
    /// Save-time SSRF check of every endpoint the sink will call.
    pub(crate) async fn check_endpoints(&self, env: &SinkEnv) -> Result<(), ConfigError> {
        http::check_url(self.url.as_str(), "config.endpoint", env).await?;
        if let Some(role) = &self.role {
            http::check_url(role.sts_url.as_str(), "config.sts_endpoint", env).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(region: &'a str) -> AwsFields<'a> {
        AwsFields {
            region,
            endpoint: None,
            role_arn: None,
            external_id: None,
            sts_endpoint: None,
        }
    }

    #[test]
    fn defaults_and_errors() {
        let s = fields("eu-west-1").resolve("kinesis").unwrap();
        assert_eq!(s.url.as_str(), "https://kinesis.eu-west-1.amazonaws.com/");
        assert!(s.role.is_none());
        assert_eq!(fields("EU").resolve("logs").unwrap_err().field, "config.region");
        let mut f = fields("us-east-1");
        f.external_id = Some("x1");
        assert_eq!(f.resolve("logs").unwrap_err().field, "config.external_id");
        f.role_arn = Some("arn:aws:iam::123456789012:role/auditrelay");
        let s = f.resolve("logs").unwrap();
        let role = s.role.unwrap();
        assert_eq!(role.sts_url.as_str(), "https://sts.us-east-1.amazonaws.com/");
        assert_eq!(role.external_id.as_deref(), Some("x1"));
        f.role_arn = Some("arn:aws:iam::1234:role/x");
        assert_eq!(f.resolve("logs").unwrap_err().field, "config.role_arn");
        f.role_arn = Some("arn:aws:iam::123456789012:role/auditrelay");
        f.external_id = Some("bad id");
        assert_eq!(f.resolve("logs").unwrap_err().field, "config.external_id");
        f.external_id = None;
        f.endpoint = Some("http://127.0.0.1:5000/?x=1");
        assert_eq!(f.resolve("logs").unwrap_err().field, "config.endpoint");
    }
}
