//! OTLP `AnyValue` ↔ plain JSON, the form events keep OTLP data in (`metadata.otel`): readable,
//! queryable, and mapped back on the way out.
//!
//! string ↔ string, bool ↔ bool, int ↔ integer, double ↔ number with a fraction (a non-finite
//! double, which JSON cannot hold, becomes its name as a string), array ↔ array, kvlist ↔
//! object, bytes → `{"bytes_base64": "…"}` (so bytes come back as bytes), empty → null.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use serde_json::{Map, Number, Value};

/// The one-member object bytes become.
pub const BYTES_KEY: &str = "bytes_base64";

pub fn to_json(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(Av::StringValue(s)) => Value::String(s.clone()),
        Some(Av::BoolValue(b)) => Value::Bool(*b),
        Some(Av::IntValue(i)) => Value::Number((*i).into()),
        Some(Av::DoubleValue(d)) => match Number::from_f64(*d) {
            Some(n) => Value::Number(n),
            None => Value::String(d.to_string()),
        },
        Some(Av::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
        Some(Av::KvlistValue(kv)) => Value::Object(attributes_to_json(&kv.values)),
        Some(Av::BytesValue(b)) => {
            let mut m = Map::new();
            m.insert(
                BYTES_KEY.into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            );
            Value::Object(m)
        }
    }
}

/// Attributes as a JSON object. A repeated key (which OTLP forbids) keeps its last value.
pub fn attributes_to_json(attrs: &[KeyValue]) -> Map<String, Value> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(to_json).unwrap_or(Value::Null)))
        .collect()
}

pub fn from_json(value: &Value) -> AnyValue {
    let v = match value {
        Value::Null => None,
        Value::Bool(b) => Some(Av::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Av::IntValue(i),
            // A u64 past i64 or a fraction: OTLP's only other number is a double.
            None => Av::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(Av::StringValue(s.clone())),
        Value::Array(items) => Some(Av::ArrayValue(ArrayValue {
            values: items.iter().map(from_json).collect(),
        })),
        Value::Object(m) => match (m.len(), m.get(BYTES_KEY).and_then(Value::as_str)) {
            (1, Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => Some(Av::BytesValue(bytes)),
                Err(_) => Some(Av::KvlistValue(KeyValueList {
                    values: attributes_from_json(m),
                })),
            },
            _ => Some(Av::KvlistValue(KeyValueList {
                values: attributes_from_json(m),
            })),
        },
    };
    AnyValue { value: v }
}

pub fn attributes_from_json(map: &Map<String, Value>) -> Vec<KeyValue> {
    map.iter().map(|(k, v)| key_value(k, from_json(v))).collect()
}

pub fn key_value(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
    }
}

pub fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(Av::StringValue(s.to_owned())),
    }
}

/// The string inside, if the value is one.
pub fn as_str(value: &AnyValue) -> Option<&str> {
    match &value.value {
        Some(Av::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let v = json!({"s": "x", "b": true, "i": -3, "d": 1.5, "a": [1, "two", null], "m": {"k": {"bytes_base64": "AAE="}}});
        let any = from_json(&v);
        assert_eq!(to_json(&any), v);
        let bytes = AnyValue {
            value: Some(Av::BytesValue(vec![0, 1])),
        };
        assert_eq!(from_json(&to_json(&bytes)), bytes);
        let nan = AnyValue {
            value: Some(Av::DoubleValue(f64::NAN)),
        };
        assert_eq!(to_json(&nan), json!("NaN"));
    }
}
