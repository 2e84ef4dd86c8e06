//! The `security_lake` sink's `config`: the Security Lake bucket, the custom source's name and
//! account, and the AWS fields every AWS kind takes.

use std::collections::BTreeMap;

use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::{aws_config, AwsSettings};
use crate::http;
use crate::ConfigError;

aws_config! {
    /// `config` of a `security_lake` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "security_lake config", transform = crate::s3::dotted_bucket_rule)]
    pub struct SecurityLakeConfig {
        /// The Security Lake bucket (`aws-security-data-lake-{region}-…`): 3-63 lowercase
        /// letters, digits, `.` and `-`, starting and ending with a letter or digit.
        #[schemars(pattern(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"), extend("not" = {"pattern": "\\.\\."}))]
        pub bucket: String,
        /// Path-style URLs (`{endpoint}/{bucket}/{key}`) instead of virtual-hosted ones; default:
        /// true with `endpoint`, false without.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub path_style: Option<bool>,
        /// The custom source's name as registered in Security Lake (its objects go under
        /// `ext/{source_name}/`).
        #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_:.-]+$"))]
        pub source_name: String,
        /// Another custom source for some OCSF classes, as AWS recommends one source per class:
        /// `{"3002": "auditrelay-auth"}` writes Authentication under `ext/auditrelay-auth/`; the
        /// classes not named here go to `source_name`. Keys: 3001, 3002, 6003.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "class_sources_schema")]
        pub class_sources: Option<BTreeMap<String, String>>,
        /// The AWS account id that owns the data (the `accountId=` partition): 12 digits.
        #[schemars(pattern(r"^[0-9]{12}$"))]
        pub account_id: String,
    }
}

/// The OCSF classes the `ocsf` format writes, as `class_sources` keys.
pub(crate) const CLASSES: &[&str] = &["3001", "3002", "6003"];

const SOURCE_NAME_PATTERN: &str = r"^[A-Za-z0-9_:.-]+$";

fn class_sources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["object", "null"],
        "propertyNames": {"enum": CLASSES},
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SOURCE_NAME_PATTERN},
    })
}

fn valid_source_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b))
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct LakeSettings {
    pub bucket: String,
    pub path_style: bool,
    pub source_name: String,
    /// class_uid → its own source name.
    pub class_sources: BTreeMap<i64, String>,
    pub account_id: String,
    /// `region` and the role; `url` is the S3 endpoint (`https://s3.{region}.amazonaws.com/` by
    /// default), the signing name `s3`.
    pub aws: AwsSettings,
    /// Whether `endpoint` was given (path-style by default then).
    pub custom_endpoint: bool,
    pub options: auditrelay_format::FormatOptions,
}

/// `^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$` without `..`, the schema's rule.
fn valid_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && bytes.first().copied().is_some_and(edge)
        && bytes.last().copied().is_some_and(edge)
        && bytes.iter().all(|&c| edge(c) || c == b'.' || c == b'-')
        && !b.contains("..")
}

impl SecurityLakeConfig {
    /// What the schema says, checked again (a stored definition bypasses the schema), plus the
    /// URLs' syntax.
    pub(crate) fn resolve(&self) -> Result<LakeSettings, ConfigError> {
        if !valid_bucket(&self.bucket) {
            return Err(ConfigError::new(
                "config.bucket",
                "must be an S3 bucket name: 3-63 characters, lowercase letters, digits, `.` and `-`, starting and \
                 ending with a letter or digit",
            ));
        }
        const NAME_RULE: &str =
            "must be a Security Lake custom source name: 1-64 letters, digits, `_`, `:`, `.` and `-`";
        let name = &self.source_name;
        if !valid_source_name(name) {
            return Err(ConfigError::new("config.source_name", NAME_RULE));
        }
        let mut class_sources = BTreeMap::new();
        for (class, source) in self.class_sources.iter().flatten() {
            let field = format!("config.class_sources.{class}");
            let uid = class
                .parse::<i64>()
                .ok()
                .filter(|_| CLASSES.contains(&class.as_str()))
                .ok_or_else(|| {
                    ConfigError::new(
                        &field,
                        format!("must be an OCSF class this sink writes: {}", CLASSES.join(", ")),
                    )
                })?;
            if !valid_source_name(source) {
                return Err(ConfigError::new(&field, NAME_RULE));
            }
            class_sources.insert(uid, source.clone());
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new(
                "config.account_id",
                "must be a 12-digit AWS account id",
            ));
        }
        let aws = self.aws_fields().resolve("s3")?;
        let custom_endpoint = self.endpoint.is_some();
        let path_style = self.path_style.unwrap_or(custom_endpoint);
        // A dotted bucket breaks the TLS wildcard certificate of virtual-hosted AWS hosts.
        if !path_style && !custom_endpoint && self.bucket.contains('.') {
            return Err(ConfigError::new(
                "config.path_style",
                "a bucket name with `.` needs `path_style: true` over HTTPS",
            ));
        }
        Ok(LakeSettings {
            bucket: self.bucket.clone(),
            path_style,
            source_name: name.clone(),
            class_sources,
            account_id: self.account_id.clone(),
            aws,
            custom_endpoint,
            options: self.format_options()?,
        })
    }
}

