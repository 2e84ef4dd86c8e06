//! Reads. A reader takes the tenant's published head, reads the index entries after its cursor
//! in one `pread`, then the records in as few `pread`s as their positions allow (a tenant's
//! consecutive events are usually next to each other in the log). Readers never lock anything
//! the writer holds while it writes, so many readers never slow an append.

use auditrelay_core::StoredEvent;

use super::files::{io, read_full_at, Segments};
use super::frame::{self, RecordOut};
use super::{Shared, TenantLog};
use crate::time_search::{not_a_timestamp, TimeSearch};
use crate::{ReadQuery, Result, StoreError};

/// Index entries read per step when a type filter may skip events.
const SCAN_CHUNK: u64 = 1024;
/// A run of records read in one `pread` spans at most this many bytes.
const MAX_SPAN: u64 = 1 << 20;
/// Bytes read past the last record's position, enough for a typical record.
const TAIL_GUESS: u64 = 4096;

pub(crate) fn read(shared: &Shared, q: &ReadQuery) -> Result<Vec<StoredEvent>> {
    let Some(t) = shared.tenant(&q.tenant) else {
        return Ok(Vec::new());
    };
    let head = t.head();
    let mut next = q.after.max(t.purged()) + 1;
    let mut out = Vec::with_capacity(q.limit.min(4096));
    while out.len() < q.limit && next <= head {
        let missing = (q.limit - out.len()) as u64;
        let want = if q.filter.is_all() {
            missing
        } else {
            missing.max(SCAN_CHUNK)
        }
        .min(head - next + 1)
        .min(16 * SCAN_CHUNK);
        let positions = positions(&t, next, want)?;
        let mut expected = next;
        for_each_record(&shared.segments, &positions, |pos, r| {
            check_identity(&t, expected, pos, &r)?;
            expected += 1;
            let event_type = text(r.event_type, pos)?;
            if out.len() < q.limit && q.filter.matches(event_type) {
                out.push(StoredEvent {
                    tenant_id: q.tenant.clone(),
                    offset: r.offset,
                    id: text(r.id, pos)?.to_owned(),
                    event_type: event_type.to_owned(),
                    body: text(r.body, pos)?.to_owned(),
                    chain: Some(r.chain),
                });
            }
            Ok(())
        })?;
        next += want;
    }
    Ok(out)
}

/// A record read for (tenant, offset) must say it is that: an index entry that led anywhere
/// else (a damaged or altered index) must never hand out another tenant's event.
pub(crate) fn check_identity(t: &TenantLog, offset: u64, pos: u64, r: &RecordOut<'_>) -> Result<()> {
    if r.tenant != t.no || r.offset != offset {
        tracing::error!(tenant = %t.name, offset, pos, "the log index leads to the wrong record");
        return Err(StoreError::Corrupt(format!(
            "tenant `{}`: the index entry of offset {offset} leads to another record (position {pos})",
            t.name
        )));
    }
    Ok(())
}

fn text(bytes: &[u8], pos: u64) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| StoreError::Corrupt(format!("a record at log position {pos} is not UTF-8")))
}

/// The positions of offsets `first .. first + count`, all of which must be indexed.
fn positions(t: &TenantLog, first: u64, count: u64) -> Result<Vec<u64>> {
    let entries = t.index.read(first, count)?;
    if entries.len() as u64 != count || entries.iter().any(Option::is_none) {
        return Err(StoreError::Corrupt(format!(
            "tenant `{}` has head {} but its index lacks offsets {first}..{}",
            t.name,
            t.head(),
            first + count - 1
        )));
    }
    Ok(entries.into_iter().flatten().collect())
}

/// Calls `f` with each record at `positions` (ascending), reading neighbours together.
pub(crate) fn for_each_record(
    segments: &Segments,
    positions: &[u64],
    mut f: impl FnMut(u64, RecordOut<'_>) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut i = 0;
    while i < positions.len() {
        let start = positions[i];
        let seg = segments.holding(start).ok_or_else(|| {
            StoreError::Unavailable(format!("log position {start} was purged while it was being read"))
        })?;
        let seg_limit = segments.next_base(seg.base).unwrap_or(u64::MAX);
        let mut j = i + 1;
        while j < positions.len() && positions[j] < seg_limit && positions[j] - start < MAX_SPAN {
            j += 1;
        }
        let span = (positions[j - 1] - start + TAIL_GUESS) as usize;
        buf.resize(span, 0);
        let n = read_full_at(&seg.file, &mut buf, start - seg.base)
            .map_err(io(format!("reading {}", seg.path.display())))?;
        for &pos in &positions[i..j] {
            let rel = (pos - start) as usize;
            let size = buf
                .get(rel..n)
                .and_then(frame::record_size)
                .ok_or_else(|| StoreError::Corrupt(format!("no record at log position {pos}")))?;
            if rel + size <= n {
                let r = frame::decode_record(&buf[rel..rel + size])
                    .ok_or_else(|| StoreError::Corrupt(format!("a damaged record at log position {pos}")))?;
                f(pos, r)?;
            } else {
                let whole = segments
                    .read(pos, size)?
                    .filter(|b| b.len() == size)
                    .ok_or_else(|| StoreError::Corrupt(format!("a short record at log position {pos}")))?;
                let r = frame::decode_record(&whole)
                    .ok_or_else(|| StoreError::Corrupt(format!("a damaged record at log position {pos}")))?;
                f(pos, r)?;
            }
        }
        i = j;
    }
    Ok(())
}

/// The cursor just before the tenant's first event received at or after `time`.
pub(crate) fn offset_at_time(shared: &Shared, tenant: &str, time: &str) -> Result<u64> {
    let Some(t) = shared.tenant(tenant) else {
        // Validate the time even for an empty log, like the other backends.
        crate::time_search::instant(time).ok_or_else(|| not_a_timestamp("offset_at_time", time))?;
        return Ok(0);
    };
    let mut search = TimeSearch::new(tenant, t.purged() + 1, t.head(), time)?;
    while let Some(offset) = search.probe() {
        let pos = positions(&t, offset, 1)?[0];
        let mut at = None;
        for_each_record(&shared.segments, &[pos], |pos, r| {
            check_identity(&t, offset, pos, &r)?;
            at = Some(r.received_at_ns as i128);
            Ok(())
        })?;
        search.answer_instant(offset, at)?;
    }
    Ok(search.cursor())
}
