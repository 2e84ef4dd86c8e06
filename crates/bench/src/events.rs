//! The benchmark events: what the ingest load sends, identically to auditrelay and to the
//! ceilings ([`crate::ceiling`]).
//!
//! The default event is a realistic audit event of about 500 bytes as sent, compact JSON in
//! the server's canonical member order: `type`, an `actor` record with all six members (id,
//! type, name, email, ip_address, user_agent), `action`, a `target` record (type, id, name),
//! `outcome`, `severity`, a `metadata` object with nested members (a counter, an object with a
//! string and a boolean, a small array of strings, a number) and a `source` record — members
//! the server's schema (crates/core/src/validate.rs, fast.rs) accepts, nothing it refuses. No
//! `occurred_at`: the server fills it in (as with the earlier event). The canonical event the
//! server stores and serves adds `offset`, `id`, `tenant_id`, `occurred_at`, `received_at` and
//! the hash `chain`, ~240 bytes (a 497-byte event reads back as ~736); the report prints both
//! sizes. `--event-size 2k` adds an `items` array of small objects to `metadata`; both sizes
//! are padded to their target with a `metadata.note` string. `--event-size legacy` is the
//! ~170-byte event of earlier benchmark runs, for comparison with recorded figures.
//!
//! Every event is unique: `metadata.n` is a process-wide counter ([`reserve`]), so events never
//! repeat across scenarios or `--runs`. With `--client-ids`, each event also carries a client
//! `id` (`<run prefix>-<n>`), so the server's dedup check is exercised; without it (the default,
//! as in earlier runs) the server assigns ids.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Result};
use bytes::Bytes;

/// The next event number (`metadata.n`), shared by every load in the process.
static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

/// Reserves `k` consecutive event numbers; the first.
pub fn reserve(k: u64) -> u64 {
    NEXT_EVENT.fetch_add(k, Ordering::Relaxed)
}

/// The event size (`--event-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSize {
    /// The ~170-byte event of earlier runs.
    Legacy,
    /// A realistic event padded to about this many bytes (as sent).
    Bytes(usize),
}

impl EventSize {
    /// `legacy`, `500`, `2k`, or any byte count (`k` = ×1024) of at least [`MIN_RICH_BYTES`].
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "legacy" || t == "small" {
            return Ok(EventSize::Legacy);
        }
        let n = if let Some(k) = t.strip_suffix('k') {
            k.parse::<f64>().ok().map(|k| (k * 1024.0).round() as usize)
        } else {
            t.parse::<usize>().ok()
        };
        match n {
            Some(n) if (MIN_RICH_BYTES..=60 * 1024).contains(&n) => Ok(EventSize::Bytes(n)),
            Some(n) => bail!("--event-size {n} is out of range: {MIN_RICH_BYTES}..=61440 bytes (or `legacy`)"),
            None => bail!("--event-size must be `legacy`, `500`, `2k` or a byte count, got {s:?}"),
        }
    }

    pub fn label(self) -> String {
        match self {
            EventSize::Legacy => "legacy".into(),
            EventSize::Bytes(n) if n % 1024 == 0 => format!("{}k", n / 1024),
            EventSize::Bytes(n) => n.to_string(),
        }
    }
}

/// The smallest `--event-size` in bytes: the realistic event without padding.
pub const MIN_RICH_BYTES: usize = 490;

/// The bytes `,"note":""` adds around the padding text.
const NOTE_OVERHEAD: usize = 10;

/// From this size on, `metadata` also carries the `items` array.
const ITEMS_FROM: usize = 1000;

/// How events are generated.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub size: EventSize,
    /// Client `id` prefix; `None` = no client ids (the server assigns them).
    pub id_prefix: Option<String>,
    /// `metadata.note`, sized so that the event hits its target size.
    note: String,
}

const LOREM: &str = "Reviewed by the quarterly access committee; change approved under policy AC-7 \
after the owner confirmed the recipients. Ticket linked for the auditors, no customer data moved. ";

