//! ArcSight CEF:0 (docs/formats.md has the field table).
//!
//! `CEF:0|Vendor|Product|Version|<type>|<action or type>|<severity>|<extension>`
//!
//! Escaping follows the CEF Implementation Standard exactly: in the header `\` and `|` are
//! backslash-escaped; in extension values `\` and `=` are, and CR/LF become the two-character
//! escapes `\r` / `\n` (the only place CEF allows line breaks). Every other control character
//! (and U+2028/U+2029) is replaced by U+FFFD everywhere, as are CR/LF in the header: CEF has no
//! escape for them, and a raw one would end the record in any line-based transport. Values are
//! capped to the standard's length for their key *before* escaping (the limits describe the
//! value, not its encoding).

use std::net::IpAddr;

use crate::text::{cap, is_unsafe, replace_chars};
use crate::view::EventView;
use crate::FormatOptions;

/// Header field limits (CEF Implementation Standard).
pub const VENDOR_MAX: usize = 63;
pub const PRODUCT_MAX: usize = 63;
pub const VERSION_MAX: usize = 31;
pub const CLASS_ID_MAX: usize = 1023;
pub const NAME_MAX: usize = 512;
/// Extension limits: `act` and `outcome` are 63, `externalId` 40, every other string key we use
/// is 1023 (the standard gives `cs1`…`cs6` 4000 in some editions and 1023 in others; we take
/// the lower so no edition's receiver truncates).
pub const ACT_MAX: usize = 63;
pub const OUTCOME_MAX: usize = 63;
pub const EXTERNAL_ID_MAX: usize = 40;
pub const STRING_MAX: usize = 1023;

/// `CEF:0|…` for one event.
pub(crate) fn encode(ev: &EventView<'_>, o: &FormatOptions) -> String {
    let mut out = String::with_capacity(256 + ev.event_type.len());
    out.push_str("CEF:0|");
    push_header(&mut out, &o.vendor, VENDOR_MAX);
    push_header(&mut out, &o.product, PRODUCT_MAX);
    push_header(&mut out, &o.product_version, VERSION_MAX);
    // Device Event Class ID: the event type, which is what SIEM rules key on.
    push_header(&mut out, ev.event_type, CLASS_ID_MAX);
    // Name: the human-readable verb when the event has one.
    push_header(&mut out, ev.action.as_deref().unwrap_or(ev.event_type), NAME_MAX);
    // The API's severity is already CEF's 0–10 scale; a body without a valid one (never the
    // case for a stored event) says so with CEF's own word rather than a made-up number.
    match ev.severity {
        Some(s) => out.push_str(&s.to_string()),
        None => out.push_str("Unknown"),
    }
    out.push('|');

    let mut ext = Extension { out, first: true };
    ext.number("rt", ev.time_ms());
    ext.text("externalId", Some(ev.id), EXTERNAL_ID_MAX);
    ext.text("act", ev.action.as_deref(), ACT_MAX);
    ext.text("outcome", ev.outcome.as_deref(), OUTCOME_MAX);
    let a = &ev.actor;
    ext.text("suser", a.name.as_deref().or(a.id.as_deref()), STRING_MAX);
    ext.text("suid", a.id.as_deref(), STRING_MAX);
    // `src` is an IPv4 field in CEF:0; IPv6 goes to the custom IPv6 slot the standard reserves
    // for a source address (c6a2, "Source IPv6 Address"). An unparsable value (impossible after
    // validation) is dropped rather than put where a receiver expects an address.
    match ev.actor_ip() {
        Some(IpAddr::V4(ip)) => ext.text("src", Some(&ip.to_string()), STRING_MAX),
        Some(IpAddr::V6(ip)) => {
            ext.text("c6a2", Some(&ip.to_string()), STRING_MAX);
            ext.text("c6a2Label", Some("Source IPv6 Address"), STRING_MAX);
        }
        None => {}
    }
    ext.text("requestClientApplication", a.user_agent.as_deref(), STRING_MAX);
    // The target as the destination user: CEF has no generic "object acted on" key, and
    // duid/duser are what ArcSight content uses for the account an action affects.
    ext.text("duid", ev.target.id.as_deref(), STRING_MAX);
    ext.text("duser", ev.target.name.as_deref(), STRING_MAX);
    ext.text("sourceServiceName", ev.source.service.as_deref(), STRING_MAX);
    ext.text("msg", ev.changes_json().as_deref(), STRING_MAX);
    if let Some(ms) = ev.received_ms() {
        ext.number("deviceCustomDate1", Some(ms));
        ext.text("deviceCustomDate1Label", Some("received_at"), STRING_MAX);
    }
    ext.labelled("cs1", "tenant_id", Some(ev.tenant_id));
    ext.labelled("cs2", "request_id", ev.request_id.as_deref());
    ext.labelled("cs3", "target_type", ev.target.kind.as_deref());
    ext.labelled("cs4", "actor_type", a.kind.as_deref());
    ext.labelled("cs5", "actor_email", a.email.as_deref());
    ext.labelled("cs6", "source_instance", ev.source.instance.as_deref());
    // The log position and hash chain (docs/integrity.md), so a SIEM's copy shows gaps,
    // reordering and alterations: cn1 is CEF's 64-bit custom number, flexString1 a string.
    ext.text("cn1", Some(&ev.offset.to_string()), STRING_MAX);
    ext.text("cn1Label", Some("offset"), STRING_MAX);
    if let Some(chain) = ev.chain.as_deref() {
        ext.text("flexString1", Some(chain), STRING_MAX);
        ext.text("flexString1Label", Some("chain"), STRING_MAX);
    }
    ext.out
}

