//! The `s3` sink's `config` and `secrets`: parsing and save-time validation.

use std::fmt;

use auditrelay_format::FormatOptions;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http;
use crate::{ConfigError, Secrets, SinkEnv};

/// The access key id secret (`AKIA…`).
pub const ACCESS_KEY_ID: &str = "access_key_id";
/// The secret access key secret; only ever used as HMAC key material.
pub const SECRET_ACCESS_KEY: &str = "secret_access_key";
/// The region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The key layout when none is configured: Hive-style partitions (`tenant=`, `date=`) that
/// Athena, Glue and Spark pick up as columns, and the batch's offset range as the file name.
pub const DEFAULT_KEY_TEMPLATE: &str = "tenant={tenant}/date={date}/{first:09}-{last:09}.jsonl{ext}";

/// S3's limit on a key's length in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// How each object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The file extension the `{ext}` placeholder renders to.
    pub(crate) fn ext(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
}

/// One piece of a parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Tenant,
    Date,
    /// `{first}` / `{first:0N}`: the batch's first offset, zero-padded to N digits.
    First(usize),
    Last(usize),
    Ext,
}

crate::typed::with_format_options! {
    /// `config` of an `s3` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "s3 config", transform = dotted_bucket_rule)]
    pub struct S3Config {
        /// The bucket: 3-63 lowercase letters, digits, `.` and `-`, starting and ending with a letter
        /// or digit.
        #[schemars(pattern(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"), extend("not" = {"pattern": "\\.\\."}))]
        pub bucket: String,
        /// The AWS region (default `us-east-1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(pattern(r"^[a-z0-9-]{1,64}$"), extend("default" = DEFAULT_REGION))]
        pub region: Option<String>,
        /// An S3-compatible endpoint instead of AWS (MinIO, a proxy): a base URL without query or fragment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::typed::opt_url_schema")]
        pub endpoint: Option<String>,
        /// Path-style URLs (`{endpoint}/{bucket}/{key}`) instead of virtual-hosted ones; default: true
        /// with `endpoint`, false without. A bucket name with `.` needs it on AWS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub path_style: Option<bool>,
        /// The object key: `{tenant}`, `{date}`, `{first}`, `{last}` (offsets, optionally zero-padded as
        /// `{first:09}`) and `{ext}`; `{tenant}` and `{first}` are required so no two batches share a key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "key_template_schema")]
        pub key_template: Option<String>,
        /// `gzip` (default), `zstd` or `none`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("default" = "gzip"))]
        pub compression: Option<Compression>,
    }
}

/// A dotted bucket on AWS itself (no `endpoint`) needs `path_style: true`.
pub(crate) fn dotted_bucket_rule(schema: &mut schemars::Schema) {
    crate::typed::add_rule(
        schema,
        serde_json::json!({
            "if": {
                "required": ["bucket"],
                "properties": {"bucket": {"type": "string", "pattern": "\\."}, "endpoint": {"type": "null"}},
            },
            "then": {"required": ["path_style"], "properties": {"path_style": {"const": true}}},
        }),
    );
}

fn key_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // A piece is a character other than `{`, `}`, `/`, or a placeholder. A path segment is one
    // or more pieces, but not `.` or `..`.
    let placeholder = r"\{(tenant|date|ext|first|last)\}|\{(first|last):0\+?0*([1-9]|1[0-9]|20)\}";
    let piece = format!("([^{{}}/]|{placeholder})");
    let not_dot = format!("([^{{}}/.]|{placeholder})");
    let segment = format!("({piece}*{not_dot}{piece}*|\\.\\.\\.+)");
    schemars::json_schema!({
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 512,
        "pattern": format!("^{segment}(/{segment})*$"),
        "allOf": [{"pattern": r"\{tenant\}"}, {"pattern": r"\{first[}:]"}],
        "default": DEFAULT_KEY_TEMPLATE,
    })
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// `None`: AWS itself (`https://{bucket}.s3.{region}.amazonaws.com` or path-style
    /// `https://s3.{region}.amazonaws.com/{bucket}`).
    pub endpoint: Option<Url>,
    pub path_style: bool,
    pub key_template: Vec<Piece>,
    pub compression: Compression,
    pub options: FormatOptions,
}

