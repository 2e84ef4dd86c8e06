//! A loopback webhook receiver for the delivery scenarios.
//!
//! A hyper 1.x HTTP/1.1 server on `127.0.0.1:0`, on its own OS thread with its own
//! single-threaded tokio runtime (so the load generator never delays a receipt timestamp). It
//! answers every `POST` with `204 No Content` as soon as the body is in, and books what arrived:
//!
//! - per tenant, the set of distinct offsets (a sparse bitmap), the duplicates and the highest
//!   offset, so the scenario can report missing events (gaps) and repeats;
//! - when the first and the last *new* event arrived (the delivered-throughput window);
//! - optionally, per event, `receipt time - metadata.sent_ns` (the latency scenario).
//!
//! Bodies are not fully parsed: the envelope header (`batch_id`, `tenant_id`, `first_offset`,
//! `last_offset`, `count`, which the webhook sink writes before `events`) is parsed on its own,
//! and the events are scanned for `{"offset":N` (each event's canonical JSON starts with its
//! offset) and, for latency, `"sent_ns":N`. The scan is checked against the header (`count`,
//! first and last offset); when it disagrees the body is parsed with serde instead, so a
//! surprising body costs time, never correctness.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::oneshot;

/// The path the sink is pointed at.
pub const HOOK_PATH: &str = "/hook";

/// Nanoseconds since the UNIX epoch on this machine's wall clock.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Pure helpers: offset bookkeeping and body scanning.

/// A set of offsets (sparse bitmap: one 64-bit word per 64 offsets that occur), with the
/// duplicate count and the highest offset seen.
#[derive(Debug, Default, Clone)]
pub struct OffsetSet {
    words: HashMap<u64, u64>,
    distinct: u64,
    duplicates: u64,
    max: u64,
}

/// Offsets of a range that a set lacks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gaps {
    /// How many offsets are missing.
    pub missing: u64,
    /// The first few missing runs, inclusive `(from, to)`.
    pub runs: Vec<(u64, u64)>,
}

/// At most this many runs are kept in [`Gaps::runs`].
const MAX_GAP_RUNS: usize = 8;

impl OffsetSet {
    /// Adds `offset`; true if it was new, false (and counted) if it is a duplicate.
    pub fn insert(&mut self, offset: u64) -> bool {
        let word = self.words.entry(offset / 64).or_insert(0);
        let bit = 1u64 << (offset % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *word |= bit;
        self.distinct += 1;
        self.max = self.max.max(offset);
        true
    }

    #[cfg(test)]
    pub fn contains(&self, offset: u64) -> bool {
        self.words
            .get(&(offset / 64))
            .is_some_and(|w| w & (1u64 << (offset % 64)) != 0)
    }

    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// How many offsets of `lo..=hi` are present (0 for an empty range, `lo > hi`).
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        let mut n = 0;
        for w in lo / 64..=hi / 64 {
            let Some(&word) = self.words.get(&w) else {
                continue;
            };
            n += u64::from((word & range_mask(w, lo, hi)).count_ones());
        }
        n
    }

    /// The offsets of `lo..=hi` that are not in the set.
    pub fn gaps(&self, lo: u64, hi: u64) -> Gaps {
        let mut gaps = Gaps::default();
        if lo > hi {
            return gaps;
        }
        let mut run: Option<(u64, u64)> = None;
        let close = |gaps: &mut Gaps, run: (u64, u64)| {
            if gaps.runs.len() < MAX_GAP_RUNS {
                gaps.runs.push(run);
            }
        };
        for w in lo / 64..=hi / 64 {
            let mask = range_mask(w, lo, hi);
            let word = self.words.get(&w).copied().unwrap_or(0);
            let absent = !word & mask;
            gaps.missing += u64::from(absent.count_ones());
            if absent == 0 {
                if let Some(r) = run.take() {
                    close(&mut gaps, r);
                }
                continue;
            }
            for bit in 0..64u64 {
                if mask & (1 << bit) == 0 {
                    continue;
                }
                let offset = w * 64 + bit;
                if absent & (1 << bit) != 0 {
                    run = Some(match run {
                        Some((from, _)) => (from, offset),
                        None => (offset, offset),
                    });
                } else if let Some(r) = run.take() {
                    close(&mut gaps, r);
                }
            }
        }
        if let Some(r) = run {
            close(&mut gaps, r);
        }
        gaps
    }
}

