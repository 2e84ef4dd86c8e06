//! RELP, the Reliable Event Logging Protocol (rsyslog's `omrelp`/`imrelp`, librelp), without
//! I/O: decoding the client's frames and encoding the server's responses.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the server answers every command with
//! `TXNR rsp DATALEN SP 200 SP OK …` in the order the commands came (librelp's doc/relp.md).
//! What makes it reliable is that a `syslog` command's answer is the acknowledgement of that
//! message: the listener sends it only once the message's event is durable, and a client that
//! loses its connection sends again every message it holds no answer for.

use std::fmt;

/// Longest `DATA` a client may send. RELP fixes the maximum at 128 KiB for protocol version
/// 1 (librelp uses the same for its version 0); longer means the stream is not RELP.
pub const MAX_DATA: usize = 128 * 1024;
/// A transaction number has at most 9 digits, a command at most 32 letters.
const MAX_TXNR_DIGITS: usize = 9;
const MAX_COMMAND: usize = 32;

/// One command from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpFrame {
    pub txnr: u32,
    pub command: String,
    pub data: Vec<u8>,
}

/// The stream is not RELP: the connection is closed (the spec's answer to a framing error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpError(pub String);

impl fmt::Display for RelpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RELP framing: {}", self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, RelpError> {
    Err(RelpError(m.into()))
}

/// Reads a decimal of at most `max_digits` digits that ends at a space (or, for `DATALEN`, at
/// an LF). `Ok(None)`: more bytes are needed.
fn number(buf: &[u8], max_digits: usize, what: &str) -> Result<Option<(u32, usize)>, RelpError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > max_digits {
        return err(format!("{what} has more than {max_digits} digits"));
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return err(format!("{what} is not a number"));
    }
    let text = std::str::from_utf8(&buf[..digits]).map_err(|_| RelpError(format!("{what} is not a number")))?;
    let n = text.parse().map_err(|_| RelpError(format!("{what} is not a number")))?;
    Ok(Some((n, digits)))
}

/// Takes the first complete frame of `buf`. `Ok(None)`: the frame is not complete yet.
/// `Ok(Some((frame, used)))`: the caller drops `used` bytes.
pub fn decode(buf: &[u8]) -> Result<Option<(RelpFrame, usize)>, RelpError> {
    let Some((txnr, mut pos)) = number(buf, MAX_TXNR_DIGITS, "TXNR")? else {
        return Ok(None);
    };
    if buf[pos] != b' ' {
        return err("a space must follow TXNR");
    }
    pos += 1;
    let letters = buf[pos..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if letters > MAX_COMMAND {
        return err("COMMAND is longer than 32 letters");
    }
    if pos + letters == buf.len() {
        return Ok(None);
    }
    if letters == 0 || buf[pos + letters] != b' ' {
        return err("COMMAND must be letters followed by a space");
    }
    let command = String::from_utf8_lossy(&buf[pos..pos + letters]).into_owned();
    pos += letters + 1;
    let Some((len, digits)) = number(&buf[pos..], MAX_TXNR_DIGITS, "DATALEN")? else {
        return Ok(None);
    };
    let len = len as usize;
    if len > MAX_DATA {
        return err(format!("DATALEN {len} is over the {MAX_DATA}-byte maximum"));
    }
    pos += digits;
    let data = if len == 0 {
        Vec::new()
    } else {
        // `SP DATA`
        if buf.len() < pos + 1 + len {
            return Ok(None);
        }
        if buf[pos] != b' ' {
            return err("a space must follow DATALEN");
        }
        let data = buf[pos + 1..pos + 1 + len].to_vec();
        pos += 1 + len;
        data
    };
    match buf.get(pos) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((RelpFrame { txnr, command, data }, pos + 1))),
        Some(_) => err("the frame does not end with LF where DATALEN says"),
    }
}

/// A `rsp` frame: `TXNR rsp DATALEN SP CODE SP TEXT [LF DATA] LF`.
pub fn response(txnr: u32, code: u16, text: &str, data: Option<&str>) -> Vec<u8> {
    let mut body = format!("{code} {text}");
    if let Some(d) = data {
        body.push('\n');
        body.push_str(d);
    }
    format!("{txnr} rsp {} {body}\n", body.len()).into_bytes()
}

/// The `serverclose` hint (TXNR 0, no answer expected) sent before the server closes.
pub fn serverclose() -> &'static [u8] {
    b"0 serverclose 0\n"
}

/// The offers the server accepts from an `open`'s data: the client's `relp_version` (librelp
/// speaks 0), the `syslog` command, and who we are. `Err` when the client does not offer
/// `syslog` (then there is nothing it could send us).
pub fn accept_offers(open_data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(open_data);
    let mut version = None;
    let mut syslog = false;
    for line in text.split('\n') {
        match line.split_once('=') {
            Some(("relp_version", v)) => version = Some(v.trim().to_owned()),
            Some(("commands", v)) => syslog = v.split(',').any(|c| c.trim() == "syslog"),
            _ => {}
        }
    }
    let version = version.ok_or("the open command offers no relp_version")?;
    if !syslog {
        return Err("the open command does not offer the syslog command".into());
    }
    Ok(format!(
        "relp_version={version}\nrelp_software=auditrelay,{}\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_frames_whole_and_in_pieces() {
        let offers = "relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";
        let open = format!("1 open {} {offers}\n", offers.len()).into_bytes();
        let open = open.as_slice();
        let (f, used) = decode(open).unwrap().unwrap();
        assert_eq!((f.txnr, f.command.as_str(), used), (1, "open", open.len()));
        assert!(f.data.starts_with(b"relp_version=0\n"));
        for cut in 0..open.len() {
            assert_eq!(decode(&open[..cut]).unwrap(), None, "cut at {cut}");
        }
        let two = b"2 syslog 5 <13>x\n3 close 0\n";
        let (f, used) = decode(two).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command.as_str(), f.data.as_slice()),
            (2, "syslog", &b"<13>x"[..])
        );
        let (f, _) = decode(&two[used..]).unwrap().unwrap();
        assert_eq!((f.txnr, f.command.as_str(), f.data.len()), (3, "close", 0));
    }

    #[test]
    fn refuses_what_is_not_relp() {
        assert!(decode(b"<13>1 2026-01-01T00:00:00Z h a - - - hi\n").is_err());
        assert!(decode(b"1 syslog 3 abcd\n").is_err(), "no LF where DATALEN says");
        assert!(decode(b"1234567890 syslog 1 a\n").is_err(), "TXNR too long");
        assert!(decode(b"1 syslog 999999 ").is_err(), "over the maximum");
        assert!(decode(b"1 sys-log 1 a\n").is_err());
    }

    #[test]
    fn responses_and_offers() {
        assert_eq!(response(7, 200, "OK", None), b"7 rsp 6 200 OK\n");
        let offers = accept_offers(b"relp_version=0\nrelp_software=librelp\ncommands=syslog").unwrap();
        assert!(
            offers.starts_with("relp_version=0\nrelp_software=auditrelay,"),
            "{offers}"
        );
        assert!(offers.ends_with("\ncommands=syslog"));
        let r = response(1, 200, "OK", Some(&offers));
        let (f, _) = decode(&r).unwrap().unwrap();
        assert_eq!(f.command, "rsp");
        assert!(accept_offers(b"relp_version=0\ncommands=eventlog").is_err());
        assert!(accept_offers(b"commands=syslog").is_err());
    }
}
