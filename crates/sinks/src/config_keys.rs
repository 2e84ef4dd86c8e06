//! The check every sink's config starts with: a JSON object holding only the kind's own keys
//! plus the format options, so a typo is refused with its field named instead of ignored.

use auditrelay_format::OPTION_KEYS;
use serde_json::{Map, Value};

use crate::ConfigError;

/// `config` as an object whose keys are all in `keys` or the format options. `kind_article` is
/// how errors name the kind, e.g. "a `datadog` sink".
pub(crate) fn known_keys_only<'a>(
    config: &'a Value,
    kind_article: &str,
    keys: &[&str],
) -> Result<&'a Map<String, Value>, ConfigError> {
    let obj = config
        .as_object()
        .ok_or_else(|| ConfigError::new("config", "must be a JSON object"))?;
    if let Some(key) = obj
        .keys()
        .find(|k| !keys.contains(&k.as_str()) && !OPTION_KEYS.contains(&k.as_str()))
    {
        return Err(ConfigError::new(
            format!("config.{key}"),
            format!(
                "unknown key for {kind_article} (known: {}, {})",
                keys.join(", "),
                OPTION_KEYS.join(", ")
            ),
        ));
    }
    Ok(obj)
}
