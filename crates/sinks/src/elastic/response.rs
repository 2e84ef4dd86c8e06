//! Reading a `_bulk` answer: HTTP 200 says only that the request was read; each item has its
//! own status.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{AttemptReport, Outcome};

/// Longest item reason kept (receiver-controlled text going into dead letters and the status).
const MAX_REASON_CHARS: usize = 512;

#[derive(Deserialize)]
struct BulkAnswer {
    errors: bool,
    /// May be left out when `errors` is false (`filter_path=errors` in the URL).
    items: Option<Vec<Map<String, Value>>>,
}

/// What one item's status means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemVerdict {
    Delivered,
    Retry(String),
    Rejected(String),
}

/// Maps an item's status: 2xx is stored; 409 (`version_conflict_engine_exception` from `create`)
/// means a document with this `_id` exists, and as the `_id` is the event id, that is this event
/// from an earlier attempt whose answer was lost, so it is delivered; 429 and 5xx are transient;
/// anything else (a mapping error, a missing index) will fail again and is dead-lettered.
pub fn item_verdict(status: u16, error: Option<&Value>) -> ItemVerdict {
    match status {
        200..=299 | 409 => ItemVerdict::Delivered,
        429 | 500..=599 => ItemVerdict::Retry(reason(status, error)),
        _ => ItemVerdict::Rejected(reason(status, error)),
    }
}

/// `<status> <type>: <reason>` from an item's `error` (an object; a bare string is taken as
/// the reason), one line, capped.
fn reason(status: u16, error: Option<&Value>) -> String {
    let (kind, why) = match error {
        Some(Value::Object(e)) => (
            e.get("type").and_then(Value::as_str),
            e.get("reason").and_then(Value::as_str),
        ),
        Some(Value::String(s)) => (None, Some(s.as_str())),
        _ => (None, None),
    };
    let mut out = status.to_string();
    if let Some(kind) = kind {
        out.push(' ');
        out.push_str(kind);
    }
    if let Some(why) = why {
        out.push_str(if kind.is_some() { ": " } else { " " });
        out.push_str(why);
    }
    one_line(&out)
}

fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_REASON_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Classifies a 2xx `_bulk` answer. `items[k]` is the batch index of the body's k-th item;
/// `refused` are batch events left out of the body (already dead-lettered reasons); `n` is the
/// batch size; `after` the answer's `Retry-After`.
pub fn classify_answer(
    body: &[u8],
    status: u16,
    items: &[usize],
    refused: Vec<(usize, String)>,
    n: usize,
    after: Option<Duration>,
) -> AttemptReport {
    let answer: BulkAnswer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => return malformed(status, &format!("not a _bulk answer ({e})"), body),
    };
    let mut retry = Vec::new();
    let mut rejected = refused;
    let mut first_failure: Option<String> = None;
    if answer.errors {
        let Some(results) = answer.items else {
            return malformed(status, "`errors` is true but `items` is missing", body);
        };
        if results.len() != items.len() {
            let why = format!("{} items answered for {} sent", results.len(), items.len());
            return malformed(status, &why, body);
        }
        for (result, &i) in results.iter().zip(items) {
            // Each item is `{"<action>": {"status": …, "error": …}}`.
            let Some(Value::Object(item)) = result.values().next().filter(|_| result.len() == 1) else {
                return malformed(status, "an item is not `{\"<action>\": {…}}`", body);
            };
            let Some(code) = item.get("status").and_then(Value::as_u64) else {
                return malformed(status, "an item has no numeric `status`", body);
            };
            let code = u16::try_from(code).unwrap_or(u16::MAX);
            let (verdict, why) = match item_verdict(code, item.get("error")) {
                ItemVerdict::Delivered => continue,
                ItemVerdict::Retry(why) => {
                    retry.push(i);
                    ("retry", why)
                }
                ItemVerdict::Rejected(why) => {
                    rejected.push((i, why.clone()));
                    ("rejected", why)
                }
            };
            first_failure.get_or_insert_with(|| format!("event #{i} ({verdict}): {why}"));
        }
    }
    rejected.sort_by_key(|(i, _)| *i);
    if retry.is_empty() && rejected.is_empty() {
        return AttemptReport::delivered(Some(status));
    }
    let first = first_failure.or_else(|| rejected.first().map(|(i, why)| format!("event #{i} (rejected): {why}")));
    let error = format!(
        "_bulk: {} of {n} events to retry, {} rejected; first: {}",
        retry.len(),
        rejected.len(),
        first.unwrap_or_default()
    );
    // Nothing stored and nothing refused: a plain retry, which the breaker counts as a failure
    // (a cluster answering 429 to every item is overloaded, not partly working).
    let outcome = if retry.len() == n {
        Outcome::Retry { after }
    } else {
        Outcome::Partial { retry, after, rejected }
    };
    AttemptReport {
        outcome,
        status: Some(status),
        error: Some(error),
    }
}