/// The bits of word `w` (offsets `64w..64w+63`) that fall in `lo..=hi`.
fn range_mask(w: u64, lo: u64, hi: u64) -> u64 {
    let start = w * 64;
    let from = lo.saturating_sub(start).min(64);
    let to = if hi >= start + 63 { 63 } else { hi - start };
    let high = if to == 63 { u64::MAX } else { (1u64 << (to + 1)) - 1 };
    let low = if from >= 64 { u64::MAX } else { (1u64 << from) - 1 };
    high & !low
}

/// One webhook request body, as far as the bench cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedBatch {
    pub tenant_id: String,
    pub count: u64,
    /// Per event: its offset and `metadata.sent_ns` (when asked for and present).
    pub events: Vec<(u64, Option<u64>)>,
    /// True when the fast scan disagreed with the header and serde parsed the body.
    pub fell_back: bool,
}

#[derive(Deserialize)]
struct Header {
    tenant_id: String,
    count: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
}

#[derive(Deserialize)]
struct FullBatch {
    tenant_id: String,
    count: u64,
    events: Vec<FullEvent>,
}

#[derive(Deserialize)]
struct FullEvent {
    offset: u64,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

const EVENTS_KEY: &[u8] = b"\"events\":[";
const OFFSET_KEY: &[u8] = b"{\"offset\":";
const SENT_KEY: &[u8] = b"\"sent_ns\":";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from + hay[from..].iter().position(|&b| b == first)?;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// The unsigned integer at the start of `s` (after optional spaces).
fn leading_u64(s: &[u8]) -> Option<u64> {
    let s = &s[s.iter().take_while(|b| **b == b' ').count()..];
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    std::str::from_utf8(&s[..digits]).ok()?.parse().ok()
}

/// Scans a webhook batch body: header parsed, events scanned (see the module docs).
pub fn scan_batch(body: &[u8], want_sent_ns: bool) -> Result<ScannedBatch> {
    let fast = || -> Option<ScannedBatch> {
        let at = find(body, EVENTS_KEY)?;
        // `{"batch_id":…,"count":N,` → `{"batch_id":…,"count":N}`
        let head = body[..at].strip_suffix(b",")?;
        let mut header = Vec::with_capacity(head.len() + 1);
        header.extend_from_slice(head);
        header.push(b'}');
        let header: Header = serde_json::from_slice(&header).ok()?;
        let events_part = &body[at + EVENTS_KEY.len()..];
        let mut starts = Vec::with_capacity(usize::try_from(header.count).unwrap_or(0));
        let mut pos = 0;
        while let Some(i) = find(&events_part[pos..], OFFSET_KEY) {
            starts.push(pos + i);
            pos += i + OFFSET_KEY.len();
        }
        let mut events = Vec::with_capacity(starts.len());
        for (k, &s) in starts.iter().enumerate() {
            let offset = leading_u64(&events_part[s + OFFSET_KEY.len()..])?;
            let sent = if want_sent_ns {
                let end = starts.get(k + 1).copied().unwrap_or(events_part.len());
                let seg = &events_part[s..end];
                find(seg, SENT_KEY).and_then(|j| leading_u64(&seg[j + SENT_KEY.len()..]))
            } else {
                None
            };
            events.push((offset, sent));
        }
        let consistent = events.len() as u64 == header.count
            && header.first_offset == events.first().map(|e| e.0)
            && header.last_offset == events.last().map(|e| e.0);
        consistent.then_some(ScannedBatch {
            tenant_id: header.tenant_id,
            count: header.count,
            events,
            fell_back: false,
        })
    };
    if let Some(b) = fast() {
        return Ok(b);
    }
    let full: FullBatch = serde_json::from_slice(body).context("webhook body is not a batch envelope")?;
    if full.events.len() as u64 != full.count {
        bail!(
            "batch says count {} but carries {} events",
            full.count,
            full.events.len()
        );
    }
    Ok(ScannedBatch {
        tenant_id: full.tenant_id,
        count: full.count,
        events: full
            .events
            .iter()
            .map(|e| {
                let sent = want_sent_ns
                    .then(|| e.metadata.as_ref()?.get("sent_ns")?.as_u64())
                    .flatten();
                (e.offset, sent)
            })
            .collect(),
        fell_back: true,
    })
}

/// New events per `bucket`, counted from `origin` (arrivals before it go in the first bucket).
pub fn timeline(arrivals: &[(Instant, u32)], origin: Instant, bucket: std::time::Duration) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    let width = bucket.as_nanos().max(1);
    for &(at, n) in arrivals {
        let i = usize::try_from(at.saturating_duration_since(origin).as_nanos() / width).unwrap_or(usize::MAX);
        if i >= out.len() {
            out.resize(i.saturating_add(1), 0);
        }
        out[i] += u64::from(n);
    }
    out
}

