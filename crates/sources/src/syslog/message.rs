//! Syslog headers, without I/O: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) and
//! RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, no year, no zone).

use std::collections::BTreeMap;

use jiff::civil::DateTime;
use jiff::Timestamp;
use serde_json::Value;

use super::config::ProtocolMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rfc5424,
    Rfc3164,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rfc5424 => "rfc5424",
            Protocol::Rfc3164 => "rfc3164",
        }
    }
}

/// A parsed header and the message text.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogMessage {
    pub protocol: Protocol,
    pub facility: u8,
    pub severity: u8,
    /// As written in the message.
    pub timestamp: Option<String>,
    /// The instant, when the timestamp could be read (RFC 3164: this year, UTC).
    pub time: Option<Timestamp>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// SD-ID → PARAM-NAME → value (a repeated name becomes an array).
    pub structured_data: BTreeMap<String, BTreeMap<String, Value>>,
    pub message: String,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Parses one message. `now` places RFC 3164's year-less timestamps.
pub fn parse(bytes: &[u8], mode: ProtocolMode, now: Timestamp) -> Result<SyslogMessage, ParseError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        // RFC 5424 MSG may be any octets; the header is ASCII. Non-UTF-8 text is read lossily
        // here; the original bytes stay in the event (`raw_base64`).
        Err(_) => String::from_utf8_lossy(bytes),
    };
    // Some senders end an octet-counted frame with a line feed (syslog-ng's `syslog()` driver
    // does): framing residue, not message text. The event's `raw` keeps the frame as received.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let (pri, rest) = parse_pri(text)?;
    let (facility, severity) = (pri / 8, pri % 8);
    let is_5424 = rest.starts_with("1 ");
    match (mode, is_5424) {
        (ProtocolMode::Rfc5424, false) => err("not RFC 5424: the version `1` must follow the priority"),
        (ProtocolMode::Rfc5424, true) | (ProtocolMode::Auto, true) => parse_5424(&rest[2..], facility, severity),
        (ProtocolMode::Rfc3164, _) | (ProtocolMode::Auto, false) => Ok(parse_3164(rest, facility, severity, now)),
    }
}

fn parse_pri(text: &str) -> Result<(u8, &str), ParseError> {
    let Some(rest) = text.strip_prefix('<') else {
        return err("a syslog message starts with `<PRI>`");
    };
    let Some(end) = rest.find('>').filter(|e| (1..=3).contains(e)) else {
        return err("the priority must be 1 to 3 digits between `<` and `>`");
    };
    let digits = &rest[..end];
    let pri: u8 = match digits.parse() {
        Ok(p)
            if p <= 191
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0')) =>
        {
            p
        }
        _ => return err(format!("the priority `{digits}` is not a number from 0 to 191")),
    };
    Ok((pri, &rest[end + 1..]))
}

/// Splits off one space-delimited header field.
fn field(s: &str) -> Option<(&str, &str)> {
    match s.find(' ') {
        Some(i) => Some((&s[..i], &s[i + 1..])),
        None if !s.is_empty() => Some((s, "")),
        None => None,
    }
}

fn nil(v: &str) -> Option<String> {
    (v != "-").then(|| v.to_owned())
}

fn parse_5424(rest: &str, facility: u8, severity: u8) -> Result<SyslogMessage, ParseError> {
    let mut rest = rest;
    let mut next = |name: &str| -> Result<&str, ParseError> {
        let (value, tail) = field(rest).ok_or_else(|| ParseError(format!("RFC 5424 header ends before {name}")))?;
        if value.is_empty() {
            return err(format!("RFC 5424 {name} is empty (two spaces in a row)"));
        }
        rest = tail;
        Ok(value)
    };
    let timestamp = next("TIMESTAMP")?;
    let hostname = next("HOSTNAME")?;
    let app_name = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let time = match timestamp {
        "-" => None,
        ts => Some(
            ts.parse::<Timestamp>()
                .map_err(|e| ParseError(format!("RFC 5424 TIMESTAMP `{ts}` is not RFC 3339: {e}")))?,
        ),
    };
    let (structured_data, msg) = parse_sd(rest)?;
    let msg = msg.strip_prefix('\u{FEFF}').unwrap_or(msg);
    Ok(SyslogMessage {
        protocol: Protocol::Rfc5424,
        facility,
        severity,
        timestamp: nil(timestamp),
        time,
        hostname: nil(hostname),
        app_name: nil(app_name),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data,
        message: msg.to_owned(),
    })
}

type Sd = BTreeMap<String, BTreeMap<String, Value>>;

