//! The `kinesis` sink: each event becomes one record of a Kinesis data stream (`PutRecords`,
//! ≤ 500 records and 5 MiB per call), its data the encoded event. The partition key is the
//! tenant (default), so a tenant's records share a shard and keep their order there, or the
//! value of a field of the event. Only the records that failed are retried (`aws::records`).

use auditrelay_core::StoredEvent;
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aws::records::{record_kind_entry_points, Limits, RecordApi, RecordKind, RecordSinkParts};
use crate::aws::{self, aws_config, AwsSettings};
use crate::ConfigError;

/// Kinesis caps a partition key at 256 Unicode characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;

aws_config! {
    /// `config` of a `kinesis` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "kinesis config")]
    pub struct KinesisConfig {
        /// The data stream's name.
        #[schemars(length(min = 1, max = 128), pattern(r"^[a-zA-Z0-9_.-]+$"))]
        pub stream_name: String,
        /// `tenant` (default: one tenant's records in one shard, in order), or the dotted path of
        /// a field of the event (`actor.id`); an event without that field uses its tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"), extend("default" = "tenant"))]
        pub partition_key: Option<String>,
    }
}

/// Where a record's partition key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartitionKey {
    Tenant,
    Field(Vec<String>),
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct KinesisSettings {
    pub stream_name: String,
    pub partition_key: PartitionKey,
    pub aws: AwsSettings,
    pub options: auditrelay_format::FormatOptions,
}

impl KinesisConfig {
    pub(crate) fn resolve(&self) -> Result<KinesisSettings, ConfigError> {
        let name = &self.stream_name;
        if name.is_empty()
            || name.len() > 128
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(ConfigError::new(
                "config.stream_name",
                "must be a stream name: 1-128 letters, digits, `_`, `.` and `-`",
            ));
        }
        let partition_key = match self.partition_key.as_deref() {
            None | Some("tenant") => PartitionKey::Tenant,
            Some(path) => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                let ok = path.len() <= 256
                    && segments.iter().all(|s| {
                        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    });
                if !ok {
                    return Err(ConfigError::new(
                        "config.partition_key",
                        "must be `tenant` or a dotted field path such as `actor.id`",
                    ));
                }
                PartitionKey::Field(segments)
            }
        };
        Ok(KinesisSettings {
            stream_name: name.clone(),
            partition_key,
            aws: self.aws_fields().resolve("kinesis")?,
            options: self.format_options()?,
        })
    }
}

/// The partition key of one event.
pub(crate) fn partition_key(key: &PartitionKey, tenant: &str, event: &StoredEvent) -> String {
    let value = match key {
        PartitionKey::Tenant => None,
        PartitionKey::Field(path) => serde_json::from_str::<Value>(&event.body).ok().and_then(|body| {
            let mut v = &body;
            for segment in path {
                v = v.get(segment)?;
            }
            match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }),
    };
    let key = value.unwrap_or_else(|| tenant.to_owned());
    key.chars().take(MAX_PARTITION_KEY_CHARS).collect()
}

/// `PutRecords`.
pub(crate) struct PutRecords {
    pub stream_name: String,
    pub partition_key: PartitionKey,
}

impl RecordApi for PutRecords {
    const TARGET: &'static str = "Kinesis_20131202.PutRecords";
    const RESULTS: &'static str = "Records";
    const LIMITS: Limits = Limits {
        max_records: 500,
        max_bytes: 5 * 1024 * 1024,
        max_record_bytes: 1024 * 1024,
    };

    fn entry(&self, tenant: &str, event: &StoredEvent, record: Vec<u8>) -> Result<(Value, usize), String> {
        let key = partition_key(&self.partition_key, tenant, event);
        // Kinesis counts the data blob and the partition key.
        let size = record.len() + key.len();
        let data = base64::engine::general_purpose::STANDARD.encode(record);
        Ok((json!({"Data": data, "PartitionKey": key}), size))
    }

    fn body(&self, entries: Vec<Value>) -> Value {
        json!({"StreamName": self.stream_name, "Records": entries})
    }
}

fn parse(config: &Value) -> Result<KinesisSettings, ConfigError> {
    crate::typed::parse_config::<KinesisConfig>(config)?.resolve()
}

impl RecordKind for KinesisConfig {
    type Api = PutRecords;

    fn sink_parts(config: &Value) -> Result<RecordSinkParts<PutRecords>, ConfigError> {
        let stream = parse(config)?;
        Ok(RecordSinkParts {
            what: format!("Kinesis stream {}", stream.stream_name),
            api: PutRecords {
                stream_name: stream.stream_name,
                partition_key: stream.partition_key,
            },
            aws: stream.aws,
            options: stream.options,
        })
    }
}

record_kind_entry_points!(KinesisConfig);

impl crate::KindConfig for KinesisConfig {
    const SPEC: crate::KindSpec = aws::kind_spec("kinesis", aws::RECORD_FORMATS);

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: Value) -> StoredEvent {
        StoredEvent {
            tenant_id: "acme".into(),
            offset: 1,
            id: "evt_1".into(),
            event_type: "user.login".into(),
            body: body.to_string(),
            chain: None,
        }
    }

    #[test]
    fn config_and_keys() {
        let c = parse(&json!({"stream_name": "audit", "region": "eu-west-1"})).unwrap();
        assert_eq!(c.partition_key, PartitionKey::Tenant);
        assert_eq!(c.aws.url.as_str(), "https://kinesis.eu-west-1.amazonaws.com/");
        let e = |v: Value| parse(&v).unwrap_err().field;
        assert_eq!(
            e(json!({"stream_name": "a b", "region": "eu-west-1"})),
            "config.stream_name"
        );
        assert_eq!(e(json!({"stream_name": "a"})), "config.region");
        assert_eq!(
            e(json!({"stream_name": "a", "region": "r", "shard": 1})),
            "config.shard"
        );
        assert_eq!(
            e(json!({"stream_name": "a", "region": "r", "partition_key": "a..b"})),
            "config.partition_key"
        );
        let c = parse(&json!({"stream_name": "a", "region": "r", "partition_key": "actor.id"})).unwrap();
        let ev = event(json!({"id": "evt_1", "type": "t", "actor": {"id": "usr_9"}}));
        assert_eq!(partition_key(&c.partition_key, "acme", &ev), "usr_9");
        let ev = event(json!({"id": "evt_1", "type": "t"}));
        assert_eq!(partition_key(&c.partition_key, "acme", &ev), "acme");
        assert_eq!(partition_key(&PartitionKey::Tenant, "acme", &ev), "acme");
    }
}
