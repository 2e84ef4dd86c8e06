//! IBM QRadar LEEF 2.0 (docs/formats.md has the field table).
//!
//! `LEEF:2.0|Vendor|Product|Version|<type>|<delimiter>|key=value<delimiter>key=value…`
//!
//! LEEF defines no escape mechanism, so values are sanitised instead: the attribute delimiter,
//! every control character (TAB, CR, LF, NUL, …) and U+2028/U+2029 become U+FFFD, and so does `|`
//! in header fields. `=` needs nothing: a reader splits each attribute at its first `=`, and
//! our keys never contain one.

use crate::text::{cap, is_unsafe, replace_chars};
use crate::view::EventView;
use crate::FormatOptions;

/// Attribute delimiters a sink may configure. Letters, digits, `=` and space would break the
/// key=value structure or most values; `'` `-` `.` `:` `+` `_` occur in our own fixed-format
/// values (dates, addresses, the devTimeFormat pattern), which would then be mangled.
pub const DELIMITERS: &[char] = &['^', '|', '\t', '~', ';', ',', '!', '#', '$', '%', '&', '*', '?', '@'];

/// The delimiter actually used: options built by `FormatOptions::from_config` are always valid;
/// a hand-built invalid one falls back to the default `^` rather than producing records no
/// reader can split.
pub fn effective_delimiter(options: &FormatOptions) -> char {
    if DELIMITERS.contains(&options.leef_delimiter) {
        options.leef_delimiter
    } else {
        '^'
    }
}

/// How the header names the delimiter: the character itself, or LEEF's hex form for those that
/// cannot stand in the header (TAB is invisible, `|` would end the field early).
pub fn delimiter_header(c: char) -> String {
    match c {
        '\t' | '|' => format!("x{:02X}", u32::from(c)),
        c => c.to_string(),
    }
}

/// The devTime pattern (Java SimpleDateFormat), as in IBM's own LEEF examples. Times are UTC.
pub const DEV_TIME_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";
pub const EVENT_ID_MAX: usize = 255;
pub const USR_NAME_MAX: usize = 255;
/// Every other value: LEEF sets no limit, QRadar's default payload is a few KiB, so free text is
/// held to CEF's common 1023 bytes.
pub const VALUE_MAX: usize = 1023;

pub(crate) fn encode(ev: &EventView<'_>, o: &FormatOptions) -> String {
    let delim = effective_delimiter(o);
    let mut out = String::with_capacity(256 + ev.event_type.len());
    out.push_str("LEEF:2.0|");
    push_header(&mut out, &o.vendor, usize::MAX);
    push_header(&mut out, &o.product, usize::MAX);
    push_header(&mut out, &o.product_version, usize::MAX);
    push_header(&mut out, ev.event_type, EVENT_ID_MAX);
    out.push_str(&delimiter_header(delim));
    out.push('|');

    let mut a = Attributes {
        out,
        delim,
        first: true,
    };
    if let Some(ms) = ev.time_ms() {
        a.put("devTime", Some(&dev_time(ms)), VALUE_MAX);
        a.put("devTimeFormat", Some(DEV_TIME_FORMAT), VALUE_MAX);
    }
    // LEEF severity is 1–10; the API's 0 ("lowest") becomes 1. No value is better than a guess
    // when the body has none.
    a.put("sev", ev.severity.map(|s| s.max(1).to_string()).as_deref(), VALUE_MAX);
    a.put("cat", Some(ev.event_type), VALUE_MAX);
    let actor = &ev.actor;
    a.put("usrName", actor.name.as_deref().or(actor.id.as_deref()), USR_NAME_MAX);
    a.put("src", ev.actor_ip().map(|ip| ip.to_string()).as_deref(), VALUE_MAX);
    a.put("externalId", Some(ev.id), VALUE_MAX);
    a.put("tenantId", Some(ev.tenant_id), VALUE_MAX);
    a.put("action", ev.action.as_deref(), VALUE_MAX);
    a.put("outcome", ev.outcome.as_deref(), VALUE_MAX);
    a.put("requestId", ev.request_id.as_deref(), VALUE_MAX);
    a.put("actorId", actor.id.as_deref(), VALUE_MAX);
    a.put("actorType", actor.kind.as_deref(), VALUE_MAX);
    a.put("actorEmail", actor.email.as_deref(), VALUE_MAX);
    a.put("userAgent", actor.user_agent.as_deref(), VALUE_MAX);
    a.put("targetType", ev.target.kind.as_deref(), VALUE_MAX);
    a.put("targetId", ev.target.id.as_deref(), VALUE_MAX);
    a.put("targetName", ev.target.name.as_deref(), VALUE_MAX);
    a.put("sourceService", ev.source.service.as_deref(), VALUE_MAX);
    a.put("sourceVersion", ev.source.version.as_deref(), VALUE_MAX);
    a.put("sourceInstance", ev.source.instance.as_deref(), VALUE_MAX);
    a.put("receivedTime", ev.received_ms().map(dev_time).as_deref(), VALUE_MAX);
    a.put("changes", ev.changes_json().as_deref(), VALUE_MAX);
    // The log position and hash chain (docs/integrity.md).
    a.put("offset", Some(&ev.offset.to_string()), VALUE_MAX);
    a.put("chain", ev.chain.as_deref(), VALUE_MAX);
    a.out
}

/// `2026-06-01T10:13:20.000+0000` (matches [`DEV_TIME_FORMAT`]).
fn dev_time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            )
        }
        // Out of jiff's range cannot come from a parsed timestamp; keep the raw number visible.
        Err(_) => ms.to_string(),
    }
}

fn push_header(out: &mut String, value: &str, max: usize) {
    let clean = replace_chars(value, |c| is_unsafe(c) || c == '|');
    out.push_str(cap(&clean, max));
    out.push('|');
}

struct Attributes {
    out: String,
    delim: char,
    first: bool,
}

impl Attributes {
    fn put(&mut self, key: &str, value: Option<&str>, max: usize) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        if !self.first {
            self.out.push(self.delim);
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
        let delim = self.delim;
        let clean = replace_chars(value, |c| is_unsafe(c) || c == delim);
        self.out.push_str(cap(&clean, max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_time_matches_the_pattern() {
        assert_eq!(dev_time(1_780_308_800_123), "2026-06-01T10:13:20.123+0000");
        assert_eq!(dev_time(0), "1970-01-01T00:00:00.000+0000");
    }

    #[test]
    fn delimiter_header_forms() {
        assert_eq!(delimiter_header('^'), "^");
        assert_eq!(delimiter_header('\t'), "x09");
        assert_eq!(delimiter_header('|'), "x7C");
        assert!(DELIMITERS.iter().all(|c| !is_unsafe(*c) || *c == '\t'));
    }

    #[test]
    fn values_lose_the_delimiter_and_line_breaks() {
        let mut a = Attributes {
            out: String::new(),
            delim: '^',
            first: true,
        };
        a.put("k", Some("a^b\r\nc=d|e"), 100);
        a.put("e", Some(""), 100);
        a.put("l", Some("x"), 100);
        assert_eq!(a.out, "k=a\u{FFFD}b\u{FFFD}\u{FFFD}c=d|e^l=x");
    }
}