/// One header field and its closing `|`.
fn push_header(out: &mut String, value: &str, max: usize) {
    let clean = replace_chars(value, is_unsafe);
    for c in cap(&clean, max).chars() {
        if matches!(c, '\\' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('|');
}

struct Extension {
    out: String,
    first: bool,
}

impl Extension {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
    }

    fn number(&mut self, key: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.key(key);
            self.out.push_str(&v.to_string());
        }
    }

    fn text(&mut self, key: &str, value: Option<&str>, max: usize) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        self.key(key);
        let clean = replace_chars(value, |c| is_unsafe(c) && c != '\r' && c != '\n');
        for c in cap(&clean, max).chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '=' => self.out.push_str("\\="),
                '\r' => self.out.push_str("\\r"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
    }

    /// A custom string and its label (only when there is a value to label).
    fn labelled(&mut self, key: &str, label: &str, value: Option<&str>) {
        if value.is_some_and(|v| !v.is_empty()) {
            self.text(&format!("{key}Label"), Some(label), STRING_MAX);
            self.text(key, value, STRING_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> String {
        let mut s = String::new();
        push_header(&mut s, v, 100);
        s
    }

    fn ext(v: &str) -> String {
        let mut e = Extension {
            out: String::new(),
            first: true,
        };
        e.text("k", Some(v), 100);
        e.out
    }

    #[test]
    fn header_escaping_follows_the_standard() {
        assert_eq!(header(r"a|b\c=d"), r"a\|b\\c=d|");
        assert_eq!(header("l1\r\nl2\0"), "l1\u{FFFD}\u{FFFD}l2\u{FFFD}|");
    }

    #[test]
    fn extension_escaping_follows_the_standard() {
        // The standard's own examples: `|` is not escaped in the extension, `=` is.
        assert_eq!(ext("blocked a | dst=1.1.1.1"), r"k=blocked a | dst\=1.1.1.1");
        assert_eq!(ext("a\\b\r\nc\td\0"), "k=a\\\\b\\r\\nc\u{FFFD}d\u{FFFD}");
    }

    #[test]
    fn caps_apply_to_the_value_before_escaping() {
        let mut e = Extension {
            out: String::new(),
            first: true,
        };
        e.text("k", Some("=====x"), 3);
        assert_eq!(e.out, r"k=\=\=\=");
    }
}