impl EventSpec {
    pub fn new(size: EventSize, client_ids: bool) -> Self {
        let id_prefix = client_ids.then(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("bench-{:x}-{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
        });
        let mut spec = EventSpec {
            size,
            id_prefix,
            note: String::new(),
        };
        if let EventSize::Bytes(target) = size {
            // A typical event number (7 digits) for the size; smaller and larger numbers
            // make the event a few bytes shorter or longer.
            let mut probe = String::new();
            spec.write(&mut probe, 1_234_567);
            // `,"note":"…"` costs 10 bytes besides the text; below that the event stays as is.
            let pad = target.saturating_sub(probe.len() + NOTE_OVERHEAD);
            if pad > 0 {
                spec.note = LOREM.chars().cycle().take(pad).collect();
            }
        }
        spec
    }

    /// The size of a typical event, bytes as sent.
    pub fn typical_len(&self) -> usize {
        let mut s = String::new();
        self.write(&mut s, 1_234_567);
        s.len()
    }

    /// Writes event number `n`.
    pub fn write(&self, out: &mut String, n: u64) {
        match self.size {
            EventSize::Legacy => write_legacy_event(out, "bench.event", n),
            EventSize::Bytes(target) => self.write_rich(out, n, target >= ITEMS_FROM),
        }
    }

