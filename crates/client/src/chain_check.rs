//! Checks a copy of one or more tenants' logs against their hash chains (docs/integrity.md).
//!
//! Written from the documented definition alone (it shares no code with the server), so it is
//! also a second, independent implementation: one pass, constant memory per tenant apart from a
//! bounded window of recent chain values used to recognise re-delivered duplicates.

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The chain value before offset 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// How many recent (offset, chain) pairs each tenant keeps to recognise exact re-deliveries,
/// which an at-least-once SIEM copy may contain.
const DUPLICATE_WINDOW: usize = 100_000;

/// A signed checkpoint as `GET /v1/integrity/checkpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CheckpointDoc {
    pub tenant_id: String,
    pub offset: u64,
    /// 64 hex digits.
    pub chain: String,
    pub signed_at: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_signed_bytes(tenant: &str, offset: u64, chain_hex: &str, signed_at: &str) -> Vec<u8> {
    format!("auditrelay-checkpoint-v1\n{tenant}\n{offset}\n{chain_hex}\n{signed_at}\n").into_bytes()
}

/// Parses a public key given as base64 of the 32 raw bytes, or as a PEM SubjectPublicKeyInfo.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let bytes = b64
        .decode(body.trim())
        .map_err(|e| format!("the public key is not base64: {e}"))?;
    // A PEM SPKI is 12 bytes of DER header then the key.
    let raw = match bytes.len() {
        32 => &bytes[..],
        44 => &bytes[12..],
        n => return Err(format!("an Ed25519 public key has 32 bytes (or 44 as SPKI), got {n}")),
    };
    let raw: [u8; 32] = raw.try_into().map_err(|_| "bad key length".to_string())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// The first thing wrong with a copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("line {line}: not an event of the `json` format: {reason}")]
    Unreadable { line: u64, reason: String },
    #[error("tenant `{tenant}`: gap or reordering: offset {missing} is missing here (offset {before} is followed by {after})")]
    Gap {
        tenant: String,
        missing: u64,
        before: u64,
        after: u64,
    },
    #[error(
        "tenant `{tenant}`: reordered: offset {offset} comes after offset {after} (and is not an exact re-delivery)"
    )]
    Reordered { tenant: String, offset: u64, after: u64 },
    #[error("tenant `{tenant}`: altered or inserted event at offset {offset}: its content does not hash to the chain value it carries{hint}")]
    Altered { tenant: String, offset: u64, hint: String },
    #[error("tenant `{tenant}`: offset {offset} disagrees with the signed checkpoint at that offset (the history up to it was rewritten)")]
    CheckpointMismatch { tenant: String, offset: u64 },
    #[error("tenant `{tenant}`: the checkpoint at offset {offset} has a bad signature")]
    BadSignature { tenant: String, offset: u64 },
}

/// What a tenant's copy turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub tenant: String,
    pub events: u64,
    pub first: u64,
    pub last: u64,
    pub duplicates: u64,
    /// How the first event was anchored: offset 1 (genesis), a signed checkpoint, or only its
    /// own chain value (then its content is not verified).
    pub anchor: Anchor,
    /// The highest checkpoint the copy passed through: (offset, signed_at).
    pub last_checkpoint: Option<(u64, String)>,
    /// Events a sink's transform changed (`"transformed": true`): their place in the chain is
    /// checked (the next event's chain value commits to theirs), their content cannot be.
    pub unchecked: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Genesis,
    Checkpoint(u64),
    Unanchored,
}

