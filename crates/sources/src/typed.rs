//! Parsing a kind's `config` with the offending field's path kept, and its JSON Schema from the
//! same type (as the sinks do).

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kinds::ConfigError;

/// Parses `config` into `T`, naming the offending field as the API does (`config.listen`).
pub(crate) fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError::new("config", "must be a JSON object"));
    }
    auditrelay_core::parse_at(config, "config").map_err(|e| ConfigError::new(e.field, e.message))
}

/// JSON Schema 2020-12 of `T`, self-contained.
pub(crate) fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}
