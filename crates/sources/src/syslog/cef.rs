//! ArcSight CEF payloads, the inverse of `auditrelay_format`'s CEF encoder (pure).
//!
//! `CEF:Version|Vendor|Product|Version|Class ID|Name|Severity|Extension`: header fields escape
//! `\` and `|`; extension values escape `\` and `=` and carry `\n`/`\r` for line breaks. A key
//! is the word right before an unescaped `=`; its value runs to the space before the next key.

use std::collections::BTreeMap;

/// A parsed CEF record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub product_version: String,
    pub class_id: String,
    pub name: String,
    pub severity: String,
    /// key → value, in key order (a repeated key keeps its last value).
    pub extension: BTreeMap<String, String>,
}

/// `None` when `text` is not CEF (does not start with `CEF:`); `Err` when it starts like CEF but
/// its header is cut short.
pub fn parse(text: &str) -> Option<Result<Cef, String>> {
    let body = text.trim_start().strip_prefix("CEF:")?;
    let mut fields: Vec<String> = Vec::with_capacity(7);
    let mut current = String::new();
    let mut chars = body.char_indices();
    let mut ext_start = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '|'))) => current.push(e),
                Some((_, other)) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == 7 {
                    ext_start = Some(i + 1);
                    break;
                }
            }
            c => current.push(c),
        }
    }
    let Some(ext_start) = ext_start else {
        return Some(Err(format!(
            "CEF header has {} of its 7 `|`-separated fields",
            fields.len()
        )));
    };
    let mut f = fields.into_iter();
    let mut next = || f.next().unwrap_or_default();
    Some(Ok(Cef {
        version: next(),
        vendor: next(),
        product: next(),
        product_version: next(),
        class_id: next(),
        name: next(),
        severity: next(),
        extension: extension(&body[ext_start..]),
    }))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// Splits `k1=v1 k2=v2 …`.
fn extension(s: &str) -> BTreeMap<String, String> {
    let b = s.as_bytes();
    // Where each key starts and where its `=` is.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut start = i;
                while start > 0 && is_key_byte(b[start - 1]) {
                    start -= 1;
                }
                // A key starts the extension or follows a space; otherwise this `=` is an
                // unescaped one inside a value (tolerated).
                let starts_key = start < i && (start == 0 || b[start - 1] == b' ');
                let after_last = keys.last().is_none_or(|(_, eq)| start > *eq);
                if starts_key && after_last {
                    keys.push((start, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut out = BTreeMap::new();
    for (n, (start, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(s.len(), |(next, _)| next.saturating_sub(1));
        let raw = s.get(eq + 1..end.max(eq + 1)).unwrap_or("");
        let raw = if n + 1 == keys.len() { raw.trim_end() } else { raw };
        out.insert(s[*start..*eq].to_owned(), unescape_value(raw));
    }
    out
}

fn unescape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(e @ ('\\' | '=' | '|')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// CEF severity (`0`–`10`, or `Low`/`Medium`/`High`/`Very-High`) on the API's 0–10 scale.
pub fn severity(s: &str) -> Option<u8> {
    if let Ok(n) = s.trim().parse::<u8>() {
        return (n <= 10).then_some(n);
    }
    match s.trim().to_ascii_lowercase().as_str() {
        "low" => Some(2),
        "medium" => Some(5),
        "high" => Some(8),
        "very-high" | "very high" => Some(10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_standards_examples() {
        let c = parse(r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1")
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "detected a | in message");
        assert_eq!(c.severity, "10");
        assert_eq!(c.extension["src"], "10.0.0.1");
        assert_eq!(c.extension["act"], "blocked a |");
        assert_eq!(c.extension["dst"], "1.1.1.1");
        let c = parse(r"CEF:0|a|b|c|d|e|5|msg=eq \= done\nnext path=C:\\dir cs1Label=x")
            .unwrap()
            .unwrap();
        assert_eq!(c.extension["msg"], "eq = done\nnext");
        assert_eq!(c.extension["path"], r"C:\dir");
        assert_eq!(c.extension["cs1Label"], "x");
    }

    #[test]
    fn values_with_spaces_and_stray_equals() {
        let c = parse("CEF:0|a|b|c|d|e|Low|msg=a b=c=d x suser=bob  ").unwrap().unwrap();
        assert_eq!(c.extension["msg"], "a");
        assert_eq!(c.extension["b"], "c=d x");
        assert_eq!(c.extension["suser"], "bob");
        assert_eq!(severity(&c.severity), Some(2));
    }

    #[test]
    fn not_cef_and_cut_headers() {
        assert!(parse("hello").is_none());
        assert!(parse("CEF:0|a|b").unwrap().is_err());
        let c = parse("CEF:0|a|b|c|d|e|5|").unwrap().unwrap();
        assert!(c.extension.is_empty());
    }
}