impl std::fmt::Display for TenantSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenant `{}`: intact: {} events, offsets {}..{}",
            self.tenant, self.events, self.first, self.last
        )?;
        match &self.last_checkpoint {
            Some((offset, at)) => write!(f, ", last checkpoint signed at {at} (offset {offset})")?,
            None => write!(f, ", no signed checkpoint in this range")?,
        }
        match self.anchor {
            Anchor::Genesis => {}
            Anchor::Checkpoint(o) => write!(f, "; started from the signed checkpoint at offset {o}")?,
            Anchor::Unanchored => write!(
                f,
                "; WARNING: no checkpoint at offset {}, so offset {} is trusted as the starting point, not verified",
                self.first.saturating_sub(1),
                self.first
            )?,
        }
        if self.duplicates > 0 {
            write!(f, "; {} exact re-deliveries skipped", self.duplicates)?;
        }
        if !self.unchecked.is_empty() {
            let shown: Vec<String> = self.unchecked.iter().take(20).map(u64::to_string).collect();
            let more = if self.unchecked.len() > 20 { ", …" } else { "" };
            write!(
                f,
                "; {} events transformed by the sink: none missing, content not checked (offsets {}{more})",
                self.unchecked.len(),
                shown.join(", ")
            )?;
        }
        Ok(())
    }
}

struct TenantState {
    summary: TenantSummary,
    /// Chain after `summary.last`.
    chain: [u8; 32],
    recent: VecDeque<(u64, [u8; 32])>,
}

/// Feeds events in the order the copy holds them; stops at the first problem.
pub struct ChainChecker {
    tenants: BTreeMap<String, TenantState>,
    /// tenant → offset → checkpoint (signature already checked).
    checkpoints: HashMap<String, BTreeMap<u64, (Vec<u8>, String)>>,
    line: u64,
}

impl ChainChecker {
    /// `checkpoints` are verified with `key` first; without a key they are refused (an unsigned
    /// checkpoint proves nothing).
    pub fn new(checkpoints: Vec<CheckpointDoc>, key: Option<&VerifyingKey>) -> Result<Self, Problem> {
        let mut by_tenant: HashMap<String, BTreeMap<u64, (Vec<u8>, String)>> = HashMap::new();
        let b64 = base64::engine::general_purpose::STANDARD;
        for cp in checkpoints {
            let bad = || Problem::BadSignature {
                tenant: cp.tenant_id.clone(),
                offset: cp.offset,
            };
            let key = key.ok_or_else(bad)?;
            let sig: [u8; 64] = b64
                .decode(&cp.signature)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            key.verify(
                &checkpoint_signed_bytes(&cp.tenant_id, cp.offset, &cp.chain, &cp.signed_at),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| bad())?;
            let chain = hex::decode(&cp.chain).map_err(|_| bad())?;
            by_tenant
                .entry(cp.tenant_id.clone())
                .or_default()
                .insert(cp.offset, (chain, cp.signed_at));
        }
        Ok(ChainChecker {
            tenants: BTreeMap::new(),
            checkpoints: by_tenant,
            line: 0,
        })
    }

