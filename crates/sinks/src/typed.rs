//! The typed side of every sink kind's `config`: one serde struct per kind, parsed here with the
//! offending field's path kept, and described by a JSON Schema generated from the same struct
//! (`schemars`), so a form built from `GET /v1/sink-kinds` and the server accept the same things.
//!
//! Each struct is `deny_unknown_fields`, so a typo is refused with its key named. The format
//! options (`auditrelay_format::OPTION_KEYS`) are declared in each struct that takes them by
//! [`with_format_options!`]: serde's `flatten` would switch `deny_unknown_fields` off.

use auditrelay_format::{FormatOptions, LEEF_DELIMITERS, OPTION_KEYS};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use crate::ConfigError;

/// Parses `config` into `T`, naming the offending field as the API does (`config.url`,
/// `config.headers.X-Foo`, `config.brokers[1]`).
pub(crate) fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError::new("config", "must be a JSON object"));
    }
    auditrelay_core::parse_at(config, "config").map_err(|e| ConfigError::new(e.field, e.message))
}

/// An optional whole number that also accepts a JSON number with a zero fraction (`60.0`):
/// JSON Schema counts such a number as an integer, so the server does too.
pub(crate) fn opt_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid value: {n}, expected a non-negative integer"
            ))),
        },
    }
}

/// Non-empty printable text with no control characters (`char::is_control`, plus the JSON line
/// separators that break log lines), as a JSON Schema `pattern`.
pub(crate) const NO_CONTROL_CHARS: &str = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]+$";

/// A case-insensitive JSON Schema pattern matching exactly the `words` (ECMA-262 regular
/// expressions have no inline `(?i)`, so each letter becomes a class).
pub(crate) fn any_case_pattern(words: &[&str], prefix_only: bool) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else if "^$\\.*+?()[]{}|/".contains(c) {
                        // ECMA-262's `u` mode allows escaping these only.
                        format!("\\{c}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    if prefix_only {
        format!("^({})", alternatives.join("|"))
    } else {
        format!("^({})$", alternatives.join("|"))
    }
}

/// RFC 9110 `token`: what a header name may be made of.
pub(crate) const HEADER_NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// A header value `reqwest` accepts: no control characters but tab.
pub(crate) const HEADER_VALUE_PATTERN: &str = r"^[^\u0000-\u0008\u000A-\u001F\u007F]*$";

/// Every URL a sink calls: `http://` or `https://`, printable ASCII without backslashes (a URI;
/// punycode for international host names), no space at the end. The
/// rest (a host, no user name or password) is checked by the server only
/// (see [`crate::http::parse_url`]).
pub(crate) const HTTP_URL_PATTERN: &str =
    r"^[Hh][Tt][Tt][Pp][Ss]?://([\u0020-\u005B\u005D-\u007E]*[\u0021-\u005B\u005D-\u007E])?$";

/// Schema of an optional URL of the sink's (`http`/`https`).
pub(crate) fn opt_url_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": ["string", "null"], "format": "uri", "pattern": HTTP_URL_PATTERN})
}

/// Schema of a required URL of the sink's (`http`/`https`).
pub(crate) fn url_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "uri", "pattern": HTTP_URL_PATTERN})
}

/// Longest format option accepted (`auditrelay_format` counts UTF-8 bytes).
pub(crate) const MAX_OPTION_LEN: usize = 128;

pub(crate) fn option_name_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": MAX_OPTION_LEN,
        "pattern": NO_CONTROL_CHARS,
    })
}

pub(crate) fn ocsf_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "maxLength": MAX_OPTION_LEN,
        "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+(-[A-Za-z0-9.]+)?$",
        "examples": ["1.8.0"],
    })
}

/// The LEEF delimiter: one of [`LEEF_DELIMITERS`], as the character or in LEEF's hex form
/// (`x5E`, `0x09`: `x` or `0x`, then 1 to 4 hex digits).
pub(crate) fn leef_delimiter_schema(_: &mut SchemaGenerator) -> Schema {
    // The characters go into one class: inside `[...]` only `^` needs escaping among them, and
    // ECMA-262's `u` mode refuses escapes of other punctuation.
    let mut class = String::new();
    let mut alternatives = Vec::new();
    for c in LEEF_DELIMITERS {
        match c {
            '^' => class.push_str("\\^"),
            '\t' => class.push_str("\\t"),
            c => class.push(*c),
        }
        let code = format!("{:X}", u32::from(*c));
        let hex: String = code
            .chars()
            .map(|h| {
                if h.is_ascii_alphabetic() {
                    format!("[{}{}]", h.to_ascii_lowercase(), h)
                } else {
                    h.to_string()
                }
            })
            .collect();
        let padding = 4usize.saturating_sub(code.len());
        alternatives.push(format!("0{{0,{padding}}}{hex}"));
    }
    let pattern = format!("^([{class}]|(0x|x)({}))$", alternatives.join("|"));
    json_schema!({
        "type": ["string", "null"],
        "pattern": pattern,
        "examples": ["^", "|", "x09"],
    })
}