impl S3Settings {
    /// The URL of the object `key` (already percent-encoded per segment).
    pub(crate) fn object_url(&self, encoded_key: &str) -> Result<Url, ConfigError> {
        let raw = match (&self.endpoint, self.path_style) {
            (Some(endpoint), true) => format!(
                "{}/{}/{encoded_key}",
                endpoint.as_str().trim_end_matches('/'),
                self.bucket
            ),
            (Some(endpoint), false) => {
                let mut url = endpoint.clone();
                let host = format!("{}.{}", self.bucket, endpoint.host_str().unwrap_or_default());
                url.set_host(Some(&host))
                    .map_err(|e| ConfigError::new("config.endpoint", format!("bucket host `{host}`: {e}")))?;
                format!("{}/{encoded_key}", url.as_str().trim_end_matches('/'))
            }
            (None, true) => format!("https://s3.{}.amazonaws.com/{}/{encoded_key}", self.region, self.bucket),
            (None, false) => format!("https://{}.s3.{}.amazonaws.com/{encoded_key}", self.bucket, self.region),
        };
        http::parse_url(&raw, "config.endpoint")
    }
}

/// Static credentials. Debug never shows the secret.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// From `AWS_SESSION_TOKEN` when the credentials came from the environment.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The credentials: both secrets, or neither and then the process environment's
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
pub(crate) fn parse_credentials(secrets: &Secrets) -> Result<Credentials, ConfigError> {
    let id = secrets.get(ACCESS_KEY_ID);
    let secret = secrets.get(SECRET_ACCESS_KEY);
    let (id, secret, session_token) = match (id, secret) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone(), None),
        (Some(_), None) => {
            return Err(ConfigError::new(
                format!("secrets.{SECRET_ACCESS_KEY}"),
                "required with `access_key_id`",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                format!("secrets.{ACCESS_KEY_ID}"),
                "required with `secret_access_key`",
            ))
        }
        (None, None) => {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => (id, secret, var("AWS_SESSION_TOKEN")),
                _ => {
                    return Err(ConfigError::new(
                        format!("secrets.{ACCESS_KEY_ID}"),
                        "required (with `secret_access_key`), unless the server's environment sets \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ))
                }
            }
        }
    };
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !printable(&id) {
        return Err(ConfigError::new(
            format!("secrets.{ACCESS_KEY_ID}"),
            "must be non-empty printable ASCII without spaces",
        ));
    }
    // The error never echoes the value.
    if !printable(&secret) {
        return Err(ConfigError::new(
            format!("secrets.{SECRET_ACCESS_KEY}"),
            "must be non-empty printable ASCII without spaces",
        ));
    }
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token,
    })
}

/// Parses `config` without touching the network.
pub(crate) fn parse_config(config: &Value) -> Result<S3Settings, ConfigError> {
    crate::typed::parse_config::<S3Config>(config)?.resolve()
}