    /// One line of NDJSON; blank lines are skipped.
    pub fn line(&mut self, text: &str) -> Result<(), Problem> {
        self.line += 1;
        if text.trim().is_empty() {
            return Ok(());
        }
        let unreadable = |reason: String| Problem::Unreadable {
            line: self.line,
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        let Value::Object(event) = value else {
            return Err(unreadable("not a JSON object".into()));
        };
        self.event(event).map_err(|e| match e {
            Err(reason) => Problem::Unreadable {
                line: self.line,
                reason,
            },
            Ok(p) => p,
        })
    }

    fn event(&mut self, mut event: Map<String, Value>) -> Result<(), Result<Problem, String>> {
        let tenant = match event.get("tenant_id") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(Err("no `tenant_id`".into())),
        };
        let offset = event
            .get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| Err("no `offset`".into()))?;
        let stated: [u8; 32] = match event.remove("chain") {
            Some(Value::String(h)) => hex::decode(&h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Err(format!("`chain` of offset {offset} is not 64 hex digits")))?,
            _ => return Err(Err(format!("offset {offset} has no `chain`"))),
        };
        // A sink's transform changed this copy: its content no longer hashes to its chain
        // value, which is still the log's (docs/filter-transform.md).
        let transformed = event.get("transformed") == Some(&Value::Bool(true));
        let canonical = serde_jcs::to_vec(&event).map_err(|e| Err(format!("canonicalising offset {offset}: {e}")))?;
        let link = |previous: &[u8; 32]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(previous);
            h.update(&canonical);
            h.finalize().into()
        };
        let checkpoints = self.checkpoints.get(&tenant);
        let Some(state) = self.tenants.get_mut(&tenant) else {
            // The first event of this tenant: anchor it.
            let (previous, anchor) = if offset == 1 {
                (Some(GENESIS), Anchor::Genesis)
            } else {
                match checkpoints.and_then(|c| c.get(&(offset - 1))) {
                    Some((chain, _)) => (
                        <[u8; 32]>::try_from(chain.as_slice()).ok(),
                        Anchor::Checkpoint(offset - 1),
                    ),
                    None => (None, Anchor::Unanchored),
                }
            };
            if let Some(previous) = previous.filter(|_| !transformed) {
                if link(&previous) != stated {
                    return Err(Ok(Problem::Altered {
                        tenant,
                        offset,
                        hint: String::new(),
                    }));
                }
            }
            let mut state = TenantState {
                summary: TenantSummary {
                    tenant: tenant.clone(),
                    events: 1,
                    first: offset,
                    last: offset,
                    duplicates: 0,
                    anchor,
                    last_checkpoint: None,
                    unchecked: if transformed { vec![offset] } else { Vec::new() },
                },
                chain: stated,
                recent: VecDeque::new(),
            };
            state.recent.push_back((offset, stated));
            check_checkpoint(&mut state.summary, checkpoints, offset, &stated)?;
            self.tenants.insert(tenant, state);
            return Ok(());
        };
        let last = state.summary.last;
        if offset <= last {
            // An exact re-delivery of a recent event is harmless; anything else is reordering.
            let known = |o: u64| -> Option<[u8; 32]> {
                if o == 0 {
                    return Some(GENESIS);
                }
                state.recent.iter().find(|(k, _)| *k == o).map(|(_, c)| *c)
            };
            return match (known(offset - 1), known(offset)) {
                (Some(previous), Some(chain)) if chain == stated && (transformed || link(&previous) == stated) => {
                    state.summary.duplicates += 1;
                    Ok(())
                }
                _ => Err(Ok(Problem::Reordered {
                    tenant,
                    offset,
                    after: last,
                })),
            };
        }
        if offset > last + 1 {
            return Err(Ok(Problem::Gap {
                tenant,
                missing: last + 1,
                before: last,
                after: offset,
            }));
        }
        if transformed {
            state.summary.unchecked.push(offset);
        } else if link(&state.chain) != stated {
            return Err(Ok(Problem::Altered {
                tenant,
                offset,
                hint: format!(" (or offset {last} was altered together with its chain value)"),
            }));
        }
        state.chain = stated;
        state.summary.last = offset;
        state.summary.events += 1;
        state.recent.push_back((offset, stated));
        if state.recent.len() > DUPLICATE_WINDOW {
            state.recent.pop_front();
        }
        check_checkpoint(&mut state.summary, checkpoints, offset, &stated)
    }

    /// Every tenant seen, in tenant order.
    pub fn finish(self) -> Vec<TenantSummary> {
        self.tenants.into_values().map(|s| s.summary).collect()
    }
}

