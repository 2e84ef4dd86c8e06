//! OCSF records (JSON objects) → one Arrow record batch with a class's fixed schema.
//!
//! Strict on purpose: a field the schema has no column for, or a value of another type than its
//! column, is an error rather than a silently dropped attribute (an audit trail that loses data
//! without a word is worse than a paused sink); the unit tests encode every attribute the `ocsf`
//! format writes, so such an error means the format and [`super::schema`] disagree.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, SchemaRef};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ColumnError {
    #[error("OCSF attribute `{0}` has no column in its class's Parquet schema")]
    Unknown(String),
    #[error("OCSF attribute `{path}` is {found}, but its column holds {expected}")]
    Type {
        path: String,
        found: &'static str,
        expected: String,
    },
    #[error("cannot build the Arrow columns: {0}")]
    Arrow(#[from] ArrowError),
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(path: &str, found: &Value, expected: &DataType) -> ColumnError {
    ColumnError::Type {
        path: path.to_owned(),
        found: kind_of(found),
        expected: expected.to_string(),
    }
}

/// Each object's members must all have a column.
fn check_members(fields: &Fields, objects: &[Option<&Map<String, Value>>], path: &str) -> Result<(), ColumnError> {
    for map in objects.iter().flatten() {
        if let Some(key) = map.keys().find(|k| fields.find(k).is_none()) {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            return Err(ColumnError::Unknown(at));
        }
    }
    Ok(())
}

/// The members `name` of each object (`None` where the object or the member is absent or null).
fn members<'a>(objects: &[Option<&'a Map<String, Value>>], name: &str) -> Vec<Option<&'a Value>> {
    objects
        .iter()
        .map(|m| m.and_then(|m| m.get(name)).filter(|v| !v.is_null()))
        .collect()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// One column of `field`'s type from one value per row.
fn column(field: &Field, values: &[Option<&Value>], path: &str) -> Result<ArrayRef, ColumnError> {
    let ty = field.data_type();
    let array: ArrayRef = match ty {
        DataType::Utf8 => {
            let strings = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.as_str())),
                    Some(other) => Err(mismatch(path, other, ty)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StringArray::from(strings))
        }
        DataType::Int64 => {
            let ints = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(n @ Value::Number(_)) => n.as_i64().map(Some).ok_or_else(|| mismatch(path, n, ty)),
                    Some(other) => Err(mismatch(path, other, ty)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(Int64Array::from(ints))
        }
        DataType::Int32 => {
            let ints = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(n @ Value::Number(_)) => n
                        .as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .map(Some)
                        .ok_or_else(|| mismatch(path, n, ty)),
                    Some(other) => Err(mismatch(path, other, ty)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(Int32Array::from(ints))
        }
        DataType::Struct(fields) => {
            let objects = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Object(m)) => Ok(Some(m)),
                    Some(other) => Err(mismatch(path, other, ty)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(structs(fields, &objects, path)?)
        }
        DataType::List(item) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut items: Vec<Option<&Value>> = Vec::new();
            for v in values {
                match v {
                    None => lengths.push(0),
                    Some(Value::Array(list)) => {
                        lengths.push(list.len());
                        items.extend(list.iter().map(|x| Some(x).filter(|x| !x.is_null())));
                    }
                    Some(other) => return Err(mismatch(path, other, ty)),
                }
            }
            let child = column(item, &items, &format!("{path}[]"))?;
            let valid = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
            Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::from_lengths(lengths),
                child,
                Some(valid),
            )?)
        }
        other => {
            return Err(ColumnError::Type {
                path: path.to_owned(),
                found: "any value",
                expected: format!("{other} (a column type this sink does not write)"),
            })
        }
    };
    Ok(array)
}

fn structs(fields: &Fields, objects: &[Option<&Map<String, Value>>], path: &str) -> Result<StructArray, ColumnError> {
    check_members(fields, objects, path)?;
    let children = fields
        .iter()
        .map(|f| column(f, &members(objects, f.name()), &join(path, f.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let valid = NullBuffer::from(objects.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(StructArray::try_new(fields.clone(), children, Some(valid))?)
}

/// `rows` (each a JSON object) as one record batch of `schema`.
pub(crate) fn record_batch(schema: &SchemaRef, rows: &[Map<String, Value>]) -> Result<RecordBatch, ColumnError> {
    let objects: Vec<Option<&Map<String, Value>>> = rows.iter().map(Some).collect();
    let columns = structs(schema.fields(), &objects, "")?;
    let (_, arrays, _) = columns.into_parts();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_schema::Schema;
    use serde_json::json;

    fn schema() -> SchemaRef {
        let item = Field::new(
            "element",
            DataType::Struct(Fields::from(vec![Field::new("uid", DataType::Utf8, true)])),
            true,
        );
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("t", DataType::Int64, true),
            Field::new(
                "o",
                DataType::Struct(Fields::from(vec![Field::new("s", DataType::Utf8, true)])),
                true,
            ),
            Field::new("l", DataType::List(Arc::new(item)), true),
        ]))
    }

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn nested_values_and_nulls() {
        let batch = record_batch(
            &schema(),
            &rows(json!([
                {"n": 1, "t": 1_700_000_000_000_i64, "o": {"s": "x"}, "l": [{"uid": "a"}, {"uid": "b"}]},
                {"n": 2, "o": null},
            ])),
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        let list = batch.column(3).as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.value_length(0), 2);
        assert!(list.is_null(1));
        assert!(batch.column(2).is_null(1));
        assert!(batch.column(1).is_null(1));
    }

    #[test]
    fn unknown_members_and_wrong_types_are_errors() {
        let e = |v: Value| record_batch(&schema(), &rows(v)).unwrap_err().to_string();
        assert!(e(json!([{"x": 1}])).contains("`x`"), "{}", e(json!([{"x": 1}])));
        assert!(e(json!([{"o": {"s": "a", "z": 1}}])).contains("`o.z`"));
        assert!(e(json!([{"n": "1"}])).contains("`n` is a string"));
        assert!(e(json!([{"n": 3_000_000_000_i64}])).contains("`n` is a number"));
        assert!(e(json!([{"l": {"uid": "a"}}])).contains("`l` is an object"));
        assert!(e(json!([{"l": [{"uid": 1}]}])).contains("`l[].uid`"));
    }
}