impl S3Config {
    /// What the schema cannot say: the endpoint URL's syntax; the key template's byte length.
    pub(crate) fn resolve(&self) -> Result<S3Settings, ConfigError> {
        if !valid_bucket(&self.bucket) {
            return Err(ConfigError::new(
                "config.bucket",
                "must be an S3 bucket name: 3-63 characters, lowercase letters, digits, `.` and `-`, starting and \
                 ending with a letter or digit",
            ));
        }
        let region = match self.region.as_deref() {
            None => DEFAULT_REGION,
            Some(r)
                if !r.is_empty()
                    && r.len() <= 64
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                r
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "config.region",
                    "must be a region name such as us-east-1 (lowercase letters, digits, `-`)",
                ))
            }
        };
        let endpoint = match self.endpoint.as_deref() {
            None => None,
            Some(raw) => {
                let url = http::parse_url(raw, "config.endpoint")?;
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError::new("config.endpoint", "must have no query or fragment"));
                }
                Some(url)
            }
        };
        let path_style = self.path_style.unwrap_or(endpoint.is_some());
        // A dotted bucket name breaks the TLS wildcard certificate of virtual-hosted AWS hosts.
        if !path_style && endpoint.is_none() && self.bucket.contains('.') {
            return Err(ConfigError::new(
                "config.path_style",
                "a bucket name with `.` needs `path_style: true` over HTTPS",
            ));
        }
        let template = self.key_template.as_deref().unwrap_or(DEFAULT_KEY_TEMPLATE);
        let key_template = parse_template(template).map_err(|m| ConfigError::new("config.key_template", m))?;
        let options = self.format_options()?;
        Ok(S3Settings {
            bucket: self.bucket.clone(),
            region: region.to_owned(),
            endpoint,
            path_style,
            key_template,
            compression: self.compression.unwrap_or_default(),
            options,
        })
    }
}