fn check_checkpoint(
    summary: &mut TenantSummary,
    checkpoints: Option<&BTreeMap<u64, (Vec<u8>, String)>>,
    offset: u64,
    chain: &[u8; 32],
) -> Result<(), Result<Problem, String>> {
    if let Some((expected, signed_at)) = checkpoints.and_then(|c| c.get(&offset)) {
        if expected.as_slice() != chain {
            return Err(Ok(Problem::CheckpointMismatch {
                tenant: summary.tenant.clone(),
                offset,
            }));
        }
        summary.last_checkpoint = Some((offset, signed_at.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `n` events of one tenant as the `json` format would deliver them, chained.
    fn chained(n: u64) -> Vec<String> {
        let mut chain = GENESIS;
        (1..=n)
            .map(|offset| {
                let mut ev: Map<String, Value> = serde_json::from_value(serde_json::json!({
                    "offset": offset, "id": format!("e{offset}"), "tenant_id": "t", "type": "a.b",
                    "metadata": { "x": 1.5 }
                }))
                .unwrap();
                let mut h = Sha256::new();
                h.update(chain);
                h.update(serde_jcs::to_vec(&ev).unwrap());
                chain = h.finalize().into();
                ev.insert("chain".into(), Value::String(hex::encode(chain)));
                Value::Object(ev).to_string()
            })
            .collect()
    }

    fn check(lines: &[String]) -> Result<Vec<TenantSummary>, Problem> {
        let mut c = ChainChecker::new(Vec::new(), None)?;
        for l in lines {
            c.line(l)?;
        }
        Ok(c.finish())
    }

    /// A sink's transform changes a copy's content but not its place: completeness is still
    /// proven (the next event's chain commits to the changed one's), and the changed events
    /// are named instead of failing.
    #[test]
    fn transformed_events_are_listed_not_refused_and_gaps_still_are() {
        let transform = |line: &str| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["metadata"] = serde_json::json!({"x": "[REDACTED]"});
            v["transformed"] = Value::Bool(true);
            v.to_string()
        };
        let mut lines = chained(6);
        lines[0] = transform(&lines[0]);
        lines[3] = transform(&lines[3]);
        let summary = check(&lines).unwrap();
        assert_eq!((summary[0].events, summary[0].unchecked.clone()), (6, vec![1, 4]));
        assert!(
            summary[0].to_string().contains("content not checked (offsets 1, 4)"),
            "{}",
            summary[0]
        );
        // The same change without the mark is an alteration.
        let mut unmarked = chained(6);
        let mut v: Value = serde_json::from_str(&unmarked[3]).unwrap();
        v["metadata"] = serde_json::json!({"x": "[REDACTED]"});
        unmarked[3] = v.to_string();
        assert!(matches!(check(&unmarked), Err(Problem::Altered { offset: 4, .. })));
        // A transformed copy with an offset missing is still incomplete.
        lines.remove(2);
        assert!(matches!(check(&lines), Err(Problem::Gap { missing: 3, .. })));
    }

    #[test]
    fn exact_redeliveries_are_skipped_but_altered_ones_are_not() {
        let lines = chained(5);
        let mut redelivered = lines.clone();
        redelivered.insert(4, lines[2].clone()); // 1 2 3 4 3 5
        redelivered.insert(5, lines[3].clone()); // 1 2 3 4 3 4 5
        let summary = check(&redelivered).unwrap();
        assert_eq!((summary[0].events, summary[0].duplicates), (5, 2));

        let mut altered = lines.clone();
        altered.insert(4, lines[2].replace("e3", "eX"));
        assert_eq!(
            check(&altered).unwrap_err(),
            Problem::Reordered {
                tenant: "t".into(),
                offset: 3,
                after: 4
            }
        );
    }

    #[test]
    fn a_copy_starting_later_is_anchored_on_its_first_event_and_says_so() {
        let lines = chained(6);
        let summary = check(&lines[2..]).unwrap();
        assert_eq!(summary[0].anchor, Anchor::Unanchored);
        assert!(summary[0].to_string().contains("WARNING"));
    }

    #[test]
    fn an_unsigned_checkpoint_is_refused() {
        let cp = CheckpointDoc {
            tenant_id: "t".into(),
            offset: 1,
            chain: "00".repeat(32),
            signed_at: "2026-01-01T00:00:00Z".into(),
            signature: String::new(),
        };
        assert!(matches!(
            ChainChecker::new(vec![cp], None),
            Err(Problem::BadSignature { offset: 1, .. })
        ));
    }
}
