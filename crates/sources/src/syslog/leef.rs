//! IBM QRadar LEEF payloads (1.0 and 2.0), the inverse of `auditrelay_format`'s LEEF encoder
//! (pure). `LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|k=v<delim>k=v…`; LEEF 1.0 has no
//! delimiter field and separates attributes with TAB. LEEF has no escapes: each attribute splits
//! at its first `=`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub product_version: String,
    pub event_id: String,
    pub delimiter: char,
    pub attributes: BTreeMap<String, String>,
}

/// `None` when `text` is not LEEF; `Err` when its header is cut short or names a bad delimiter.
pub fn parse(text: &str) -> Option<Result<Leef, String>> {
    let body = text.trim_start().strip_prefix("LEEF:")?;
    Some(parse_body(body))
}

fn parse_body(body: &str) -> Result<Leef, String> {
    let mut parts = body.splitn(6, '|');
    let mut next = |what: &str| {
        parts
            .next()
            .map(str::to_owned)
            .ok_or_else(|| format!("LEEF header ends before {what}"))
    };
    let version = next("the version")?;
    let vendor = next("the vendor")?;
    let product = next("the product")?;
    let product_version = next("the product version")?;
    let event_id = next("the event id")?;
    let rest = parts.next().unwrap_or("");
    let (delimiter, attrs) = if version.starts_with('2') {
        // 2.0: the delimiter field, then the attributes.
        let (d, attrs) = rest.split_once('|').unwrap_or((rest, ""));
        (delimiter(d)?, attrs)
    } else {
        ('\t', rest)
    };
    let mut attributes = BTreeMap::new();
    for pair in attrs.split(delimiter).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = pair.split_once('=') {
            attributes.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    Ok(Leef {
        version,
        vendor,
        product,
        product_version,
        event_id,
        delimiter,
        attributes,
    })
}

/// The 2.0 delimiter field: one character, or `xHH` / `0xHH` (1 to 4 hex digits); empty = TAB.
fn delimiter(d: &str) -> Result<char, String> {
    let hex = d.strip_prefix("0x").or_else(|| d.strip_prefix('x'));
    match (hex, d.chars().count()) {
        (_, 0) => Ok('\t'),
        (None, 1) => d.chars().next().ok_or_else(|| "empty delimiter".into()),
        (Some(h), _) if (1..=4).contains(&h.len()) => u32::from_str_radix(h, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("LEEF delimiter `{d}` is not a character")),
        _ => Err(format!("LEEF delimiter `{d}` is neither one character nor `xHH`")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leef_1_and_2() {
        let l = parse("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\tsev=5")
            .unwrap()
            .unwrap();
        assert_eq!(l.event_id, "15345");
        assert_eq!(l.attributes["dst"], "172.50.123.1");
        assert_eq!(l.attributes["sev"], "5");
        let l = parse("LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^msg=a=b")
            .unwrap()
            .unwrap();
        assert_eq!(l.delimiter, '^');
        assert_eq!(l.attributes["msg"], "a=b");
        let l = parse("LEEF:2.0|V|P|1|ID|x09|a=1\tb=2").unwrap().unwrap();
        assert_eq!(l.attributes["b"], "2");
        let l = parse("LEEF:2.0|V|P|1|ID|0x7C|a=1|b=2").unwrap().unwrap();
        assert_eq!((l.delimiter, l.attributes.len()), ('|', 2));
    }

    #[test]
    fn bad_headers() {
        assert!(parse("nope").is_none());
        assert!(parse("LEEF:2.0|V|P").unwrap().is_err());
        assert!(parse("LEEF:2.0|V|P|1|ID|xZZ|a=1").unwrap().is_err());
    }
}
