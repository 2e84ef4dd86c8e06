//! Turning a file of events into one compact JSON text per event.
//!
//! The events are kept as the exact text the user wrote (only insignificant whitespace is
//! removed), not parsed into values and printed again: a round trip through `serde_json::Value`
//! would rewrite numbers such as `1.10` or `1e3`, and the audit trail should carry what the
//! producer said.

use serde_json::value::RawValue;

/// The input is not a JSON array of objects, one JSON object, or NDJSON.
///
/// `line` and `column` are 1-based and count in the whole input, so that an editor can jump to
/// the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SplitError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl SplitError {
    fn from_json(err: &serde_json::Error, line_base: usize) -> Self {
        // serde_json's Display appends " at line L column C"; we report those as fields.
        let text = err.to_string();
        let message = match text.rsplit_once(" at line ") {
            Some((msg, _)) => msg.to_string(),
            None => text,
        };
        SplitError {
            line: line_base + err.line().max(1) - 1,
            column: err.column().max(1),
            message: format!("invalid JSON: {message}"),
        }
    }
}

/// Splits `text` into events, one compact JSON object text per event, in input order.
///
/// The format is detected, not declared, so that `emit` takes whatever a producer wrote:
/// * first non-whitespace character `[`: a JSON array whose elements are the events;
/// * otherwise NDJSON, one event per non-blank line (CRLF line ends are fine); a single JSON
///   object, even pretty-printed over many lines, is accepted too, and so is a stream of
///   pretty-printed objects one after another (what `jq '.[]'` prints).
///
/// Every event must be a JSON object (the server would reject anything else, and it is better
/// to say so before anything was sent). Empty or all-whitespace input gives no events. A UTF-8
/// byte-order mark is skipped.
pub fn split_events(text: &str) -> Result<Vec<String>, SplitError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().chars().next() {
        None => Ok(Vec::new()),
        Some('[') => split_array(text),
        Some(_) => split_stream(text),
    }
}

fn split_array(text: &str) -> Result<Vec<String>, SplitError> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| SplitError::from_json(&e, 1))?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let json = raw.get();
            if json.starts_with('{') {
                Ok(minify_json(json))
            } else {
                let (line, column) = position_of(text, json);
                Err(SplitError {
                    line,
                    column,
                    message: format!("array element {index} is not a JSON object"),
                })
            }
        })
        .collect()
}

/// NDJSON first, line by line, because its error messages are the useful ones for NDJSON (a
/// truncated line is reported on that line, not where the parser finally gives up further
/// down). If that fails, the input may be one or more multi-line objects: try it as a stream
/// of JSON values. If both fail, report the NDJSON error when the first line is a complete value
/// on its own (so the input is evidently NDJSON), the stream error otherwise.
fn split_stream(text: &str) -> Result<Vec<String>, SplitError> {
    let ndjson_err = match split_ndjson(text) {
        Ok(events) => return Ok(events),
        Err(e) => e,
    };
    let stream_err = match split_concatenated(text) {
        Ok(events) => return Ok(events),
        Err(e) => e,
    };
    let first_line_is_value = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| serde_json::from_str::<&RawValue>(l).is_ok());
    Err(if first_line_is_value { ndjson_err } else { stream_err })
}

fn split_ndjson(text: &str) -> Result<Vec<String>, SplitError> {
    let mut events = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let raw: &RawValue = serde_json::from_str(trimmed).map_err(|e| {
            let mut err = SplitError::from_json(&e, line_no);
            // Columns are relative to the trimmed line; add back the leading whitespace.
            err.column += line.len() - line.trim_start().len();
            err
        })?;
        if !raw.get().starts_with('{') {
            return Err(SplitError {
                line: line_no,
                column: 1 + line.len() - line.trim_start().len(),
                message: "the event is not a JSON object".into(),
            });
        }
        events.push(minify_json(raw.get()));
    }
    Ok(events)
}

fn split_concatenated(text: &str) -> Result<Vec<String>, SplitError> {
    let mut events = Vec::new();
    for item in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let raw = item.map_err(|e| SplitError::from_json(&e, 1))?;
        if !raw.get().starts_with('{') {
            let (line, column) = position_of(text, raw.get());
            return Err(SplitError {
                line,
                column,
                message: "the event is not a JSON object".into(),
            });
        }
        events.push(minify_json(raw.get()));
    }
    Ok(events)
}

