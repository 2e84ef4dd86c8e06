//! What an HTTP status means for the engine.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::Outcome;

/// The longest `Retry-After` honoured. A receiver (or a proxy in front of it) asking for a day
/// should not silently stall a sink that long; the engine's own backoff takes over past this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Maps a response status to what the engine does next:
/// - 2xx: delivered.
/// - 3xx: rejected. Redirects are never followed (Standard Webhooks: only 2xx is success), and a
///   receiver that moved needs its URL changed, not a retry.
/// - 401, 403, 404, 410: the sink itself is wrong (credentials, a deleted endpoint), so every
///   batch would fail alike: pause the sink and keep the batch.
/// - 408, 429, 5xx: transient; retry, honouring `Retry-After`.
/// - other 4xx: this batch is refused for good: dead-letter it.
/// - anything else (a 1xx as final answer, a non-standard code ≥ 600): a broken intermediary,
///   retried; the engine's attempt limit bounds it.
pub fn classify(status: u16, headers: &HeaderMap) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        300..=399 => Outcome::Reject,
        401 | 403 | 404 | 410 => Outcome::Misconfigured,
        408 | 429 | 500..=599 => Outcome::Retry {
            after: retry_after(headers),
        },
        400..=499 => Outcome::Reject,
        _ => Outcome::Retry { after: None },
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date, capped at [`MAX_RETRY_AFTER`]; `None` when
/// absent or invalid. A date in the past means "now".
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too big for u64 is still valid delay-seconds: just very long.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn status_table() {
        let none = HeaderMap::new();
        let retry = Outcome::Retry { after: None };
        for (status, want) in [
            (200, Outcome::Delivered),
            (201, Outcome::Delivered),
            (202, Outcome::Delivered),
            (204, Outcome::Delivered),
            (299, Outcome::Delivered),
            (300, Outcome::Reject),
            (301, Outcome::Reject),
            (302, Outcome::Reject),
            (304, Outcome::Reject),
            (307, Outcome::Reject),
            (308, Outcome::Reject),
            (400, Outcome::Reject),
            (405, Outcome::Reject),
            (409, Outcome::Reject),
            (413, Outcome::Reject),
            (422, Outcome::Reject),
            (401, Outcome::Misconfigured),
            (403, Outcome::Misconfigured),
            (404, Outcome::Misconfigured),
            (410, Outcome::Misconfigured),
            (408, retry.clone()),
            (429, retry.clone()),
            (500, retry.clone()),
            (502, retry.clone()),
            (503, retry.clone()),
            (504, retry.clone()),
            (599, retry.clone()),
            (100, retry.clone()),
            (600, retry.clone()),
        ] {
            assert_eq!(classify(status, &none), want, "status {status}");
        }
    }

    #[test]
    fn retry_after_only_on_retryable_statuses() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let seven = Outcome::Retry {
            after: Some(Duration::from_secs(7)),
        };
        assert_eq!(classify(429, &h), seven);
        assert_eq!(classify(503, &h), seven);
        assert_eq!(classify(408, &h), seven);
        assert_eq!(classify(400, &h), Outcome::Reject);
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let p = |v: &str| parse_retry_after(v, now);
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p("120"), Some(Duration::from_secs(120)));
        assert_eq!(p(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(p("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("99999999999999999999999"), Some(MAX_RETRY_AFTER));
        // IMF-fixdate, RFC 850 and asctime forms, all accepted by HTTP.
        assert_eq!(p("Wed, 21 Oct 2015 07:28:30 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(p("Wednesday, 21-Oct-15 07:29:00 GMT"), Some(Duration::from_secs(60)));
        assert_eq!(p("Wed Oct 21 07:28:10 2015"), Some(Duration::from_secs(10)));
        assert_eq!(p("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO), "past = now");
        assert_eq!(p("Thu, 22 Oct 2015 07:28:00 GMT"), Some(MAX_RETRY_AFTER));
        for bad in ["", "-1", "1.5", "soon", "5s", "Wed, 32 Oct 2015 07:28:00 GMT", "+5"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
