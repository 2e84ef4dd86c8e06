//! RFC 6587 framing over a byte stream, without I/O: octet counting (`LEN SP MSG`) and
//! non-transparent framing (a message per LF-terminated line), chosen per frame in `auto` mode
//! by its first byte (a digit starts a count; a syslog message starts with `<`).
//!
//! Nothing is dropped: a message longer than the limit comes out cut, marked `oversized`, and
//! the rest of it is skipped; bytes left when the stream ends come out as a final frame.

use super::config::FramingMode;

/// One message's bytes, and what was wrong with its framing, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// `Some` when the frame is not a whole message: cut at the size limit, or cut short by the
    /// end of the stream.
    pub problem: Option<String>,
}

impl Frame {
    fn whole(bytes: &[u8]) -> Frame {
        Frame {
            bytes: bytes.to_vec(),
            problem: None,
        }
    }
}

/// Longest length prefix we read: 10 digits is already far past any limit.
const MAX_LEN_DIGITS: usize = 10;

/// What to do with the bytes after an oversized frame's kept part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// The rest of an octet-counted frame: this many bytes.
    Bytes(usize),
    /// The rest of a line.
    ToNewline,
}

#[derive(Debug)]
pub struct FrameDecoder {
    mode: FramingMode,
    max: usize,
    skip: Skip,
}

impl FrameDecoder {
    pub fn new(mode: FramingMode, max_message_bytes: usize) -> Self {
        FrameDecoder {
            mode,
            max: max_message_bytes,
            skip: Skip::None,
        }
    }

    /// Takes the complete frames at the start of `buf`, at most `limit` of them. Returns how
    /// many bytes they used (the caller drops those); what is left is an incomplete frame.
    pub fn decode(&mut self, buf: &[u8], limit: usize, out: &mut Vec<Frame>) -> usize {
        let mut pos = 0;
        let before = out.len();
        while out.len() - before < limit && pos < buf.len() {
            match self.skip {
                Skip::Bytes(n) => {
                    let take = n.min(buf.len() - pos);
                    pos += take;
                    self.skip = if take == n { Skip::None } else { Skip::Bytes(n - take) };
                    continue;
                }
                Skip::ToNewline => match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.skip = Skip::None;
                        continue;
                    }
                    None => return buf.len(),
                },
                Skip::None => {}
            }
            // Separators between frames (a trailing LF after an octet-counted frame, CRLF, NUL)
            // are not messages.
            if matches!(buf[pos], b'\n' | b'\r' | b'\0') {
                pos += 1;
                continue;
            }
            let rest = &buf[pos..];
            let counted = match self.mode {
                FramingMode::Newline => false,
                FramingMode::OctetCounting => true,
                FramingMode::Auto => rest[0].is_ascii_digit(),
            };
            let step = if counted {
                match octet_count(rest) {
                    Count::Complete(len, header) => self.counted(rest, len, header, out),
                    Count::NeedMore => return pos,
                    // Not a count after all: read it as a line rather than lose it.
                    Count::Invalid => self.line(rest, out),
                }
            } else {
                self.line(rest, out)
            };
            match step {
                Some(used) => pos += used,
                None => return pos,
            }
        }
        pos
    }

    /// An octet-counted frame whose header (`LEN SP`, `header` bytes) says `len`.
    fn counted(&mut self, rest: &[u8], len: usize, header: usize, out: &mut Vec<Frame>) -> Option<usize> {
        if len > self.max {
            if rest.len() < header + self.max {
                return None;
            }
            out.push(Frame {
                bytes: rest[header..header + self.max].to_vec(),
                problem: Some(format!(
                    "message of {len} bytes is longer than the {} byte limit; kept its first {} bytes",
                    self.max, self.max
                )),
            });
            self.skip = Skip::Bytes(len - self.max);
            return Some(header + self.max);
        }
        if rest.len() < header + len {
            return None;
        }
        out.push(Frame::whole(&rest[header..header + len]));
        Some(header + len)
    }

    fn line(&mut self, rest: &[u8], out: &mut Vec<Frame>) -> Option<usize> {
        match memchr::memchr(b'\n', rest) {
            Some(i) if i <= self.max => {
                let line = &rest[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                out.push(Frame::whole(line));
                Some(i + 1)
            }
            Some(_) => Some(self.oversized_line(rest, out)),
            None if rest.len() > self.max => {
                let used = self.oversized_line(rest, out);
                self.skip = Skip::ToNewline;
                Some(used)
            }
            None => None,
        }
    }

    fn oversized_line(&mut self, rest: &[u8], out: &mut Vec<Frame>) -> usize {
        out.push(Frame {
            bytes: rest[..self.max].to_vec(),
            problem: Some(format!(
                "line longer than the {} byte limit; kept its first {} bytes",
                self.max, self.max
            )),
        });
        self.skip = Skip::ToNewline;
        self.max
    }

    /// The stream ended: whatever is left becomes one last frame (a final line without its LF is
    /// a whole message; a cut octet-counted frame is marked).
    pub fn finish(&mut self, rest: &[u8]) -> Option<Frame> {
        if !matches!(self.skip, Skip::None) {
            return None;
        }
        let trimmed = trim_separators(rest);
        if trimmed.is_empty() {
            return None;
        }
        let counted = match self.mode {
            FramingMode::Newline => false,
            FramingMode::OctetCounting => true,
            FramingMode::Auto => trimmed[0].is_ascii_digit(),
        };
        if counted {
            match octet_count(trimmed) {
                Count::Complete(len, header) => {
                    return Some(Frame {
                        bytes: trimmed[header..].to_vec(),
                        problem: Some(format!(
                            "the connection closed {} bytes into a {len} byte message",
                            trimmed.len() - header
                        )),
                    })
                }
                Count::NeedMore => {
                    return Some(Frame {
                        bytes: trimmed.to_vec(),
                        problem: Some("the connection closed inside a frame's length".into()),
                    })
                }
                Count::Invalid => {}
            }
        }
        Some(Frame::whole(trimmed.strip_suffix(b"\r").unwrap_or(trimmed)))
    }
}