/// The gaps between consecutive arrivals that both fall in `from..to`.
pub fn arrival_gaps(arrivals: &[(Instant, u32)], from: Instant, to: Instant) -> Vec<std::time::Duration> {
    let inside: Vec<Instant> = arrivals.iter().map(|a| a.0).filter(|t| *t >= from && *t < to).collect();
    inside
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The server.

/// One latency sample: when the event was sent and how long it took to arrive.
#[derive(Debug, Clone, Copy)]
pub struct LatencySample {
    pub offset: u64,
    pub sent_ns: u64,
    /// Receipt minus send, microseconds (0 if the clock went backwards).
    pub micros: u64,
}

/// Everything the receiver has booked so far.
#[derive(Debug, Default)]
pub struct Books {
    pub tenants: HashMap<String, OffsetSet>,
    pub requests: u64,
    pub body_bytes: u64,
    /// Requests whose body was not a batch, went to another path, or lacked the
    /// Standard Webhooks headers.
    pub bad_requests: u64,
    pub first_error: Option<String>,
    /// Bodies the fast scan could not vouch for (parsed with serde instead).
    pub scan_fallbacks: u64,
    pub first_receipt: Option<Instant>,
    /// When the last event not seen before arrived.
    pub last_new: Option<Instant>,
    /// Every batch request booked: when it was read and how many new events it brought.
    pub arrivals: Vec<(Instant, u32)>,
    /// Latency samples, first receipt of each event only (when enabled).
    pub latency: Vec<LatencySample>,
    /// Events without a parsable `metadata.sent_ns` (latency mode only).
    pub without_sent_ns: u64,
    /// Events whose receipt preceded their `sent_ns` (clock step).
    pub clock_anomalies: u64,
}

impl Books {
    fn note_bad(&mut self, msg: String) {
        self.bad_requests += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    /// The offsets received for `tenant` (empty if none).
    pub fn offsets(&self, tenant: &str) -> Option<&OffsetSet> {
        self.tenants.get(tenant)
    }

    /// Distinct offsets of `tenant` in `lo..=hi`.
    pub fn count_in(&self, tenant: &str, lo: u64, hi: u64) -> u64 {
        self.offsets(tenant).map_or(0, |s| s.count_in(lo, hi))
    }

    fn book(&mut self, batch: &ScannedBatch, received: Instant, received_ns: u64, record_latency: bool) {
        if batch.fell_back {
            self.scan_fallbacks += 1;
        }
        let set = self.tenants.entry(batch.tenant_id.clone()).or_default();
        let mut new = 0u32;
        for &(offset, sent) in &batch.events {
            if !set.insert(offset) {
                continue;
            }
            new += 1;
            if record_latency {
                match sent {
                    Some(sent_ns) => {
                        if received_ns < sent_ns {
                            self.clock_anomalies += 1;
                        }
                        self.latency.push(LatencySample {
                            offset,
                            sent_ns,
                            micros: received_ns.saturating_sub(sent_ns) / 1000,
                        });
                    }
                    None => self.without_sent_ns += 1,
                }
            }
        }
        self.arrivals.push((received, new));
        if new > 0 {
            self.first_receipt.get_or_insert(received);
            self.last_new = Some(received);
        }
    }
}

struct Shared {
    books: Mutex<Books>,
    record_latency: bool,
}

/// A running receiver; stopped (and its thread joined) on drop.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Binds 127.0.0.1:0 and starts serving on a new thread.
    pub fn start(record_latency: bool) -> Result<Self> {
        let shared = Arc::new(Shared {
            books: Mutex::new(Books::default()),
            record_latency,
        });
        let state = shared.clone();
        let server = crate::loopback::spawn("receiver", move |listener, stop| serve(listener, state, stop))?;
        Ok(Self {
            addr: server.addr,
            shared,
            stop: server.stop,
            thread: server.thread,
        })
    }

    /// The URL to give the sink.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// The books, locked (keep the guard short: the receiver waits on it).
    pub fn books(&self) -> MutexGuard<'_, Books> {
        self.shared.books.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            shared
                .books
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note_bad(format!("receiver listener: {e}"));
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    r
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let path_ok = req.method() == Method::POST && req.uri().path() == HOOK_PATH;
    let headers_ok = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .all(|h| req.headers().contains_key(*h));
    let what = format!("{} {}", req.method(), req.uri().path());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            shared
                .books
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note_bad(format!("{what}: reading the body: {e}"));
            return Ok(status(StatusCode::BAD_REQUEST));
        }
    };
    let received = Instant::now();
    let received_ns = unix_nanos();
    if !path_ok {
        let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
        books.note_bad(format!("unexpected request {what}"));
        return Ok(status(StatusCode::NOT_FOUND));
    }
    // Scan outside the lock; the scenario polls the books while we work.
    let scanned = scan_batch(&body, shared.record_latency);
    let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    books.requests += 1;
    books.body_bytes += body.len() as u64;
    if !headers_ok {
        books.note_bad(format!("{what}: Standard Webhooks headers missing"));
    }
    match scanned {
        Ok(batch) => books.book(&batch, received, received_ns, shared.record_latency),
        // Answer 204 anyway: a refused batch would be retried and muddle the figures; the bad
        // body is reported as a failure instead.
        Err(e) => books.note_bad(format!("{what}: {e:#}")),
    }
    Ok(status(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(tenant: &str, events: &[String]) -> Vec<u8> {
        let offsets: Vec<u64> = events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(e).unwrap_or_default();
                v["offset"].as_u64().unwrap_or_default()
            })
            .collect();
        let opt = |o: Option<&u64>| o.map_or("null".to_string(), |o| o.to_string());
        format!(
            r#"{{"batch_id":"bat_1","tenant_id":"{tenant}","first_offset":{},"last_offset":{},"count":{},"events":[{}]}}"#,
            opt(offsets.first()),
            opt(offsets.last()),
            events.len(),
            events.join(",")
        )
        .into_bytes()
    }

    fn event(offset: u64, sent_ns: Option<u64>) -> String {
        let meta = match sent_ns {
            Some(s) => format!(r#"{{"n":{offset},"sent_ns":{s}}}"#),
            None => format!(r#"{{"n":{offset}}}"#),
        };
        format!(
            r#"{{"offset":{offset},"id":"ev{offset}","tenant_id":"t","type":"bench.event","received_at":"2026-01-01T00:00:00.000Z","actor":{{"id":"usr_1"}},"metadata":{meta}}}"#
        )
    }

    #[test]
    fn offset_set_counts_distinct_duplicates_and_max() {
        let mut s = OffsetSet::default();
        assert!(s.insert(5));
        assert!(s.insert(64));
        assert!(s.insert(1));
        assert!(!s.insert(5));
        assert!(!s.insert(5));
        assert_eq!((s.distinct(), s.duplicates(), s.max()), (3, 2, 64));
        assert!(s.contains(64) && s.contains(1) && !s.contains(2) && !s.contains(63));
    }

    #[test]
    fn gaps_and_counts_over_ranges() {
        let mut s = OffsetSet::default();
        for o in (1..=200).filter(|o| !(10..=12).contains(o) && *o != 64 && *o != 150) {
            s.insert(o);
        }
        assert_eq!(s.count_in(1, 200), 200 - 5);
        assert_eq!(s.count_in(13, 63), 51);
        assert_eq!(s.count_in(5, 4), 0);
        let g = s.gaps(1, 200);
        assert_eq!(g.missing, 5);
        assert_eq!(g.runs, vec![(10, 12), (64, 64), (150, 150)]);
        // A range past the end is entirely missing, as one run.
        let g = s.gaps(190, 260);
        assert_eq!(g.missing, 60);
        assert_eq!(g.runs, vec![(201, 260)]);
        assert_eq!(s.gaps(1, 9), Gaps::default());
        assert_eq!(s.gaps(9, 1), Gaps::default());
    }

    #[test]
    fn gaps_keep_only_the_first_runs() {
        let mut s = OffsetSet::default();
        for o in (1..=100).step_by(2) {
            s.insert(o);
        }
        let g = s.gaps(1, 100);
        assert_eq!(g.missing, 50);
        assert_eq!(g.runs.len(), MAX_GAP_RUNS);
        assert_eq!(g.runs[0], (2, 2));
    }

    #[test]
    fn timelines_and_gaps() {
        use std::time::Duration;
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let arrivals = vec![(ms(0), 100), (ms(30), 100), (ms(260), 50), (ms(1100), 7)];
        assert_eq!(timeline(&arrivals, t0, Duration::from_millis(500)), vec![250, 0, 7]);
        assert_eq!(timeline(&[], t0, Duration::from_millis(500)), Vec::<u64>::new());
        let gaps = arrival_gaps(&arrivals, ms(0), ms(1000));
        assert_eq!(gaps, vec![Duration::from_millis(30), Duration::from_millis(230)]);
        assert!(arrival_gaps(&arrivals, ms(2000), ms(3000)).is_empty());
    }

    #[test]
    fn range_masks() {
        assert_eq!(range_mask(0, 0, 63), u64::MAX);
        assert_eq!(range_mask(0, 1, 3), 0b1110);
        assert_eq!(range_mask(1, 0, 64), 1);
        assert_eq!(range_mask(1, 127, 500), 1 << 63);
        assert_eq!(range_mask(2, 0, 1000), u64::MAX);
    }

    #[test]
    fn scans_a_webhook_body() -> Result<()> {
        let body = envelope("acme", &[event(7, Some(1_000)), event(8, None), event(9, Some(3_000))]);
        let b = scan_batch(&body, true)?;
        assert_eq!(b.tenant_id, "acme");
        assert_eq!(b.count, 3);
        assert!(!b.fell_back);
        assert_eq!(b.events, vec![(7, Some(1_000)), (8, None), (9, Some(3_000))]);
        // Without sent_ns the scan does not look for it.
        let b = scan_batch(&body, false)?;
        assert_eq!(b.events, vec![(7, None), (8, None), (9, None)]);
        Ok(())
    }

    #[test]
    fn scans_an_empty_batch() -> Result<()> {
        let b = scan_batch(&envelope("t", &[]), false)?;
        assert_eq!((b.count, b.events.len(), b.fell_back), (0, 0, false));
        Ok(())
    }

    #[test]
    fn falls_back_to_serde_when_the_scan_is_fooled() -> Result<()> {
        // An event whose metadata holds an object starting with "offset" would double-count.
        let tricky = r#"{"offset":3,"id":"x","metadata":{"inner":{"offset":99},"sent_ns":5000}}"#.to_string();
        let body = envelope("t", &[event(2, None), tricky]);
        let b = scan_batch(&body, true)?;
        assert!(b.fell_back);
        assert_eq!(b.events, vec![(2, None), (3, Some(5000))]);
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_a_batch() {
        assert!(scan_batch(b"not json", false).is_err());
        assert!(scan_batch(br#"{"tenant_id":"t","count":2,"events":[{"offset":1}]}"#, false).is_err());
    }

    #[test]
    fn books_count_first_receipts_only() -> Result<()> {
        let mut books = Books::default();
        let now = Instant::now();
        let b = scan_batch(
            &envelope("t", &[event(1, Some(1_000_000)), event(2, Some(2_000_000))]),
            true,
        )?;
        books.book(&b, now, 3_000_000, true);
        books.book(&b, now, 9_000_000, true);
        let set = books.offsets("t").context("tenant")?;
        assert_eq!((set.distinct(), set.duplicates()), (2, 2));
        let micros: Vec<u64> = books.latency.iter().map(|s| s.micros).collect();
        assert_eq!(micros, vec![2000, 1000]);
        assert_eq!(books.count_in("t", 1, 2), 2);
        assert_eq!(books.count_in("other", 1, 2), 0);
        assert_eq!(books.arrivals.iter().map(|a| a.1).collect::<Vec<_>>(), vec![2, 0]);
        Ok(())
    }

    #[tokio::test]
    async fn serves_and_books_over_http() -> Result<()> {
        let receiver = Receiver::start(false)?;
        let target = Arc::new(crate::http::Target::parse(&format!("http://{}", receiver.addr))?);
        let mut conn = crate::http::Conn::connect(target).await?;
        let body = Bytes::from(envelope("t", &[event(1, None), event(2, None)]));
        let auth = crate::http::Auth::bearer("x")?;
        // Without the webhook headers: booked, but flagged.
        let resp = conn.post_json(HOOK_PATH, &auth, body).await?;
        assert_eq!(resp.status, StatusCode::NO_CONTENT);
        let resp = conn.get("/elsewhere", None).await?;
        assert_eq!(resp.status, StatusCode::NOT_FOUND);
        let books = receiver.books();
        assert_eq!(books.requests, 1);
        assert_eq!(books.count_in("t", 1, 2), 2);
        assert_eq!(books.bad_requests, 2);
        Ok(())
    }
}