/// STRUCTURED-DATA (`-` or one or more `[ID name="value" …]`) and the MSG after it.
fn parse_sd(s: &str) -> Result<(Sd, &str), ParseError> {
    let mut sd = Sd::new();
    if let Some(rest) = s.strip_prefix('-') {
        return Ok((sd, rest.strip_prefix(' ').unwrap_or(rest)));
    }
    if !s.starts_with('[') {
        return err("RFC 5424 STRUCTURED-DATA must be `-` or start with `[`");
    }
    let mut rest = s;
    while let Some(element) = rest.strip_prefix('[') {
        let id_end = element
            .find([' ', ']'])
            .ok_or_else(|| ParseError("unterminated SD-ELEMENT".into()))?;
        let id = &element[..id_end];
        check_name(id, "SD-ID")?;
        let params = sd.entry(id.to_owned()).or_default();
        let mut p = &element[id_end..];
        loop {
            if let Some(after) = p.strip_prefix(']') {
                rest = after;
                break;
            }
            p = p
                .strip_prefix(' ')
                .ok_or_else(|| ParseError(format!("SD-ELEMENT `{id}`: expected a space or `]`")))?;
            let eq = p
                .find('=')
                .ok_or_else(|| ParseError(format!("SD-ELEMENT `{id}`: a parameter has no `=`")))?;
            let name = &p[..eq];
            check_name(name, "PARAM-NAME")?;
            p = p[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| ParseError(format!("SD-PARAM `{name}`: the value must be quoted")))?;
            let (value, after) =
                sd_value(p).ok_or_else(|| ParseError(format!("SD-PARAM `{name}`: unterminated value")))?;
            p = after;
            match params.get_mut(name) {
                Some(Value::Array(values)) => values.push(Value::String(value)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(value)]);
                }
                None => {
                    params.insert(name.to_owned(), Value::String(value));
                }
            }
        }
    }
    Ok((sd, rest.strip_prefix(' ').unwrap_or(rest)))
}

fn check_name(name: &str, what: &str) -> Result<(), ParseError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'));
    if ok {
        Ok(())
    } else {
        err(format!(
            "{what} `{name}` is not 1 to 32 printable characters without `=`, `]`, `\"`"
        ))
    }
}

/// A PARAM-VALUE after its opening quote: `\"`, `\\` and `\]` are escapes; any other backslash
/// is kept as written (RFC 5424 §6.3.3).
fn sd_value(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | ']'))) => out.push(e),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 3164 is a description of practice, not a grammar: this never fails. A header that does
/// not look like `Mmm dd hh:mm:ss HOST TAG:` leaves the whole text as the message (§4.3.3).
fn parse_3164(rest: &str, facility: u8, severity: u8, now: Timestamp) -> SyslogMessage {
    let mut m = SyslogMessage {
        protocol: Protocol::Rfc3164,
        facility,
        severity,
        timestamp: None,
        time: None,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
        structured_data: BTreeMap::new(),
        message: rest.to_owned(),
    };
    let (timestamp, time, after) = match bsd_timestamp(rest, now) {
        Some(t) => t,
        None => match iso_timestamp(rest) {
            Some(t) => t,
            None => return m,
        },
    };
    m.timestamp = Some(timestamp);
    m.time = time;
    let mut after = after;
    // HOSTNAME, unless the next word is already the tag (`app:` or `app[12]:`), as many
    // local senders omit it.
    if let Some((word, tail)) = field(after) {
        let is_tag = word.ends_with(':') || word.contains('[');
        if !is_tag && !tail.is_empty() {
            m.hostname = Some(word.to_owned());
            after = tail;
        }
    }
    // TAG: up to 32 alphanumerics (in practice also `-_./`), then `[pid]` and/or `:`.
    let tag_len = after
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        .map_or(after.len(), |(i, _)| i);
    let (tag, mut tail) = after.split_at(tag_len);
    let mut is_tag = false;
    if let Some(pid_part) = tail.strip_prefix('[') {
        if let Some(end) = pid_part.find(']') {
            m.procid = Some(pid_part[..end].to_owned());
            tail = &pid_part[end + 1..];
            is_tag = true;
        }
    }
    if let Some(t) = tail.strip_prefix(':') {
        tail = t;
        is_tag = true;
    }
    if is_tag && !tag.is_empty() && tag.len() <= 48 {
        m.app_name = Some(tag.to_owned());
        m.message = tail.strip_prefix(' ').unwrap_or(tail).to_owned();
    } else {
        m.procid = None;
        m.message = after.to_owned();
    }
    m
}