impl LakeSettings {
    /// The custom source that takes `class_uid`'s objects.
    pub(crate) fn source_for(&self, class_uid: i64) -> &str {
        self.class_sources.get(&class_uid).unwrap_or(&self.source_name)
    }

    /// The URL every object's URL starts with (ends with `/`).
    pub(crate) fn bucket_url(&self) -> Result<Url, ConfigError> {
        let base = &self.aws.url;
        let raw = if self.path_style {
            format!("{}/{}/", base.as_str().trim_end_matches('/'), self.bucket)
        } else if self.custom_endpoint {
            let mut url = base.clone();
            let host = format!("{}.{}", self.bucket, base.host_str().unwrap_or_default());
            url.set_host(Some(&host))
                .map_err(|e| ConfigError::new("config.endpoint", format!("bucket host `{host}`: {e}")))?;
            format!("{}/", url.as_str().trim_end_matches('/'))
        } else {
            format!("https://{}.s3.{}.amazonaws.com/", self.bucket, self.aws.region)
        };
        http::parse_url(&raw, "config.endpoint")
    }

    /// The URL of an object whose key is already percent-encoded per segment.
    pub(crate) fn object_url(&self, encoded_key: &str) -> Result<Url, ConfigError> {
        let raw = format!("{}{encoded_key}", self.bucket_url()?);
        http::parse_url(&raw, "config.endpoint")
    }
}

pub(crate) fn parse(config: &Value) -> Result<LakeSettings, ConfigError> {
    crate::typed::parse_config::<SecurityLakeConfig>(config)?.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"bucket": "aws-security-data-lake-eu-west-1-abc", "region": "eu-west-1",
               "source_name": "auditrelay", "account_id": "123456789012"})
    }

    #[test]
    fn urls_and_errors() {
        let s = parse(&base()).unwrap();
        assert!(!s.path_style);
        assert_eq!(
            s.object_url("ext/a.parquet").unwrap().as_str(),
            "https://aws-security-data-lake-eu-west-1-abc.s3.eu-west-1.amazonaws.com/ext/a.parquet"
        );
        let mut c = base();
        c["endpoint"] = json!("http://127.0.0.1:9000");
        let s = parse(&c).unwrap();
        assert_eq!(
            s.object_url("k").unwrap().as_str(),
            "http://127.0.0.1:9000/aws-security-data-lake-eu-west-1-abc/k"
        );
        c["endpoint"] = json!("http://s3.local:9000/");
        c["path_style"] = json!(false);
        assert_eq!(
            parse(&c).unwrap().object_url("k").unwrap().as_str(),
            "http://aws-security-data-lake-eu-west-1-abc.s3.local:9000/k"
        );
        let field = |patch: Value| {
            let mut c = base();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            parse(&c).unwrap_err().field
        };
        assert_eq!(field(json!({"bucket": "A"})), "config.bucket");
        assert_eq!(field(json!({"bucket": "a..b"})), "config.bucket");
        assert_eq!(field(json!({"source_name": "a/b"})), "config.source_name");
        assert_eq!(field(json!({"source_name": ""})), "config.source_name");
        assert_eq!(field(json!({"account_id": "12345"})), "config.account_id");
        assert_eq!(field(json!({"bucket": "a.b.c"})), "config.path_style");
        assert_eq!(field(json!({"region": "EU"})), "config.region");
        assert_eq!(field(json!({"prefix": "x"})), "config.prefix");
        assert_eq!(field(json!({"external_id": "x1"})), "config.external_id");
        assert_eq!(
            field(json!({"class_sources": {"4001": "net"}})),
            "config.class_sources.4001"
        );
        assert_eq!(
            field(json!({"class_sources": {"3002": "a b"}})),
            "config.class_sources.3002"
        );
        let mut c = base();
        c["class_sources"] = json!({"3002": "auditrelay-auth"});
        let s = parse(&c).unwrap();
        assert_eq!(
            (s.source_for(3002), s.source_for(6003)),
            ("auditrelay-auth", "auditrelay")
        );
    }
}