/// 1-based line and column (in characters) of `part`, which must be a sub-slice of `whole`.
fn position_of(whole: &str, part: &str) -> (usize, usize) {
    let offset = (part.as_ptr() as usize)
        .saturating_sub(whole.as_ptr() as usize)
        .min(whole.len());
    let before = whole.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Removes the whitespace outside strings from a valid JSON text, giving one line that is
/// byte-for-byte the same JSON otherwise (numbers, escapes and key order untouched).
///
/// The input must be valid JSON: inside strings a raw newline cannot occur, so the result never
/// spans lines and can go into NDJSON as is.
pub fn minify_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<String> {
        match split_events(text) {
            Ok(v) => v,
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    fn err(text: &str) -> SplitError {
        match split_events(text) {
            Ok(v) => panic!("{text:?} should fail, got {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn array_of_objects() {
        let text = "  [\n {\"type\": \"a.b\", \"n\": 1.10},\n {\"type\":\"c.d\", \"s\": \"x y\\\" z\"}\n]\n";
        assert_eq!(
            ok(text),
            vec![
                r#"{"type":"a.b","n":1.10}"#.to_string(),
                r#"{"type":"c.d","s":"x y\" z"}"#.to_string(),
            ]
        );
        assert!(ok("[]").is_empty());
    }

    #[test]
    fn single_pretty_object() {
        let text = "{\n  \"type\": \"user.login\",\n  \"actor\": { \"id\": \"u 1\" },\n  \"severity\": 1e1\n}\n";
        assert_eq!(
            ok(text),
            vec![r#"{"type":"user.login","actor":{"id":"u 1"},"severity":1e1}"#.to_string()]
        );
    }

    #[test]
    fn ndjson_with_blank_lines_and_crlf() {
        let text = "\r\n{\"type\":\"a.b\"}\r\n\r\n   \n{ \"type\" : \"c.d\" }\r\n\n";
        assert_eq!(
            ok(text),
            vec![r#"{"type":"a.b"}"#.to_string(), r#"{"type":"c.d"}"#.to_string()]
        );
        assert_eq!(ok("\u{feff}{\"type\":\"a.b\"}").len(), 1);
        assert!(ok("").is_empty());
        assert!(ok(" \n\r\n\t").is_empty());
    }

    #[test]
    fn concatenated_pretty_objects() {
        let text = "{\n \"type\": \"a.b\"\n}\n{\n \"type\": \"c.d\"\n}\n";
        assert_eq!(ok(text).len(), 2);
    }

    #[test]
    fn ndjson_error_names_the_line() {
        let e = err("{\"type\":\"a.b\"}\n\n{\"type\":\"c.d\"\n{\"type\":\"e.f\"}\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.starts_with("invalid JSON"), "{e}");
        let e = err("{\"type\":\"a.b\"}\r\n  {\"type\": x}\r\n");
        assert_eq!((e.line, e.column), (2, 12), "{e}");
        let e = err("{\"type\":\"a.b\"}\n42\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not a JSON object"), "{e}");
        let e = err("hello\n");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn pretty_object_error_names_the_real_line() {
        // The first line alone is not a value, so the whole-document error is reported.
        let e = err("{\n  \"type\": \"a.b\",\n  \"x\": ,\n}\n");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn array_errors_name_the_line() {
        let e = err("[\n {\"type\":\"a.b\"},\n {\"type\":}\n]");
        assert_eq!(e.line, 3, "{e}");
        let e = err("[\n {\"type\":\"a.b\"},\n  \"oops\"\n]");
        assert_eq!((e.line, e.column), (3, 3), "{e}");
        assert!(e.message.contains("element 1"), "{e}");
        let e = err("[{\"type\":\"a.b\"}] trailing");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn minify_keeps_strings_intact() {
        assert_eq!(
            minify_json("{ \"a b\" : \"c\\\\\" , \"d\":[ 1 , 2 ],\"e\":\"\\\"  \" }"),
            r#"{"a b":"c\\","d":[1,2],"e":"\"  "}"#
        );
    }
}