fn trim_separators(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if matches!(first, b'\n' | b'\r' | b'\0') {
            b = rest;
        } else {
            break;
        }
    }
    b
}

enum Count {
    /// (message length, header length including the space)
    Complete(usize, usize),
    NeedMore,
    Invalid,
}

fn octet_count(rest: &[u8]) -> Count {
    for (i, b) in rest.iter().enumerate() {
        match b {
            b'0'..=b'9' if i < MAX_LEN_DIGITS => continue,
            b' ' if i > 0 => {
                let digits = std::str::from_utf8(&rest[..i]).unwrap_or("0");
                return match digits.parse::<usize>() {
                    Ok(len) if len > 0 && !digits.starts_with('0') => Count::Complete(len, i + 1),
                    _ => Count::Invalid,
                };
            }
            _ => return Count::Invalid,
        }
    }
    Count::NeedMore
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn all(mode: FramingMode, max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut d = FrameDecoder::new(mode, max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            let used = d.decode(&buf, usize::MAX, &mut out);
            buf.drain(..used);
        }
        out.extend(d.finish(&buf));
        out
    }

    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
            .collect()
    }

    #[test]
    fn octet_counting_and_lines_mix_per_frame() {
        let f = all(
            FramingMode::Auto,
            100,
            &[b"5 <1>ab<2>line one\n", b"6 <3>a\nb", b"\n<4>last"],
        );
        assert_eq!(texts(&f), ["<1>ab", "<2>line one", "<3>a\nb", "<4>last"]);
        assert!(f.iter().all(|f| f.problem.is_none()));
    }

    #[test]
    fn frames_split_across_reads_byte_by_byte() {
        let input = b"10 <1>message\r\n<2>second\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            texts(&all(FramingMode::Auto, 100, &chunks)),
            ["<1>message", "<2>second"]
        );
    }

    #[test]
    fn an_oversized_frame_is_cut_not_dropped_and_the_stream_continues() {
        let f = all(FramingMode::Auto, 4, &[b"10 0123456789<1>x\n", b"abcdefgh\n<2>\n"]);
        assert_eq!(texts(&f), ["0123", "<1>x", "abcd", "<2>"]);
        assert!(f[0].problem.is_some() && f[2].problem.is_some());
        assert!(f[1].problem.is_none() && f[3].problem.is_none());
    }

    #[test]
    fn a_frame_cut_by_the_end_of_the_stream_is_kept_and_marked() {
        let f = all(FramingMode::Auto, 100, &[b"20 <1>short"]);
        assert_eq!(texts(&f), ["<1>short"]);
        assert!(f[0].problem.as_deref().unwrap().contains("closed"));
    }

    #[test]
    fn a_bad_count_is_read_as_a_line() {
        let f = all(FramingMode::Auto, 100, &[b"2024-01-01 was a day\n", b"05 <1>x\n"]);
        assert_eq!(texts(&f), ["2024-01-01 was a day", "05 <1>x"]);
        let f = all(FramingMode::Newline, 100, &[b"5 <1>ab\n"]);
        assert_eq!(texts(&f), ["5 <1>ab"]);
    }

    #[test]
    fn decode_respects_the_batch_limit() {
        let mut d = FrameDecoder::new(FramingMode::Auto, 100);
        let mut out = Vec::new();
        let used = d.decode(b"<1>a\n<2>b\n<3>c\n", 2, &mut out);
        assert_eq!(used, 10);
        assert_eq!(out.len(), 2);
    }
}
