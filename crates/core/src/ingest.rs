//! Turns a request body into validated events, or one error that names what is wrong and where.
//! All-or-nothing: any invalid event rejects the whole request (api.md), so nothing is stored.

use serde_json::value::RawValue;

use crate::event::ParsedEvent;
pub use crate::ingest_error::IngestError;
use crate::limits::Limits;
use crate::validate::validate_event;

/// How the body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One event object, or a JSON array of them.
    Json,
    /// One event object per line.
    Ndjson,
}

fn malformed(index: Option<usize>, line_base: usize, e: &serde_json::Error) -> IngestError {
    IngestError::MalformedJson {
        index,
        line: line_base + e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Splits and validates a request body. Limits are checked before any event is validated, so
/// an oversized request costs little.
pub fn parse_request(body: &[u8], format: BodyFormat, limits: &Limits) -> Result<Vec<ParsedEvent>, IngestError> {
    if body.len() > limits.max_request_bytes {
        return Err(IngestError::RequestTooLarge {
            size: body.len(),
            limit: limits.max_request_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8 {
        byte_offset: e.valid_up_to(),
    })?;
    let raws: Vec<(usize, &str)> = match format {
        BodyFormat::Json => split_json(text)?,
        BodyFormat::Ndjson => split_ndjson(text, limits)?,
    };
    if raws.is_empty() {
        return Err(IngestError::Empty);
    }
    if raws.len() > limits.max_request_events {
        return Err(IngestError::TooManyEvents {
            count: raws.len(),
            limit: limits.max_request_events,
        });
    }
    let mut events = Vec::with_capacity(raws.len());
    for (index, (line_base, raw)) in raws.into_iter().enumerate() {
        if raw.len() > limits.max_event_bytes {
            return Err(IngestError::EventTooLarge {
                index,
                size: raw.len(),
                limit: limits.max_event_bytes,
            });
        }
        if let Some(fast) = crate::fast::try_fast(index, raw) {
            events.push(fast);
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => return Err(malformed(Some(index), line_base, &e)),
        };
        events.push(validate_event(index, value)?);
    }
    Ok(events)
}

/// A JSON body is one object or an array of objects. Array elements are kept as the exact
/// slices the client sent.
fn split_json(text: &str) -> Result<Vec<(usize, &str)>, IngestError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    match trimmed.as_bytes().first() {
        None => Err(IngestError::Empty),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| malformed(None, 0, &e))?;
            Ok(items.into_iter().map(|r| (0, r.get())).collect())
        }
        Some(b'{') => Ok(vec![(0, trimmed)]),
        Some(_) => Err(IngestError::MalformedJson {
            index: None,
            line: 1,
            column: 1,
            message: "expected a JSON object or an array of objects".into(),
        }),
    }
}

/// NDJSON: one event per line; blank lines are ignored. Counting stops early past the limit so
/// a flood of lines is refused without splitting it all.
fn split_ndjson<'a>(text: &'a str, limits: &Limits) -> Result<Vec<(usize, &'a str)>, IngestError> {
    let mut out = Vec::new();
    for (line_no, line) in text.split('\n').enumerate() {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() {
            continue;
        }
        if out.len() == limits.max_request_events {
            let rest = text.split('\n').skip(line_no).filter(|l| !l.trim().is_empty()).count();
            return Err(IngestError::TooManyEvents {
                count: out.len() + rest,
                limit: limits.max_request_events,
            });
        }
        // serde_json numbers lines from 1 within the slice; report lines of the whole body.
        out.push((line_no, line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, format: BodyFormat) -> Result<Vec<ParsedEvent>, IngestError> {
        parse_request(body.as_bytes(), format, &Limits::default())
    }

    #[test]
    fn single_array_and_ndjson() {
        assert_eq!(parse(r#"{"type":"a.b"}"#, BodyFormat::Json).unwrap().len(), 1);
        let arr = parse(r#"[{"type":"a.b"}, {"type":"c.d","id":"x"}]"#, BodyFormat::Json).unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[1].client_id.as_deref(), Some("x"));
        let nd = parse("{\"type\":\"a.b\"}\n\n{\"type\":\"c.d\"}\r\n", BodyFormat::Ndjson).unwrap();
        assert_eq!(nd.len(), 2);
        assert_eq!(nd[1].event_type, "c.d");
    }

    #[test]
    fn errors_name_the_event() {
        let err = parse(r#"[{"type":"a.b"},{"type":"BAD"}]"#, BodyFormat::Json).unwrap_err();
        assert!(matches!(err, IngestError::InvalidEvent { index: 1, ref field, .. } if field == "type"));
        let err = parse("{\"type\":\"a.b\"}\n{nope", BodyFormat::Ndjson).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::MalformedJson {
                    index: Some(1),
                    line: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(parse("[]", BodyFormat::Json).unwrap_err(), IngestError::Empty);
        assert_eq!(parse("  ", BodyFormat::Json).unwrap_err(), IngestError::Empty);
        assert!(matches!(
            parse("42", BodyFormat::Json).unwrap_err(),
            IngestError::MalformedJson { .. }
        ));
        assert!(matches!(
            parse_request(b"{\"type\":\"a.\xff\"}", BodyFormat::Json, &Limits::default()).unwrap_err(),
            IngestError::InvalidUtf8 { byte_offset: 11 }
        ));
    }

    #[test]
    fn limits() {
        let limits = Limits::default();
        let big = format!(r#"{{"type":"a.b","metadata":{{"x":"{}"}}}}"#, "y".repeat(70_000));
        assert!(matches!(
            parse(&big, BodyFormat::Json).unwrap_err(),
            IngestError::EventTooLarge { index: 0, .. }
        ));
        let many = format!("[{}]", vec![r#"{"type":"a.b"}"#; 10_001].join(","));
        assert!(matches!(
            parse(&many, BodyFormat::Json).unwrap_err(),
            IngestError::TooManyEvents { count: 10_001, .. }
        ));
        let many_nd = vec![r#"{"type":"a.b"}"#; 10_001].join("\n");
        assert!(matches!(
            parse(&many_nd, BodyFormat::Ndjson).unwrap_err(),
            IngestError::TooManyEvents { count: 10_001, .. }
        ));
        let huge = vec![b' '; limits.max_request_bytes + 1];
        assert!(parse_request(&huge, BodyFormat::Json, &limits)
            .unwrap_err()
            .is_too_large());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // 200 KB of brackets: refused (as too large for one event) without recursing.
        assert!(parse(&deep, BodyFormat::Json).is_err());
        // Within the size limits, serde_json's recursion limit refuses it as malformed.
        let roomy = Limits {
            max_event_bytes: 1 << 20,
            ..Limits::default()
        };
        let err = parse_request(deep.as_bytes(), BodyFormat::Json, &roomy).unwrap_err();
        assert!(matches!(err, IngestError::MalformedJson { .. }), "{err:?}");
        let deep_obj = format!(
            r#"{{"type":"a.b","metadata":{}1{}}}"#,
            r#"{"a":"#.repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(parse(&deep_obj, BodyFormat::Json).is_err());
    }
}