/// Parses a key template. Placeholders: `{tenant}`, `{date}`, `{first}`, `{last}` (each offset
/// optionally zero-padded as `{first:09}`), `{ext}`. `{tenant}` and `{first}` are required: a
/// key without them could be shared by two different batches, and the later would overwrite
/// the earlier.
pub(crate) fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    if template.is_empty() || template.len() > 512 {
        return Err("must be 1 to 512 bytes".to_owned());
    }
    if template.starts_with('/') || template.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("must not start with `/` or contain empty, `.` or `..` path segments".to_owned());
    }
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("has a `}` without `{`".to_owned());
        }
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has a `{` without `}`")?;
        let name = &after[..close];
        let (base, width) = match name.split_once(':') {
            Some((base, spec)) => {
                let width = spec
                    .strip_prefix('0')
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| (1..=20).contains(w))
                    .ok_or_else(|| format!("`{{{name}}}`: the width must look like `:09` (1 to 20 digits)"))?;
                (base, Some(width))
            }
            None => (name, None),
        };
        pieces.push(match (base, width) {
            ("tenant", None) => Piece::Tenant,
            ("date", None) => Piece::Date,
            ("ext", None) => Piece::Ext,
            ("first", w) => Piece::First(w.unwrap_or(0)),
            ("last", w) => Piece::Last(w.unwrap_or(0)),
            _ => {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` (known: {{tenant}}, {{date}}, {{first}}, {{last}}, {{ext}}; \
                     offsets may be padded as {{first:09}})"
                ))
            }
        });
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    if !pieces.contains(&Piece::Tenant) || !pieces.iter().any(|p| matches!(p, Piece::First(_))) {
        return Err("must contain `{tenant}` and `{first}`, so that no two batches share a key".to_owned());
    }
    Ok(pieces)
}

fn valid_bucket(b: &str) -> bool {
    let edge = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && edge(b.bytes().next())
        && edge(b.bytes().last())
        && !b.contains("..")
}

/// Save-time validation: `config` (the endpoint against the SSRF policy, resolving its host)
/// and the credentials. Generates nothing.
pub async fn validate(config: &Value, secrets: &mut Secrets, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    let parsed = parse_config(config)?;
    if let Some(endpoint) = &parsed.endpoint {
        http::check_url(endpoint.as_str(), "config.endpoint", env).await?;
    }
    parse_credentials(secrets)?;
    Ok(Secrets::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(config: Value) -> ConfigError {
        parse_config(&config).unwrap_err()
    }

    #[test]
    fn defaults_and_urls() {
        let c = parse_config(&json!({"bucket": "audit-logs"})).unwrap();
        assert_eq!(
            (c.region.as_str(), c.path_style, c.compression),
            ("us-east-1", false, Compression::Gzip)
        );
        assert_eq!(
            c.object_url("a/b.jsonl").unwrap().as_str(),
            "https://audit-logs.s3.us-east-1.amazonaws.com/a/b.jsonl"
        );
        let c = parse_config(&json!({"bucket": "audit", "endpoint": "http://127.0.0.1:9000", "compression": "none"}))
            .unwrap();
        assert!(c.path_style);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.object_url("k").unwrap().as_str(), "http://127.0.0.1:9000/audit/k");
        let c =
            parse_config(&json!({"bucket": "audit", "endpoint": "https://minio.example.com/", "path_style": false}))
                .unwrap();
        assert_eq!(c.object_url("k").unwrap().as_str(), "https://audit.minio.example.com/k");
        let c = parse_config(&json!({"bucket": "a.b.c", "region": "eu-west-1", "path_style": true})).unwrap();
        assert_eq!(
            c.object_url("k").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/a.b.c/k"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(err(json!("x")).field, "config");
        assert_eq!(err(json!({})).field, "config.bucket");
        assert_eq!(err(json!({"bucket": "b", "acl": "x"})).field, "config.acl");
        for bad in ["ab", "Audit", "a_b", "-ab", "ab-", "a..b", &"a".repeat(64)] {
            assert_eq!(err(json!({"bucket": bad})).field, "config.bucket", "{bad}");
        }
        assert_eq!(err(json!({"bucket": "abc", "region": "EU"})).field, "config.region");
        assert_eq!(
            err(json!({"bucket": "abc", "endpoint": "ftp://x/"})).field,
            "config.endpoint"
        );
        assert_eq!(
            err(json!({"bucket": "abc", "endpoint": "http://x/?a=1"})).field,
            "config.endpoint"
        );
        assert_eq!(
            err(json!({"bucket": "abc", "path_style": "yes"})).field,
            "config.path_style"
        );
        assert_eq!(
            err(json!({"bucket": "a.b", "path_style": false})).field,
            "config.path_style"
        );
        assert_eq!(
            err(json!({"bucket": "abc", "compression": "lz4"})).field,
            "config.compression"
        );
        assert_eq!(
            err(json!({"bucket": "abc", "ocsf_version": ""})).field,
            "config.ocsf_version"
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            parse_template(DEFAULT_KEY_TEMPLATE).unwrap(),
            vec![
                Piece::Text("tenant=".into()),
                Piece::Tenant,
                Piece::Text("/date=".into()),
                Piece::Date,
                Piece::Text("/".into()),
                Piece::First(9),
                Piece::Text("-".into()),
                Piece::Last(9),
                Piece::Text(".jsonl".into()),
                Piece::Ext,
            ]
        );
        assert!(parse_template("{tenant}/{first}").is_ok());
        for bad in [
            "",
            "/{tenant}/{first}",
            "{tenant}//{first}",
            "{tenant}/../{first}",
            "{tenant}/{last}",
            "{first}.jsonl",
            "{tenant}/{first}/{hour}",
            "{tenant}/{first:9}",
            "{tenant}/{first:0}",
            "{tenant}/{first",
            "{tenant}}/{first}",
            "{tenant}/{date:02}/{first}",
        ] {
            let e = err(json!({"bucket": "abc", "key_template": bad}));
            assert_eq!(e.field, "config.key_template", "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_never_echo_the_secret() {
        let s = |pairs: &[(&str, &str)]| -> Secrets {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let e = parse_credentials(&s(&[(ACCESS_KEY_ID, "AKIA1")])).unwrap_err();
        assert_eq!(e.field, "secrets.secret_access_key");
        let e = parse_credentials(&s(&[(SECRET_ACCESS_KEY, "hunter2")])).unwrap_err();
        assert_eq!(e.field, "secrets.access_key_id");
        for bad in ["", "hunter2 x", "hunter2\u{7f}"] {
            let e = parse_credentials(&s(&[(ACCESS_KEY_ID, "AKIA1"), (SECRET_ACCESS_KEY, bad)])).unwrap_err();
            assert_eq!(e.field, "secrets.secret_access_key");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let c = parse_credentials(&s(&[(ACCESS_KEY_ID, "AKIA1"), (SECRET_ACCESS_KEY, "hunter2")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