/// `Mmm dd hh:mm:ss ` (day space-padded), placed in the year that puts it at most a day ahead of
/// `now`, read as UTC.
fn bsd_timestamp(s: &str, now: Timestamp) -> Option<(String, Option<Timestamp>, &str)> {
    let head = s.get(..15)?;
    let rest = s.get(15..)?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let b = head.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &head[..3])? as i8 + 1;
    let day: i8 = head[4..6].trim_start().parse().ok()?;
    let hour: i8 = head[7..9].parse().ok()?;
    let minute: i8 = head[10..12].parse().ok()?;
    let second: i8 = head[13..15].parse().ok()?;
    let this_year = now.to_zoned(jiff::tz::TimeZone::UTC).year();
    let at = |year: i16| {
        DateTime::new(year, month, day, hour, minute, second, 0)
            .ok()
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    };
    let time = match at(this_year) {
        // December's messages read in January belong to last year.
        Some(t) if t.as_second() > now.as_second() + 86_400 => at(this_year - 1),
        other => other,
    };
    Some((head.to_owned(), time, rest))
}

/// Some RFC 3164 senders (syslog-ng's `ts-format(iso)`, rsyslog's high-precision templates) put
/// an RFC 3339 timestamp where the BSD one goes.
fn iso_timestamp(s: &str) -> Option<(String, Option<Timestamp>, &str)> {
    let (word, rest) = field(s)?;
    if word.len() < 20 || !word.as_bytes()[0].is_ascii_digit() || word.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let t = word.parse::<Timestamp>().ok()?;
    Some((word.to_owned(), Some(t), rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-06-15T12:00:00Z".parse().unwrap()
    }

    fn p(s: &str) -> SyslogMessage {
        parse(s.as_bytes(), ProtocolMode::Auto, now()).unwrap()
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let m = p(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry..."#,
        );
        assert_eq!(m.protocol, Protocol::Rfc5424);
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.time.unwrap().to_string(), "2003-10-11T22:14:15.003Z");
        assert_eq!(m.structured_data["exampleSDID@32473"]["eventID"], json!("1011"));
        assert_eq!(m.structured_data["examplePriority@32473"]["class"], json!("high"));
        assert_eq!(m.message, "An application event log entry...");
    }

    #[test]
    fn rfc5424_escapes_nil_values_and_a_bom() {
        let m = p("<34>1 - - - - - [a@1 v=\"q\\\"b\\\\s\\]x\\y\" v=\"2\"] \u{FEFF}hello");
        assert_eq!(m.time, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.structured_data["a@1"]["v"], json!(["q\"b\\s]x\\y", "2"]));
        assert_eq!(m.message, "hello");
        let m = p("<34>1 - h a - - - ends with a line feed\r\n");
        assert_eq!(m.message, "ends with a line feed");
        let m = p("<34>1 2026-01-01T00:00:00+02:00 h a 12 m -");
        assert_eq!(m.message, "");
        assert_eq!(m.procid.as_deref(), Some("12"));
        assert_eq!(m.time.unwrap().to_string(), "2025-12-31T22:00:00Z");
    }

    #[test]
    fn rfc5424_errors_are_specific() {
        let e = |s: &str| parse(s.as_bytes(), ProtocolMode::Auto, now()).unwrap_err().0;
        assert!(e("no pri").contains("<PRI>"));
        assert!(e("<999>1 - - - - - -").contains("0 to 191"));
        assert!(e("<13>1 yesterday h a p m -").contains("TIMESTAMP"));
        assert!(e("<13>1 - h a p m [x").contains("SD"));
        assert!(e("<13>1 - h a").contains("PROCID"));
        let forced = parse(b"<13>Oct 11 22:14:15 h a: x", ProtocolMode::Rfc5424, now());
        assert!(forced.is_err());
    }

    #[test]
    fn rfc3164_classic() {
        let m = p("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.protocol, Protocol::Rfc3164);
        assert_eq!((m.facility, m.severity), (4, 2));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.procid.as_deref(), Some("230"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        // October is after June: last year.
        assert_eq!(m.time.unwrap().to_string(), "2025-10-11T22:14:15Z");
        let m = p("<13>Jun  5 01:02:03 host app: hi");
        assert_eq!(m.time.unwrap().to_string(), "2026-06-05T01:02:03Z");
    }

    #[test]
    fn rfc3164_without_host_or_header() {
        let m = p("<13>Jun 15 01:02:03 sshd[9]: Accepted");
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        assert_eq!(m.message, "Accepted");
        let m = p("<13>just some text");
        assert_eq!(m.timestamp, None);
        assert_eq!(m.message, "just some text");
        let m = p("<13>2026-06-01T10:00:00+00:00 host app: iso");
        assert_eq!(m.time.unwrap().to_string(), "2026-06-01T10:00:00Z");
        assert_eq!(m.hostname.as_deref(), Some("host"));
        assert_eq!(m.message, "iso");
    }
}
