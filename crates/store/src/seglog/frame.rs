//! The on-disk framing of the segmented log, pure (no I/O), so it can be tested byte by byte.
//!
//! The log is a sequence of **groups**, one per group commit. A group is the unit that survives
//! a power cut whole or not at all:
//!
//! ```text
//! group  = magic u32 | payload_len u32 | crc32(payload) u32 | record_count u32 | payload
//! record = record_len u32 | tenant u32 | offset u64 | received_at_ns i64 | flags u8
//!          | chain [32] | id_at u32 | id_len u16 | type_at u32 | type_len u16
//!          | body_len u32 | body | extra
//! ```
//!
//! All integers are little-endian. `record_len` counts everything after itself. `id_at` and
//! `type_at` locate the event's id and type inside `body ‖ extra`: they are found in the body
//! (where the canonical JSON already holds them), so they are stored once; only an id or type
//! the body does not spell out byte for byte (never the case for our own rendering) goes into
//! `extra`. Recovery checks each group's length and CRC and truncates the log at the first group
//! that is incomplete or damaged (invariant *only whole groups survive*, tested in
//! `tests/conformance/seglog.rs`).

/// Marks the start of a group ("ARLG").
pub(crate) const GROUP_MAGIC: u32 = 0x474c_5241;
pub(crate) const GROUP_HEADER: usize = 16;
const RECORD_FIXED: usize = 4 + 4 + 8 + 8 + 1 + 32 + 4 + 2 + 4 + 2 + 4;

/// The event's id was supplied by the client (it takes part in dedup).
pub(crate) const FLAG_CLIENT_ID: u8 = 1;

/// One event record as it goes into a group.
pub(crate) struct RecordIn<'a> {
    pub tenant: u32,
    pub offset: u64,
    pub received_at_ns: i64,
    pub client_id: bool,
    pub chain: &'a [u8; 32],
    pub id: &'a str,
    pub event_type: &'a str,
    pub body: &'a [u8],
}

/// One event record read back, borrowing the group's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordOut<'a> {
    pub tenant: u32,
    pub offset: u64,
    pub received_at_ns: i64,
    pub flags: u8,
    pub chain: [u8; 32],
    pub id: &'a [u8],
    pub event_type: &'a [u8],
    pub body: &'a [u8],
}

/// Builds one group in a reusable buffer.
pub(crate) struct GroupBuilder {
    buf: Vec<u8>,
    count: u32,
}

static ID_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"id\":\""));
static TYPE_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"type\":\""));

/// Where `"key":"value"` spells `value` inside `body`, if it does byte for byte (`key_finder`
/// finds `"key":"`). Any such place will do: they all hold the same bytes.
fn locate_string_member(body: &[u8], key_finder: &memchr::memmem::Finder<'_>, value: &str) -> Option<usize> {
    let key_len = key_finder.needle().len();
    key_finder.find_iter(body).map(|at| at + key_len).find(|&start| {
        body.get(start..start + value.len()) == Some(value.as_bytes()) && body.get(start + value.len()) == Some(&b'"')
    })
}

impl GroupBuilder {
    pub(crate) fn new() -> GroupBuilder {
        let mut buf = Vec::with_capacity(1 << 20);
        buf.resize(GROUP_HEADER, 0);
        GroupBuilder { buf, count: 0 }
    }