/// A 2xx whose body cannot be read as a `_bulk` answer (a proxy's page, a truncated body): which
/// items were stored is unknown, so the whole batch goes again; `_id`s make the repeat safe.
fn malformed(status: u16, why: &str, body: &[u8]) -> AttemptReport {
    let snippet = one_line(&String::from_utf8_lossy(&body[..body.len().min(256)]));
    AttemptReport {
        outcome: Outcome::Retry { after: None },
        status: Some(status),
        error: Some(format!(
            "HTTP {status} but the answer is unreadable: {why}; body: {snippet}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_statuses() {
        use ItemVerdict::*;
        let e = serde_json::json!({"type": "t", "reason": "r"});
        for (status, want) in [
            (200, Delivered),
            (201, Delivered),
            (409, Delivered),
            (429, Retry("429 t: r".into())),
            (500, Retry("500 t: r".into())),
            (503, Retry("503 t: r".into())),
            (400, Rejected("400 t: r".into())),
            (404, Rejected("404 t: r".into())),
            (403, Rejected("403 t: r".into())),
            (413, Rejected("413 t: r".into())),
        ] {
            assert_eq!(item_verdict(status, Some(&e)), want, "{status}");
        }
        assert_eq!(item_verdict(400, None), Rejected("400".into()));
        assert_eq!(
            item_verdict(400, Some(&Value::from("bad\nthing"))),
            Rejected("400 bad thing".into())
        );
        let long = serde_json::json!({"type": "t", "reason": "x".repeat(2000)});
        let ItemVerdict::Rejected(why) = item_verdict(400, Some(&long)) else {
            panic!()
        };
        assert_eq!(why.chars().count(), MAX_REASON_CHARS + 1);
    }

    #[test]
    fn errors_false_needs_no_items() {
        let r = classify_answer(br#"{"errors":false}"#, 200, &[0, 1], vec![], 2, None);
        assert_eq!(r, AttemptReport::delivered(Some(200)));
    }

    #[test]
    fn refused_events_alone_make_a_partial() {
        let r = classify_answer(
            br#"{"errors":false,"items":[]}"#,
            200,
            &[0],
            vec![(1, "no time".into())],
            2,
            None,
        );
        assert_eq!(
            r.outcome,
            Outcome::Partial {
                retry: vec![],
                after: None,
                rejected: vec![(1, "no time".into())]
            }
        );
        assert_eq!(
            r.error.unwrap(),
            "_bulk: 0 of 2 events to retry, 1 rejected; first: event #1 (rejected): no time"
        );
    }

    #[test]
    fn all_retry_is_a_plain_retry() {
        let body = br#"{"errors":true,"items":[{"create":{"status":429}},{"create":{"status":503}}]}"#;
        let r = classify_answer(body, 200, &[0, 1], vec![], 2, Some(Duration::from_secs(3)));
        assert_eq!(
            r.outcome,
            Outcome::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn malformed_answers_retry() {
        for (body, why) in [
            (&b"<html>"[..], "not a _bulk answer"),
            (br#"{"items":[]}"#, "not a _bulk answer"),
            (br#"{"errors":true}"#, "`items` is missing"),
            (br#"{"errors":true,"items":[]}"#, "0 items answered for 1 sent"),
            (br#"{"errors":true,"items":[{"create":{}}]}"#, "no numeric `status`"),
            (
                br#"{"errors":true,"items":[{"a":{"status":201},"b":{}}]}"#,
                "not `{\"<action>\"",
            ),
            (br#"{"errors":true,"items":[5]}"#, "not a _bulk answer"),
        ] {
            let r = classify_answer(body, 200, &[0], vec![], 1, None);
            assert_eq!(r.outcome, Outcome::Retry { after: None }, "{why}");
            let e = r.error.unwrap();
            assert!(e.starts_with("HTTP 200 but the answer is unreadable: "), "{e}");
            assert!(e.contains(why), "{e}");
        }
    }
}
