//! Reading a CSV compliance export (`GET /v1/export?format=csv`) back for `verify`: each
//! record's last column is the event exactly as the `json` format carries it, which is what the
//! chain covers; the `offset` and `chain` columns must agree with it, so a spreadsheet edit of
//! either is caught too.

use serde_json::Value;

/// The header line the server writes (without its CRLF).
pub const HEADER: &str = "offset,id,type,occurred_at,received_at,chain,event";

/// Splits one CSV record (RFC 4180; the export never puts a line break inside a field, since
/// the JSON in it escapes them) into its fields.
pub fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("text after a closing quote".into());
                }
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(field);
    Ok(out)
}

/// The event JSON of one record, after checking its `offset` and `chain` columns match it.
pub fn event_of(line: &str) -> Result<String, String> {
    let f = fields(line)?;
    if f.len() != 7 {
        return Err(format!("{} columns, expected 7 ({HEADER})", f.len()));
    }
    let event: Value = serde_json::from_str(&f[6]).map_err(|e| format!("the event column is not JSON: {e}"))?;
    let offset = event["offset"].as_u64().map(|o| o.to_string()).unwrap_or_default();
    if f[0] != offset {
        return Err(format!("the offset column says {} but the event says {offset}", f[0]));
    }
    let chain = event["chain"].as_str().unwrap_or_default();
    if f[5] != chain {
        return Err(format!(
            "the chain column of offset {offset} differs from the event's chain"
        ));
    }
    Ok(f[6].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_commas_and_doubled_quotes() {
        let line = "3,evt_1,a.b,,,ab,\"{\"\"offset\"\":3,\"\"chain\"\":\"\"ab\"\",\"\"x\"\":\"\"a,b\"\"}\"\r";
        let f = fields(line).unwrap();
        assert_eq!(f.len(), 7);
        assert_eq!(f[6], r#"{"offset":3,"chain":"ab","x":"a,b"}"#);
        assert_eq!(event_of(line).unwrap(), f[6]);
    }

    #[test]
    fn columns_that_disagree_with_the_event_are_named() {
        let line = "4,evt_1,a.b,,,ab,\"{\"\"offset\"\":3,\"\"chain\"\":\"\"ab\"\"}\"";
        assert!(event_of(line).unwrap_err().contains("offset column says 4"));
        let line = "3,evt_1,a.b,,,cd,\"{\"\"offset\"\":3,\"\"chain\"\":\"\"ab\"\"}\"";
        assert!(event_of(line).unwrap_err().contains("chain column"));
        assert!(fields("\"open").is_err());
        assert!(fields("\"a\"b,c").is_err());
    }
}