    pub(crate) fn clear(&mut self) {
        self.buf.truncate(GROUP_HEADER);
        self.count = 0;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The position of the next record relative to the group's start.
    pub(crate) fn next_record_at(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn push(&mut self, r: &RecordIn<'_>) {
        let mut extra: Vec<u8> = Vec::new();
        let id_at = match locate_string_member(r.body, &ID_KEY, r.id) {
            Some(at) => at,
            None => {
                extra.extend_from_slice(r.id.as_bytes());
                r.body.len()
            }
        };
        let type_at = match locate_string_member(r.body, &TYPE_KEY, r.event_type) {
            Some(at) => at,
            None => {
                let at = r.body.len() + extra.len();
                extra.extend_from_slice(r.event_type.as_bytes());
                at
            }
        };
        let record_len = RECORD_FIXED - 4 + r.body.len() + extra.len();
        let b = &mut self.buf;
        b.extend_from_slice(&(record_len as u32).to_le_bytes());
        b.extend_from_slice(&r.tenant.to_le_bytes());
        b.extend_from_slice(&r.offset.to_le_bytes());
        b.extend_from_slice(&r.received_at_ns.to_le_bytes());
        b.push(if r.client_id { FLAG_CLIENT_ID } else { 0 });
        b.extend_from_slice(r.chain);
        b.extend_from_slice(&(id_at as u32).to_le_bytes());
        b.extend_from_slice(&(r.id.len() as u16).to_le_bytes());
        b.extend_from_slice(&(type_at as u32).to_le_bytes());
        b.extend_from_slice(&(r.event_type.len() as u16).to_le_bytes());
        b.extend_from_slice(&(r.body.len() as u32).to_le_bytes());
        b.extend_from_slice(r.body);
        b.extend_from_slice(&extra);
        self.count += 1;
    }

    /// Seals the header and returns the whole group's bytes.
    pub(crate) fn finish(&mut self) -> &[u8] {
        let payload_len = (self.buf.len() - GROUP_HEADER) as u32;
        let crc = crc32fast::hash(&self.buf[GROUP_HEADER..]);
        self.buf[0..4].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
        self.buf[4..8].copy_from_slice(&payload_len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        self.buf[12..16].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// The length of the record starting at `bytes[0]` (its 4-byte length prefix included), if the
/// prefix is there.
pub(crate) fn record_size(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= 4).then(|| u32_at(bytes, 0) as usize + 4)
}

/// Decodes one record (`bytes` holds exactly it, length prefix included).
pub(crate) fn decode_record(bytes: &[u8]) -> Option<RecordOut<'_>> {
    if bytes.len() < RECORD_FIXED || record_size(bytes)? != bytes.len() {
        return None;
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&bytes[25..57]);
    let id_at = u32_at(bytes, 57) as usize;
    let id_len = u16_at(bytes, 61) as usize;
    let type_at = u32_at(bytes, 63) as usize;
    let type_len = u16_at(bytes, 67) as usize;
    let body_len = u32_at(bytes, 69) as usize;
    let payload = &bytes[RECORD_FIXED..];
    let id = payload.get(id_at..id_at.checked_add(id_len)?)?;
    let event_type = payload.get(type_at..type_at.checked_add(type_len)?)?;
    Some(RecordOut {
        tenant: u32_at(bytes, 4),
        offset: u64_at(bytes, 8),
        received_at_ns: u64_at(bytes, 16) as i64,
        flags: bytes[24],
        chain,
        id,
        event_type,
        body: payload.get(..body_len)?,
    })
}

/// A group header read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupHeader {
    pub payload_len: usize,
    pub crc: u32,
    pub count: u32,
}

pub(crate) fn decode_group_header(bytes: &[u8]) -> Option<GroupHeader> {
    if bytes.len() < GROUP_HEADER || u32_at(bytes, 0) != GROUP_MAGIC {
        return None;
    }
    Some(GroupHeader {
        payload_len: u32_at(bytes, 4) as usize,
        crc: u32_at(bytes, 8),
        count: u32_at(bytes, 12),
    })
}

/// Splits a checked group payload into its records; `None` if the records do not tile the
/// payload exactly or their count differs from the header's.
pub(crate) fn records(payload: &[u8], count: u32) -> Option<Vec<(usize, RecordOut<'_>)>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0;
    while at < payload.len() {
        let size = record_size(&payload[at..])?;
        let rec = decode_record(payload.get(at..at.checked_add(size)?)?)?;
        out.push((at, rec));
        at += size;
    }
    (out.len() == count as usize).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(offset: u64, id: &'a str, ty: &'a str, body: &'a [u8], chain: &'a [u8; 32]) -> RecordIn<'a> {
        RecordIn {
            tenant: 7,
            offset,
            received_at_ns: 1_700_000_000_123_456_789,
            client_id: offset.is_multiple_of(2),
            chain,
            id,
            event_type: ty,
            body,
        }
    }

    #[test]
    fn a_group_round_trips_and_ids_found_in_the_body_are_not_stored_twice() {
        let chain = [9u8; 32];
        let body = br#"{"actor":{"id":"u1"},"id":"evt-1","type":"a.b"}"#;
        let mut g = GroupBuilder::new();
        g.push(&record(1, "evt-1", "a.b", body, &chain));
        // An id the body does not spell out (as a migrated or foreign body might) goes to extra.
        g.push(&record(2, "evt\"2", "x.y", br#"{"k":1}"#, &chain));
        let bytes = g.finish().to_vec();
        let h = decode_group_header(&bytes).unwrap();
        assert_eq!(h.count, 2);
        let payload = &bytes[GROUP_HEADER..];
        assert_eq!(h.payload_len, payload.len());
        assert_eq!(h.crc, crc32fast::hash(payload));
        let recs = records(payload, h.count).unwrap();
        assert_eq!(recs[0].1.id, b"evt-1");
        assert_eq!(recs[0].1.event_type, b"a.b");
        assert_eq!(recs[0].1.body, body);
        assert_eq!(recs[0].1.flags, 0);
        assert_eq!(recs[0].1.received_at_ns, 1_700_000_000_123_456_789);
        assert_eq!(recs[0].1.chain, chain);
        assert_eq!(recs[1].1.id, b"evt\"2");
        assert_eq!(recs[1].1.event_type, b"x.y");
        assert_eq!(recs[1].1.body, br#"{"k":1}"#);
        assert_eq!(recs[1].1.flags, FLAG_CLIENT_ID);
        // The first record costs its fixed header and its body, nothing more.
        assert_eq!(recs[1].0, RECORD_FIXED + body.len());
    }

    #[test]
    fn damaged_groups_are_refused() {
        let chain = [0u8; 32];
        let mut g = GroupBuilder::new();
        g.push(&record(1, "e", "a.b", br#"{"id":"e","type":"a.b"}"#, &chain));
        let bytes = g.finish().to_vec();
        let h = decode_group_header(&bytes).unwrap();
        // A wrong count, a short payload or a bad magic are all refused.
        assert!(records(&bytes[GROUP_HEADER..], h.count + 1).is_none());
        assert!(records(&bytes[GROUP_HEADER..bytes.len() - 1], h.count).is_none());
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(decode_group_header(&bad).is_none());
    }
}