/// The format options in a config, for [`FormatOptions::from_config`] (which stays the one
/// place that checks them).
pub(crate) fn format_options(values: [(&str, &Option<String>); 5]) -> Result<FormatOptions, ConfigError> {
    let mut map = Map::new();
    for (key, value) in values {
        debug_assert!(OPTION_KEYS.contains(&key));
        if let Some(v) = value {
            map.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
    FormatOptions::from_config(&map).map_err(|e| ConfigError::new(e.field, e.message))
}

/// Defines a config struct with the format options (`vendor`, `product`, `product_version`,
/// `leef_delimiter`, `ocsf_version`) appended to its own fields, and `format_options()`.
macro_rules! with_format_options {
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        $vis struct $name {
            $($fields)*
            /// CEF/LEEF Device Vendor and OCSF `metadata.product.vendor_name` (default `auditrelay`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::typed::option_name_schema")]
            pub vendor: Option<String>,
            /// CEF/LEEF Device Product and OCSF `metadata.product.name` (default `auditrelay`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::typed::option_name_schema")]
            pub product: Option<String>,
            /// CEF/LEEF Device Version and OCSF `metadata.product.version` (default: the server's version).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::typed::option_name_schema")]
            pub product_version: Option<String>,
            /// LEEF 2.0 attribute delimiter (default `^`): the character, or LEEF's hex form such as `x09`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::typed::leef_delimiter_schema")]
            pub leef_delimiter: Option<String>,
            /// The OCSF schema version the `ocsf` output claims (default `1.8.0`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::typed::ocsf_version_schema")]
            pub ocsf_version: Option<String>,
        }

        impl $name {
            /// The format options, checked by `auditrelay_format`.
            pub fn format_options(&self) -> Result<auditrelay_format::FormatOptions, crate::ConfigError> {
                crate::typed::format_options([
                    ("vendor", &self.vendor),
                    ("product", &self.product),
                    ("product_version", &self.product_version),
                    ("leef_delimiter", &self.leef_delimiter),
                    ("ocsf_version", &self.ocsf_version),
                ])
            }
        }
    };
}
pub(crate) use with_format_options;

/// Static headers: name to value, in the order given (the last of two names that differ only in
/// case wins, as in HTTP). Names and values are checked by the kind that sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Headers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of header name to string value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value = map.next_value::<String>()?;
                    out.push((name, value));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

impl serde::Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Schema of optional static headers whose names may not be any of `reserved` (compared without
/// case) nor start with any of `reserved_prefixes`.
pub(crate) fn headers_schema(reserved: &[&str], reserved_prefixes: &[&str]) -> Schema {
    let mut not_any = vec![json!({"pattern": any_case_pattern(reserved, false)})];
    if !reserved_prefixes.is_empty() {
        not_any.push(json!({"pattern": any_case_pattern(reserved_prefixes, true)}));
    }
    json_schema!({
        "type": ["object", "null"],
        "propertyNames": {"pattern": HEADER_NAME_PATTERN, "not": {"anyOf": not_any}},
        "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN},
    })
}

/// Adds a conditional (`if`/`then`/`else` in an `allOf`) to a struct's schema: several rules
/// can then apply side by side.
pub(crate) fn add_rule(schema: &mut Schema, rule: Value) {
    match schema.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(all) => all.push(rule),
        None => {
            schema.insert("allOf".into(), json!([rule]));
        }
    }
}

/// The rule "`child` only when `flag` is true": otherwise it must be absent or null.
pub(crate) fn only_when_true(flag: &str, child: &str) -> Value {
    json!({
        "if": {"properties": {flag: {"const": true}}, "required": [flag]},
        "else": {"properties": {child: {"type": "null"}}},
    })
}

/// A config struct's JSON Schema, self-contained (`$schema` 2020-12, `$defs`).
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        url: String,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        list: Vec<u16>,
        #[serde(default, deserialize_with = "opt_uint")]
        n: Option<u64>,
    }

    #[test]
    fn errors_name_the_path() {
        let err = |v: Value| parse_config::<Sample>(&v).unwrap_err();
        assert_eq!(err(json!([])).field, "config");
        let e = err(json!({"url": "u", "colour": 1}));
        assert_eq!(e.field, "config.colour");
        assert_eq!(
            err(json!({"url": "u", "a`, expected `b": 1})).field,
            "config.a`, expected `b"
        );
        assert!(
            e.message.contains("unknown key") && e.message.contains("headers"),
            "{e}"
        );
        let e = err(json!({}));
        assert_eq!((e.field.as_str(), e.message.as_str()), ("config.url", "required"));
        let e = err(json!({"url": 5}));
        assert_eq!(e.field, "config.url");
        assert!(e.message.starts_with("must be a string"), "{e}");
        assert_eq!(
            err(json!({"url": "u", "headers": {"X-Foo": 1}})).field,
            "config.headers.X-Foo"
        );
        assert_eq!(err(json!({"url": "u", "list": [1, "x"]})).field, "config.list[1]");
        assert_eq!(err(json!({"url": "u", "n": -1})).field, "config.n");
        assert_eq!(err(json!({"url": "u", "n": 1.5})).field, "config.n");
        let ok = parse_config::<Sample>(&json!({"url": "u", "n": 60.0})).unwrap();
        assert_eq!(ok.n, Some(60));
    }

    #[test]
    fn any_case() {
        assert_eq!(
            any_case_pattern(&["te", "x-a1.b"], false),
            "^([tT][eE]|[xX]-[aA]1\\.[bB])$"
        );
    }
}
