//! The pure part: a batch → its Parquet objects, one per (event day, OCSF class), each with a
//! key derived from the batch alone so that a retry overwrites the same objects.

use std::collections::BTreeMap;

use auditrelay_core::StoredEvent;
use auditrelay_format::{ocsf_record, FormatOptions};
use jiff::Timestamp;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use super::columns::{record_batch, ColumnError};
use super::config::LakeSettings;
use super::schema::{class_schema, JSON_COLUMNS};

/// One object to PUT.
#[derive(Debug, Clone)]
pub(crate) struct LakeObject {
    /// The object key, unencoded.
    pub key: String,
    pub class_uid: i64,
    pub rows: usize,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ObjectError {
    #[error("event {offset}: its OCSF record has no class_uid this sink has a Parquet schema for ({class})")]
    Class { offset: u64, class: String },
    #[error("OCSF class {class_uid}: {source}")]
    Columns {
        class_uid: i64,
        #[source]
        source: ColumnError,
    },
    #[error("could not write the Parquet object for OCSF class {class_uid}: {source}")]
    Parquet {
        class_uid: i64,
        #[source]
        source: ParquetError,
    },
}

/// `YYYYMMDD` (UTC) of an epoch-milliseconds time; `19700101` for a missing or impossible one.
fn event_day(ms: Option<i64>) -> String {
    ms.and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%d")
        .to_string()
}

/// The `eventDay` of a record: the day the relay received the event (`metadata.logged_time`),
/// else the event's own `time`. The relay's clock first, as for the `s3` sink's `{date}`, so a
/// client's odd `occurred_at` cannot scatter a batch over far-away partitions.
fn record_day(record: &Map<String, Value>) -> String {
    let logged = record
        .get("metadata")
        .and_then(|m| m.get("logged_time"))
        .and_then(Value::as_i64);
    event_day(logged.or_else(|| record.get("time").and_then(Value::as_i64)))
}

/// `ext/{source}/region={region}/accountId={account_id}/eventDay={day}/`, the location of the
/// class's custom source in the Security Lake bucket.
pub(crate) fn prefix(cfg: &LakeSettings, class_uid: i64, day: &str) -> String {
    format!(
        "ext/{}/region={}/accountId={}/eventDay={day}/",
        cfg.source_for(class_uid),
        cfg.aws.region,
        cfg.account_id
    )
}

/// The object's name: tenant, class and the offsets of its first and last event (zero-padded so
/// names sort by offset). Offsets are unique per tenant, so two different batches never share a
/// name, and a retry of the same batch writes the same one.
pub(crate) fn object_name(tenant: &str, class_uid: i64, first: u64, last: u64) -> String {
    format!("{tenant}_{class_uid}_{first:020}-{last:020}.parquet")
}

/// The OCSF record of an event as a Parquet row: open-ended members become JSON text.
fn row(mut record: Map<String, Value>) -> Map<String, Value> {
    for name in JSON_COLUMNS {
        if let Some(v) = record.get_mut(*name) {
            if !v.is_null() && !v.is_string() {
                *v = Value::String(v.to_string());
            }
        }
    }
    record
}

/// zstd at its default level: Security Lake reads zstd-compressed Parquet, and zstd is already
/// part of this build.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

fn parquet_bytes(class_uid: i64, rows: &[Map<String, Value>]) -> Result<Vec<u8>, ObjectError> {
    let schema = class_schema(class_uid).ok_or_else(|| ObjectError::Class {
        offset: 0,
        class: class_uid.to_string(),
    })?;
    let batch = record_batch(&schema, rows).map_err(|source| ObjectError::Columns { class_uid, source })?;
    let parquet = |source| ObjectError::Parquet { class_uid, source };
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(writer_properties())).map_err(parquet)?;
    writer.write(&batch).map_err(parquet)?;
    writer.into_inner().map_err(parquet)
}

/// The rows of one (day, class): first offset, last offset, rows in the batch's order.
type Group = (u64, u64, Vec<Map<String, Value>>);