    fn write_rich(&self, out: &mut String, n: u64, items: bool) {
        out.push('{');
        if let Some(p) = &self.id_prefix {
            let _ = write!(out, r#""id":"{p}-{n}","#);
        }
        let user = n % 5000;
        let _ = write!(
            out,
            r#""type":"document.shared","actor":{{"id":"usr_{user:05}","type":"user","name":"Ada Lovelace","email":"ada+{user}@example.com","ip_address":"203.0.113.{}","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}},"#,
            n % 250 + 1
        );
        let _ = write!(
            out,
            r#""action":"share","target":{{"type":"document","id":"doc_{:07}","name":"Q3 minutes"}},"outcome":"success","severity":6,"#,
            n % 10_000_000
        );
        let _ = write!(
            out,
            r#""metadata":{{"n":{n},"session":{{"id":"ses_{:08x}","mfa":true}},"recipients":["legal@example.com","cfo@example.com"],"duration_ms":{}"#,
            n.wrapping_mul(2_654_435_761) & 0xffff_ffff,
            n % 97 + 3
        );
        if items {
            out.push_str(r#","items":["#);
            for i in 0..8u64 {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    r#"{{"sku":"SKU-{:05}","qty":{},"unit_price_cents":{},"tags":["renewal","annual"]}}"#,
                    (n + i) % 100_000,
                    i + 1,
                    1999 + i * 250
                );
            }
            out.push(']');
        }
        if !self.note.is_empty() {
            let _ = write!(out, r#","note":"{}""#, self.note);
        }
        out.push_str(r#"},"source":{"service":"docs-api"}}"#);
    }

    /// A request body: one event object when `batch == 1`, else a JSON array of `batch`
    /// events numbered from `first`.
    pub fn body(&self, first: u64, batch: usize) -> Bytes {
        let mut s = String::with_capacity((self.typical_len() + 16) * batch + 2);
        if batch == 1 {
            self.write(&mut s, first);
        } else {
            s.push('[');
            for i in 0..batch as u64 {
                if i > 0 {
                    s.push(',');
                }
                self.write(&mut s, first + i);
            }
            s.push(']');
        }
        Bytes::from(s)
    }
}

/// The ~170-byte event of earlier runs, with `metadata.n` set to `n`.
pub fn write_legacy_event(out: &mut String, kind: &str, n: u64) {
    let _ = write!(
        out,
        r#"{{"type":"{kind}","actor":{{"id":"usr_1","ip_address":"203.0.113.7"}},"action":"update","target":{{"type":"doc","id":"d1"}},"outcome":"success","severity":5,"metadata":{{"n":{n}}}}}"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn legacy_event_is_the_documented_event() -> Result<()> {
        let spec = EventSpec::new(EventSize::Legacy, false);
        let v: serde_json::Value = serde_json::from_slice(&spec.body(7, 1))?;
        assert_eq!(
            v,
            serde_json::json!({
                "type": "bench.event",
                "actor": {"id": "usr_1", "ip_address": "203.0.113.7"},
                "action": "update",
                "target": {"type": "doc", "id": "d1"},
                "outcome": "success",
                "severity": 5,
                "metadata": {"n": 7}
            })
        );
        Ok(())
    }

    #[test]
    fn batch_body_is_an_array_with_consecutive_counters() -> Result<()> {
        for size in [EventSize::Legacy, EventSize::Bytes(500), EventSize::Bytes(2048)] {
            let v: serde_json::Value = serde_json::from_slice(&EventSpec::new(size, true).body(100, 100))?;
            let arr = v.as_array().context("array")?;
            assert_eq!(arr.len(), 100);
            assert_eq!(arr[0]["metadata"]["n"], 100);
            assert_eq!(arr[99]["metadata"]["n"], 199);
        }
        Ok(())
    }

    #[test]
    fn rich_events_hit_their_size_and_use_only_schema_members() -> Result<()> {
        for (size, target) in [(EventSize::Bytes(500), 500), (EventSize::Bytes(2048), 2048)] {
            let spec = EventSpec::new(size, false);
            assert!(
                spec.typical_len().abs_diff(target) <= NOTE_OVERHEAD,
                "{}",
                spec.typical_len()
            );
            for n in [1u64, 99_999_999] {
                let mut s = String::new();
                spec.write(&mut s, n);
                assert!(s.len().abs_diff(target) < 24, "{} bytes for n={n}", s.len());
                let v: serde_json::Value = serde_json::from_str(&s)?;
                // The server's own validator accepts it (it refuses unknown members).
                let parsed = auditrelay_core::parse_request(
                    s.as_bytes(),
                    auditrelay_core::BodyFormat::Json,
                    &auditrelay_core::Limits::default(),
                );
                assert!(parsed.is_ok(), "{parsed:?}: {s}");
                let actor = v["actor"].as_object().context("actor")?;
                assert_eq!(actor.len(), 6);
                assert!(v["actor"]["ip_address"]
                    .as_str()
                    .context("ip")?
                    .parse::<std::net::IpAddr>()
                    .is_ok());
                assert_eq!(v["target"].as_object().context("target")?.len(), 3);
                assert_eq!(v["metadata"]["n"], n);
                assert!(v.get("id").is_none());
            }
        }
        let spec = EventSpec::new(EventSize::Bytes(2048), false);
        let v: serde_json::Value = serde_json::from_slice(&spec.body(5, 1))?;
        assert_eq!(v["metadata"]["items"].as_array().map(Vec::len), Some(8));
        Ok(())
    }

    #[test]
    fn client_ids_are_unique_per_event() -> Result<()> {
        let spec = EventSpec::new(EventSize::Bytes(500), true);
        let v: serde_json::Value = serde_json::from_slice(&spec.body(10, 2))?;
        let a = v[0]["id"].as_str().context("id")?;
        let b = v[1]["id"].as_str().context("id")?;
        assert!(a.ends_with("-10") && b.ends_with("-11") && a.len() <= 128);
        Ok(())
    }

    #[test]
    fn parses_sizes() -> Result<()> {
        assert_eq!(EventSize::parse("500")?, EventSize::Bytes(500));
        assert_eq!(EventSize::parse("2k")?, EventSize::Bytes(2048));
        assert_eq!(EventSize::parse("2K")?, EventSize::Bytes(2048));
        assert_eq!(EventSize::parse("legacy")?, EventSize::Legacy);
        assert!(EventSize::parse("100").is_err());
        assert!(EventSize::parse("huge").is_err());
        assert_eq!(EventSize::Bytes(2048).label(), "2k");
        assert_eq!(EventSize::Bytes(500).label(), "500");
        Ok(())
    }

    #[test]
    fn reserve_hands_out_disjoint_ranges() {
        let a = reserve(100);
        let b = reserve(1);
        assert!(b >= a + 100);
    }
}
