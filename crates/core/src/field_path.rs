//! Typed parsing of a JSON document that names the offending field the way the API does
//! (`batch.max_events`, `config.headers.X-Foo`, `event_types[1]`), whatever type reads it.
//!
//! Request bodies and sink configs are serde types (`deny_unknown_fields`); serde's own error
//! says what went wrong but not where, and in serde's wording. This module tracks the path
//! (`serde_path_to_error`) and rewrites the wording into the API's.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A field of a document that breaks a rule; `field` is its path from the document's root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses `value` into `T`. Paths start at `root` (`"config"` gives `config.url`; `""` gives
/// `batch.max_events`).
pub fn parse_at<T: DeserializeOwned>(value: &Value, root: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut segments: Vec<String> = Vec::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => segments.push(format!(".{key}")),
                serde_path_to_error::Segment::Seq { index } => segments.push(format!("[{index}]")),
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        serde_error(root, segments, &e.inner().to_string())
    })
}

fn join(root: &str, segments: &[String]) -> String {
    let path = format!("{root}{}", segments.concat());
    match path.strip_prefix('.') {
        Some(rest) => rest.to_owned(),
        None => path,
    }
}

/// Turns serde's wording into the API's: the key an unknown-key or missing-key error is about
/// becomes part of the field, and the message says what the value must be.
fn serde_error(root: &str, mut segments: Vec<String>, message: &str) -> FieldError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // `unknown field `KEY`, expected one of `a`, `b``: the key may hold any character, the
        // expected names do not, so the last separator ends the key.
        let (key, known) = match rest.rfind("`, expected ") {
            Some(i) => (
                &rest[..i],
                rest[i + "`, expected ".len()..]
                    .trim_start_matches("one of ")
                    .replace('`', ""),
            ),
            None => (
                rest.trim_end_matches(|c| c != '`').trim_end_matches('`'),
                "none".to_owned(),
            ),
        };
        // The tracker may or may not have entered the unknown key already.
        if segments.last().is_some_and(|s| s == &format!(".{key}")) {
            segments.pop();
        }
        segments.push(format!(".{key}"));
        return FieldError::new(join(root, &segments), format!("unknown key (known: {known})"));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split_once('`').map_or(rest, |(k, _)| k);
        segments.push(format!(".{key}"));
        return FieldError::new(join(root, &segments), "required");
    }
    let message = match message.split_once(", expected ") {
        Some((got, expected)) if got.starts_with("invalid type: ") || got.starts_with("invalid value: ") => {
            format!(
                "must be {expected} (got {})",
                got.split_once(": ").map_or(got, |(_, g)| g)
            )
        }
        _ => message.to_owned(),
    };
    let field = join(root, &segments);
    FieldError::new(if field.is_empty() { "body".to_owned() } else { field }, message)
}

/// A whole number in `MIN..=MAX`. Also accepts a JSON number with a zero fraction (`60.0`):
/// JSON Schema counts such a number as an integer, so the server does too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de, const MIN: u64, const MAX: u64> serde::Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)
            .map_err(|_| serde::de::Error::custom(format!("must be an integer from {MIN} to {MAX}")))?;
        match n.as_u64().or_else(|| crate::integral(n.as_f64())) {
            Some(v) if (MIN..=MAX).contains(&v) => Ok(Bounded(v)),
            _ => Err(serde::de::Error::custom(format!(
                "must be an integer from {MIN} to {MAX} (got {n})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        batch: Option<Batch>,
        list: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Batch {
        max_events: Option<Bounded<1, 10>>,
    }

    fn field_of(v: Value, root: &str) -> FieldError {
        parse_at::<Doc>(&v, root).unwrap_err()
    }

    #[test]
    fn errors_name_the_path_from_the_root() {
        let e = field_of(json!({"name": "a", "batch": {"max_events": 11}}), "");
        assert_eq!(e.field, "batch.max_events");
        assert!(e.message.contains("from 1 to 10"), "{e}");
        assert_eq!(field_of(json!({"name": "a", "list": ["x", 3]}), "").field, "list[1]");
        assert_eq!(field_of(json!({"batch": null}), "").field, "name");
        let e = field_of(json!({"name": "a", "bogus": 1}), "");
        assert_eq!(e.field, "bogus");
        assert!(e.message.contains("known: name, batch, list"), "{e}");
        assert_eq!(
            field_of(json!({"name": "a", "batch": {"max_event": 1}}), "config").field,
            "config.batch.max_event"
        );
        assert_eq!(field_of(json!("x"), "").field, "body");
    }

    #[test]
    fn bounded_takes_integral_floats_and_refuses_the_rest() {
        let ok: Batch = serde_json::from_value(json!({"max_events": 5.0})).unwrap();
        assert_eq!(ok.max_events, Some(Bounded(5)));
        for bad in [json!(0), json!(11), json!(2.5), json!("5"), json!(-1)] {
            assert!(
                serde_json::from_value::<Batch>(json!({"max_events": bad})).is_err(),
                "{bad}"
            );
        }
    }
}
