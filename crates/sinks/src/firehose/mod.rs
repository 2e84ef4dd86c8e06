//! The `firehose` sink: each event becomes one newline-terminated record of an Amazon Data
//! Firehose delivery stream (`PutRecordBatch`, ≤ 500 records and 4 MiB per call), so the
//! objects Firehose writes are JSON lines. Only the records that failed are retried
//! (`aws::records`).

use auditrelay_core::StoredEvent;
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aws::records::{record_kind_entry_points, Limits, RecordApi, RecordKind, RecordSinkParts};
use crate::aws::{self, aws_config, AwsSettings};
use crate::ConfigError;

aws_config! {
    /// `config` of a `firehose` sink.
    #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "firehose config")]
    pub struct FirehoseConfig {
        /// The delivery stream's name.
        #[schemars(length(min = 1, max = 64), pattern(r"^[a-zA-Z0-9_.-]+$"))]
        pub delivery_stream: String,
    }
}

/// A parsed `config`.
#[derive(Debug, Clone)]
pub(crate) struct FirehoseSettings {
    pub delivery_stream: String,
    pub aws: AwsSettings,
    pub options: auditrelay_format::FormatOptions,
}

impl FirehoseConfig {
    pub(crate) fn resolve(&self) -> Result<FirehoseSettings, ConfigError> {
        let name = &self.delivery_stream;
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(ConfigError::new(
                "config.delivery_stream",
                "must be a delivery stream name: 1-64 letters, digits, `_`, `.` and `-`",
            ));
        }
        Ok(FirehoseSettings {
            delivery_stream: name.clone(),
            aws: self.aws_fields().resolve("firehose")?,
            options: self.format_options()?,
        })
    }
}

/// `PutRecordBatch`.
pub(crate) struct PutRecordBatch {
    pub delivery_stream: String,
}

impl RecordApi for PutRecordBatch {
    const TARGET: &'static str = "Firehose_20150804.PutRecordBatch";
    const RESULTS: &'static str = "RequestResponses";
    const LIMITS: Limits = Limits {
        max_records: 500,
        max_bytes: 4 * 1024 * 1024,
        // 1,000 KiB per record, before base64.
        max_record_bytes: 1000 * 1024,
    };

    fn entry(&self, _tenant: &str, _event: &StoredEvent, mut record: Vec<u8>) -> Result<(Value, usize), String> {
        record.push(b'\n');
        let size = record.len();
        let data = base64::engine::general_purpose::STANDARD.encode(record);
        Ok((json!({"Data": data}), size))
    }

    fn body(&self, entries: Vec<Value>) -> Value {
        json!({"DeliveryStreamName": self.delivery_stream, "Records": entries})
    }
}

fn parse(config: &Value) -> Result<FirehoseSettings, ConfigError> {
    crate::typed::parse_config::<FirehoseConfig>(config)?.resolve()
}

impl RecordKind for FirehoseConfig {
    type Api = PutRecordBatch;

    fn sink_parts(config: &Value) -> Result<RecordSinkParts<PutRecordBatch>, ConfigError> {
        let delivery = parse(config)?;
        Ok(RecordSinkParts {
            what: format!("Firehose delivery stream {}", delivery.delivery_stream),
            api: PutRecordBatch {
                delivery_stream: delivery.delivery_stream,
            },
            aws: delivery.aws,
            options: delivery.options,
        })
    }
}

record_kind_entry_points!(FirehoseConfig);

impl crate::KindConfig for FirehoseConfig {
    const SPEC: crate::KindSpec = aws::kind_spec("firehose", aws::RECORD_FORMATS);

    fn check(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_records() {
        let c = parse(&json!({"delivery_stream": "audit", "region": "eu-west-1"})).unwrap();
        assert_eq!(c.aws.url.as_str(), "https://firehose.eu-west-1.amazonaws.com/");
        assert_eq!(
            parse(&json!({"delivery_stream": "a/b", "region": "r"}))
                .unwrap_err()
                .field,
            "config.delivery_stream"
        );
        let api = PutRecordBatch {
            delivery_stream: "audit".into(),
        };
        let ev = StoredEvent {
            tenant_id: "t".into(),
            offset: 1,
            id: "e".into(),
            event_type: "x".into(),
            body: "{}".into(),
            chain: None,
        };
        let (entry, size) = api.entry("t", &ev, b"{\"a\":1}".to_vec()).unwrap();
        assert_eq!(size, 8);
        assert_eq!(entry, json!({"Data": "eyJhIjoxfQo="}));
    }
}
