//! Text helpers shared by the line formats (cef, leef): control-character policy and length caps.

/// What a character that may not appear in a line format becomes. Visible on purpose: deleting
/// it instead would let `ad\0min` arrive as `admin`, and a space would hide that anything was
/// there at all.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Characters neither CEF nor LEEF may carry as themselves: the C0 and C1 control characters
/// (NUL, TAB, CR, LF, ESC, NEL, …, DEL) and the Unicode line and paragraph separators, which
/// some viewers and syslog relays treat as line breaks.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every character for which `replace` holds turned into [`REPLACEMENT`].
pub(crate) fn replace_chars(s: &str, replace: impl Fn(char) -> bool) -> String {
    s.chars().map(|c| if replace(c) { REPLACEMENT } else { c }).collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary. Caps are
/// counted in UTF-8 bytes, which is never more than the characters a receiver may count, so a
/// value within our cap is within theirs whichever they mean.
pub fn cap(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_on_a_char_boundary() {
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("abcd", 3), "abc");
        assert_eq!(cap("aé", 2), "a"); // é is 2 bytes: never split it
        assert_eq!(cap("€€", 5), "€");
        assert_eq!(cap("😀", 3), "");
        assert_eq!(cap("", 0), "");
    }

    #[test]
    fn unsafe_characters() {
        for c in [
            '\0', '\t', '\r', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\u{2028}', '\u{2029}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
        }
        for c in [' ', '|', '=', '\\', '^', 'é', '\u{a0}', '😀'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
        assert_eq!(replace_chars("a\0b\nc", is_unsafe), "a\u{FFFD}b\u{FFFD}c");
    }
}
