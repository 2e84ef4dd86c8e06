//! The Parquet (Arrow) schema of each OCSF class the `ocsf` format writes (crates/format's
//! `ocsf.rs`), fixed per class so every object of a class has the same columns and a Glue
//! crawler or Athena table sees one schema.
//!
//! Types follow the OCSF dictionary: `integer_t` is a 32-bit integer, `long_t` and `timestamp_t`
//! 64-bit (`time` and `metadata.logged_time` are epoch milliseconds, as OCSF defines
//! `timestamp_t`). Objects are Parquet structs; arrays (`resources`) are Parquet `LIST`s of
//! structs. `unmapped` is open-ended (any fields of the event OCSF has no attribute for), so it is
//! one string column holding its JSON ([`JSON_COLUMNS`]).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Columns that hold a JSON document as a string, because their shape is open-ended.
pub(crate) const JSON_COLUMNS: &[&str] = &["unmapped"];

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// A Parquet `LIST` of objects; `element` is the Parquet spec's name for the list's item.
fn list_of(name: &str, fields: Vec<Field>) -> Field {
    let item = Field::new("element", DataType::Struct(Fields::from(fields)), true);
    Field::new(name, DataType::List(Arc::new(item)), true)
}

fn user(name: &str) -> Field {
    object(
        name,
        vec![
            text("uid"),
            text("name"),
            text("email_addr"),
            text("type"),
            int("type_id"),
        ],
    )
}

fn service(with_uid: bool) -> Field {
    let mut fields = vec![text("name"), text("version")];
    if with_uid {
        fields.push(text("uid"));
    }
    object("service", fields)
}

/// The columns every class has.
fn common() -> Vec<Field> {
    vec![
        int("class_uid"),
        text("class_name"),
        int("category_uid"),
        text("category_name"),
        int("activity_id"),
        text("activity_name"),
        long("type_uid"),
        text("type_name"),
        int("severity_id"),
        text("severity"),
        long("time"),
        int("status_id"),
        text("status"),
        text("message"),
        object(
            "metadata",
            vec![
                object("product", vec![text("name"), text("vendor_name"), text("version")]),
                text("version"),
                text("uid"),
                text("tenant_uid"),
                text("correlation_uid"),
                text("event_code"),
                text("original_time"),
                long("logged_time"),
                // OCSF says `integer_t`; an offset outgrows 32 bits, so 64.
                long("sequence"),
            ],
        ),
        object("actor", vec![user("user"), text("app_name")]),
        object("src_endpoint", vec![text("ip"), text("name")]),
        object("http_request", vec![text("user_agent")]),
        object("dst_endpoint", vec![text("svc_name"), text("instance_uid")]),
        text("unmapped"),
    ]
}

/// The schema of `class_uid`'s objects, or `None` for a class the `ocsf` format never writes.
pub(crate) fn class_schema(class_uid: i64) -> Option<SchemaRef> {
    let mut fields = common();
    match class_uid {
        // API Activity.
        6003 => {
            fields.push(object(
                "api",
                vec![text("operation"), object("request", vec![text("uid")]), service(false)],
            ));
            fields.push(list_of("resources", vec![text("uid"), text("name"), text("type")]));
        }
        // Authentication.
        3002 => {
            fields.push(user("user"));
            fields.push(service(true));
        }
        // Account Change.
        3001 => fields.push(user("user")),
        _ => return None,
    }
    Some(Arc::new(Schema::new(fields)))
}
