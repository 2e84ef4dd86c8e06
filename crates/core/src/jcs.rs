//! A small borrowed RFC 8785 (JCS) writer for the free-form members (`metadata`, `changes`) on
//! the fast path: the JSON is deserialised into a light tree that borrows its strings from the
//! request where it can (no `serde_json::Value`, no `IndexMap`), object members are sorted by
//! their UTF-16 code units while parsing, and numbers are printed as ECMAScript prints them.
//! Its output equals `serde_jcs::to_string(&serde_json::Value)` for the same text (unit tests
//! below check that); the full validator path uses serde_jcs itself.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::event::push_json_string;

/// The largest integer every IEEE double below it represents exactly (2^53).
const MAX_EXACT: u64 = 1 << 53;

/// Whether an integer (as serde_json read it: `u64` or `i64`) is printed by RFC 8785 with the
/// same value. Non-integers (`None, None`) are printed as the double they parsed to, and pass.
pub(crate) fn is_exact(as_u64: Option<u64>, as_i64: Option<i64>) -> bool {
    match (as_u64, as_i64) {
        (Some(u), _) => u <= MAX_EXACT,
        (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT,
        (None, None) => true,
    }
}

/// One JSON value as serde_json parses it (numbers as `u64`, `i64` or `f64`, like `Value`).
#[derive(Debug)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Members sorted in JCS order, keys unique (the last of duplicates wins, as in `Value`).
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// Whether [`write`](Self::write) prints exactly RFC 8785: false when an integer beyond
    /// ±2^53 is kept digit for digit.
    pub(crate) fn is_strict(&self) -> bool {
        match self {
            Json::U64(n) => is_exact(Some(*n), None),
            Json::I64(n) => is_exact(None, Some(*n)),
            Json::Arr(items) => items.iter().all(Json::is_strict),
            Json::Obj(members) => members.iter().all(|(_, v)| v.is_strict()),
            _ => true,
        }
    }

    /// Parses JSON text (the full validator's slow path renders through this too, so both
    /// paths print the same bytes).
    pub(crate) fn parse(text: &str) -> Option<Json<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Appends the JCS serialisation.
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            // Integers keep every digit, even beyond 2^53 where RFC 8785 would print the nearest
            // double: the stored event stays as the client sent it, and the chain hashes the
            // strict form instead (`is_strict`, `NewEvent::strict_jcs`).
            Json::U64(n) => push_digits(out, *n),
            Json::I64(n) => {
                if *n < 0 {
                    out.push('-');
                }
                push_digits(out, n.unsigned_abs());
            }
            Json::F64(f) => push_f64(out, *f),
            Json::Str(s) => push_json_string(out, s),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(out, key);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Integers below 2^53 are exact doubles, which ECMAScript prints as plain digits.
const EXACT: u64 = 1 << 53;

/// A number as JCS prints it: the IEEE double nearest to `n`, ECMAScript style.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    if n < EXACT {
        push_digits(out, n);
    } else {
        push_f64(out, n as f64);
    }
}

fn push_f64(out: &mut String, f: f64) {
    // serde_json never yields a non-finite number (it refuses `1e400`); print one as null
    // rather than panic, which is what serde_json itself does.
    if f.is_finite() {
        out.push_str(ryu_js::Buffer::new().format_finite(f));
    } else {
        out.push_str("null");
    }
}

/// Writes the decimal digits of `n` at the end of `buf`; returns where they start.
fn digits_at_end(mut n: u64, buf: &mut [u8]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

/// Decimal digits of `n` without allocating.
fn push_digits(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let start = digits_at_end(n, &mut buf);
    for &b in &buf[start..] {
        out.push(b as char);
    }
}

/// Writes `offset` as JCS prints it at the end of `buf`; returns where it starts.
pub(crate) fn offset_digits(offset: u64, buf: &mut [u8; 32]) -> usize {
    if offset < EXACT {
        digits_at_end(offset, buf)
    } else {
        let mut ryu = ryu_js::Buffer::new();
        let text = ryu.format_finite(offset as f64).as_bytes();
        // At most "18446744073709552000" (20 bytes): fits.
        let start = buf.len() - text.len();
        buf[start..].copy_from_slice(text);
        start
    }
}

/// JCS member order: by UTF-16 code units. UTF-8 byte order is code point order, which differs
/// only between U+E000–U+FFFF and the supplementary planes (surrogates sort below U+E000).
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    fn rank(c: char) -> u32 {
        let c = c as u32;
        if (0xE000..0x1_0000).contains(&c) {
            c + 0x11_0000
        } else {
            c
        }
    }
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.chars().map(rank).cmp(b.chars().map(rank))
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor(PhantomData))
    }
}

struct JsonVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'a>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'a>, E> {
        Ok(Json::U64(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'a>, E> {
        Ok(Json::I64(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'a>, E> {
        Ok(Json::F64(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'a>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'a>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'a>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'a>, A::Error> {
        let mut members: Vec<(Cow<'a, str>, Json<'a>)> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            let value = map.next_value()?;
            members.push((key, value));
        }
        // Stable: duplicates stay in input order, so the last one is the one to keep.
        members.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
        if members.windows(2).any(|w| w[0].0 == w[1].0) {
            let mut unique: Vec<(Cow<'a, str>, Json<'a>)> = Vec::with_capacity(members.len());
            for member in members {
                match unique.last_mut() {
                    Some(last) if last.0 == member.0 => *last = member,
                    _ => unique.push(member),
                }
            }
            members = unique;
        }
        Ok(Json::Obj(members))
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ours(text: &str) -> String {
        let tree: Json<'_> = serde_json::from_str(text).unwrap();
        let mut out = String::new();
        tree.write(&mut out);
        out
    }

    #[test]
    fn the_writer_matches_serde_jcs() {
        for text in [
            r#"{"b":1,"a":2,"\u00e9":3,"\ue000":4,"\ud83d\ude00":5,"A":6,"":7}"#,
            r#"{"n":[1e21,1e20,0.000001,1e-7,-0.0,-0,1.0,123456789012345678901,0.1,5e-324,1.7976931348623157e308]}"#,
            r#"{"s":"\"\\\/\b\f\n\r\t\u0000\u001f\u007f\u2028é😀","k\nk":null,"t":true,"f":false}"#,
            r#"{"deep":{"z":{"y":[{"b":[],"a":{}}]},"a":[[[]]]}}"#,
            r#"{"dup":1,"x":0,"dup":2}"#,
            r#"[1,"two",{"3":3,"10":10}]"#,
            r#""just a string""#,
            "-12.5e3",
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours(text), serde_jcs::to_string(&value).unwrap(), "{text}");
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+E000 is one code unit; U+1F600 is a surrogate pair starting 0xD83D < 0xE000.
        assert_eq!(cmp_utf16("\u{e000}", "\u{1f600}"), Ordering::Greater);
        assert_eq!("\u{e000}".cmp("\u{1f600}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{d7ff}", "\u{1f600}"), Ordering::Less);
        assert_eq!(cmp_utf16("a", "ab"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{10000}", "\u{10ffff}"), Ordering::Less);
    }

    #[test]
    fn offsets_print_as_jcs_numbers() {
        for offset in [0u64, 1, 42, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, u64::MAX] {
            let mut buf = [0u8; 32];
            let start = offset_digits(offset, &mut buf);
            assert_eq!(
                std::str::from_utf8(&buf[start..]).unwrap(),
                serde_jcs::to_string(&offset).unwrap()
            );
        }
    }
}