/// Every object of one batch of `tenant`'s events, in key order.
pub(crate) fn objects(
    cfg: &LakeSettings,
    options: &FormatOptions,
    tenant: &str,
    events: &[StoredEvent],
) -> Result<Vec<LakeObject>, ObjectError> {
    let mut groups: BTreeMap<(String, i64), Group> = BTreeMap::new();
    for event in events {
        let Value::Object(record) = ocsf_record(event, options) else {
            return Err(ObjectError::Class {
                offset: event.offset,
                class: "not an object".into(),
            });
        };
        let class_uid = record
            .get("class_uid")
            .and_then(Value::as_i64)
            .filter(|c| class_schema(*c).is_some())
            .ok_or_else(|| ObjectError::Class {
                offset: event.offset,
                class: record.get("class_uid").map_or("none".into(), Value::to_string),
            })?;
        let day = record_day(&record);
        let group = groups
            .entry((day, class_uid))
            .or_insert_with(|| (event.offset, event.offset, Vec::new()));
        group.0 = group.0.min(event.offset);
        group.1 = group.1.max(event.offset);
        group.2.push(row(record));
    }
    groups
        .into_iter()
        .map(|((day, class_uid), (first, last, rows))| {
            Ok(LakeObject {
                key: format!(
                    "{}{}",
                    prefix(cfg, class_uid, &day),
                    object_name(tenant, class_uid, first, last)
                ),
                class_uid,
                rows: rows.len(),
                body: parquet_bytes(class_uid, &rows)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use arrow_schema::DataType;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;

    fn cfg() -> LakeSettings {
        super::super::config::parse(&json!({"bucket": "lake-bucket", "region": "eu-west-1",
            "source_name": "auditrelay", "account_id": "123456789012", "endpoint": "http://127.0.0.1:9000"}))
        .unwrap()
    }

    /// An event of `event_type` with every member the OCSF mapping reads, so every attribute it
    /// can write is exercised.
    fn event(offset: u64, event_type: &str, received_at: &str) -> StoredEvent {
        let body = json!({
            "id": format!("evt_{offset}"), "type": event_type, "tenant_id": "acme",
            "occurred_at": "2026-11-23T10:00:00Z", "received_at": received_at,
            "action": "update", "outcome": "success", "severity": 5, "request_id": "req_1",
            "actor": {"id": "usr_1", "type": "user", "name": "Alice", "email": "alice@example.com",
                      "ip_address": "192.0.2.7", "user_agent": "curl/8"},
            "target": {"id": "doc_1", "type": "document", "name": "Plan"},
            "source": {"service": "billing", "instance": "i-1", "version": "1.2.3"},
            "changes": {"title": {"from": "a", "to": "b"}},
            "metadata": {"ticket": 7, "tags": ["x", "y"]},
        });
        StoredEvent {
            tenant_id: "acme".into(),
            offset,
            id: format!("evt_{offset}"),
            event_type: event_type.into(),
            body: body.to_string(),
            chain: Some([0xab; 32]),
        }
    }

    #[test]
    fn one_object_per_day_and_class_with_deterministic_keys() {
        let options = FormatOptions::default();
        let events = vec![
            event(7, "document.updated", "2026-11-23T10:00:01Z"),
            event(8, "auth.login", "2026-11-23T10:00:02Z"),
            event(9, "user.created", "2026-11-23T10:00:03Z"),
            event(10, "document.deleted", "2026-11-23T10:00:04Z"),
            event(11, "user.signed_out", "2026-11-24T00:00:00Z"),
        ];
        let objs = objects(&cfg(), &options, "acme", &events).unwrap();
        let keys: Vec<&str> = objs.iter().map(|o| o.key.as_str()).collect();
        let p = "ext/auditrelay/region=eu-west-1/accountId=123456789012";
        assert_eq!(
            keys,
            [
                format!("{p}/eventDay=20261123/acme_3001_00000000000000000009-00000000000000000009.parquet"),
                format!("{p}/eventDay=20261123/acme_3002_00000000000000000008-00000000000000000008.parquet"),
                format!("{p}/eventDay=20261123/acme_6003_00000000000000000007-00000000000000000010.parquet"),
                format!("{p}/eventDay=20261124/acme_3002_00000000000000000011-00000000000000000011.parquet"),
            ]
        );
        assert_eq!(objs.iter().map(|o| o.rows).sum::<usize>(), 5);
        // Same batch, same bytes: a retry overwrites with an identical object.
        let again = objects(&cfg(), &options, "acme", &events).unwrap();
        assert!(objs.iter().zip(&again).all(|(a, b)| a.key == b.key && a.body == b.body));

        // Read back: one class per object, `resources` a LIST of structs, `unmapped` JSON text.
        let api = &objs[2];
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(api.body.clone()))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let class = batch
            .column_by_name("class_uid")
            .unwrap()
            .as_primitive::<arrow_array::types::Int32Type>();
        assert!(class.iter().all(|c| c == Some(6003)));
        let resources = batch.column_by_name("resources").unwrap();
        assert!(matches!(resources.data_type(), DataType::List(_)));
        assert_eq!(resources.as_list::<i32>().value_length(0), 1);
        let unmapped = batch.column_by_name("unmapped").unwrap().as_string::<i32>();
        let parsed: Value = serde_json::from_str(unmapped.value(0)).unwrap();
        assert_eq!(parsed["metadata"]["tags"], json!(["x", "y"]));
        assert_eq!(parsed["chain"], "ab".repeat(32));
        let time = batch
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(time.value(0), 1_795_428_000_000);
        assert!(!time.is_null(1));
    }

    #[test]
    fn a_class_can_have_its_own_source() {
        let cfg = super::super::config::parse(&json!({"bucket": "lake-bucket", "region": "eu-west-1",
            "source_name": "auditrelay", "account_id": "123456789012", "class_sources": {"3002": "relay-auth"}}))
        .unwrap();
        let events = [
            event(1, "auth.login", "2026-11-23T10:00:01Z"),
            event(2, "x.read", "2026-11-23T10:00:01Z"),
        ];
        let objs = objects(&cfg, &FormatOptions::default(), "acme", &events).unwrap();
        let prefixes: Vec<&str> = objs.iter().map(|o| o.key.split("/region=").next().unwrap()).collect();
        assert_eq!(prefixes, ["ext/relay-auth", "ext/auditrelay"]);
    }

    #[test]
    fn days() {
        assert_eq!(event_day(Some(0)), "19700101");
        assert_eq!(event_day(Some(1_795_428_000_000)), "20261123");
        assert_eq!(event_day(None), "19700101");
        assert_eq!(event_day(Some(i64::MAX)), "19700101");
    }
}
