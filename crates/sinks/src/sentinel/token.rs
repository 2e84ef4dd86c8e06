//! The OAuth2 client-credentials token for the Logs Ingestion API: fetched from Microsoft Entra
//! ID, cached in the sink until shortly before it expires, dropped when the ingestion endpoint
//! refuses it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::Value;

use super::request::WireRequest;
use crate::http::{self, PrivateAddressRefused};
use crate::token_lifetime::{granted_lifetime, usable_for};
pub use crate::token_lifetime::{DEFAULT_LIFETIME, REFRESH_SKEW};
use crate::{AttemptReport, Outcome};

/// How much of a token endpoint's answer is read (tokens are a few KiB).
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// How much of an error description goes into the operator's error.
const MAX_DESCRIPTION_CHARS: usize = 400;

/// When to stop using a token obtained at `obtained_at` that lives `lifetime`.
pub(crate) fn refresh_at(obtained_at: Timestamp, lifetime: Duration) -> Timestamp {
    let usable = SignedDuration::try_from(usable_for(lifetime)).unwrap_or(SignedDuration::MAX);
    obtained_at.checked_add(usable).unwrap_or(Timestamp::MAX)
}

/// A cached access token. Its Debug output never shows the token.
#[derive(Clone)]
pub(crate) struct Token {
    /// `Bearer <token>`, marked sensitive.
    pub bearer: HeaderValue,
    /// The bare token, to scrub from receiver answers.
    pub raw: String,
    pub refresh_at: Timestamp,
    /// Which fetch this is, so a 401 drops this token and not a newer one another lane fetched.
    pub generation: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("refresh_at", &self.refresh_at)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The sink's token slot. Held across a fetch, so concurrent lanes wait for one token request
/// instead of each making their own.
#[derive(Default)]
pub(crate) struct TokenCache {
    pub slot: tokio::sync::Mutex<Option<Token>>,
    generations: AtomicU64,
}

impl TokenCache {
    pub fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Drops the cached token if it is still the one `generation` names.
    pub async fn invalidate(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|t| t.generation == generation) {
            *slot = None;
        }
    }
}

/// What the token endpoint granted.
pub(crate) struct Grant {
    pub raw: String,
    pub bearer: HeaderValue,
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    /// Seconds; a number from Entra ID, a numeric string from some older endpoints.
    #[serde(default)]
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Option<Vec<u64>>,
}

/// Requests a token. Failures are reports for the whole attempt:
/// - 400 / 401 / 403 / 404 and any other 4xx, 3xx, or a 2xx without a usable token: the
///   credentials or the authority are wrong, and no retry will fix them: `Misconfigured` (never
///   `Reject`: the batch is not at fault), with the OAuth error code and Entra's `AADSTS…`
///   description;
/// - 408, 429, 5xx, network failures: `Retry`, honouring `Retry-After`;
/// - the SSRF guard's refusal: `Misconfigured`.
///
/// Every error text is scrubbed of `client_secret`, whatever the endpoint echoes.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    request: WireRequest,
    client_secret: &str,
) -> Result<Grant, AttemptReport> {
    let target = http::url_target(&request.url);
    let response = client
        .post(request.url.clone())
        .headers(request.headers)
        .body(request.body)
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        Err(err) => return Err(transport_failure(&err, &target)),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let (body, _) = http::read_prefix(&mut response, MAX_TOKEN_RESPONSE).await;
    // Scrubbed before anything is cut short, so no fragment of the secret survives truncation.
    let scrubbed = scrub(&String::from_utf8_lossy(&body), client_secret);
    let fail = |outcome: Outcome, what: String| AttemptReport {
        outcome,
        status: Some(status),
        error: Some(scrub(&format!("token endpoint {target} {what}"), client_secret)),
    };
    match status {
        200..=299 => {
            parse_grant(&body).map_err(|why| fail(Outcome::Misconfigured, format!("answered HTTP {status} {why}")))
        }
        408 | 429 | 500..=599 => Err(fail(
            Outcome::Retry {
                after: http::retry_after(&headers),
            },
            format!("answered HTTP {status}{}", detail(scrubbed.as_bytes())),
        )),
        _ => Err(fail(
            Outcome::Misconfigured,
            format!("answered HTTP {status}{}", detail(scrubbed.as_bytes())),
        )),
    }
}

fn parse_grant(body: &[u8]) -> Result<Grant, String> {
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|_| "without a JSON token response".to_owned())?;
    if let Some(kind) = &parsed.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("with a `{kind}` token, not a bearer token"));
        }
    }
    let raw = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "without an `access_token`".to_owned())?;
    let mut bearer = HeaderValue::from_str(&format!("Bearer {raw}"))
        .map_err(|_| "with an access token that is not a valid header value".to_owned())?;
    bearer.set_sensitive(true);
    let lifetime = granted_lifetime(parsed.expires_in.as_ref());
    Ok(Grant { raw, bearer, lifetime })
}

/// `: invalid_client: AADSTS7000215: Invalid client secret provided. …` from an OAuth error
/// body (first line of the description: Entra appends trace and correlation ids on the next
/// lines), or the start of any other body.
fn detail(body: &[u8]) -> String {
    if let Ok(err) = serde_json::from_slice::<OAuthError>(body) {
        if err.error.is_some() || err.error_description.is_some() {
            let mut out = String::new();
            if let Some(code) = &err.error {
                out.push_str(": ");
                out.push_str(code);
            }
            let description = err
                .error_description
                .as_deref()
                .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("");
            if !description.is_empty() {
                out.push_str(": ");
                out.push_str(&truncate(description, MAX_DESCRIPTION_CHARS));
            }
            if !description.contains("AADSTS") {
                if let Some(code) = err.error_codes.as_ref().and_then(|c| c.first()) {
                    out.push_str(&format!(" (AADSTS{code})"));
                }
            }
            return one_line(&out);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", one_line(&truncate(text, MAX_DESCRIPTION_CHARS)))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// Control characters become spaces: an endpoint's answer cannot forge log lines.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Replaces every occurrence of `secret` (raw and form-encoded, as an endpoint might echo the
/// request) with `<redacted>`.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let mut out = text.replace(secret, "<redacted>");
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    if encoded != secret {
        out = out.replace(&encoded, "<redacted>");
    }
    out
}

/// A token request that got no answer: retried, except the SSRF guard's refusal. The text names
/// `host:port` and the innermost cause (never the URL's path, never the form body).
fn transport_failure(err: &reqwest::Error, target: &str) -> AttemptReport {
    let mut refused = None;
    let mut innermost = None;
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<PrivateAddressRefused>() {
            refused = Some(r.to_string());
        }
        innermost = Some(e.to_string());
        source = e.source();
    }
    if let Some(message) = refused {
        return AttemptReport {
            outcome: Outcome::Misconfigured,
            status: None,
            error: Some(format!("token endpoint {target}: {message}")),
        };
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    let cause = innermost.map(|c| format!(": {}", one_line(&c))).unwrap_or_default();
    AttemptReport {
        outcome: Outcome::Retry { after: None },
        status: None,
        error: Some(format!("token request to {target} {what}{cause}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_schedule() {
        let t0: Timestamp = "2026-06-01T10:00:00Z".parse().unwrap();
        let at = |secs: u64| refresh_at(t0, Duration::from_secs(secs));
        // An hour-long token: five minutes early.
        assert_eq!(at(3600), "2026-06-01T10:55:00Z".parse().unwrap());
        assert_eq!(at(3599), "2026-06-01T10:54:59Z".parse().unwrap());
        // Short tokens: at half their life.
        assert_eq!(at(600), "2026-06-01T10:05:00Z".parse().unwrap());
        assert_eq!(at(60), "2026-06-01T10:00:30Z".parse().unwrap());
        assert_eq!(
            refresh_at(t0, Duration::from_millis(1000)),
            "2026-06-01T10:00:00.5Z".parse().unwrap()
        );
        // Already expired: use it for this attempt only.
        assert_eq!(at(0), t0);
    }

    #[test]
    fn grants() {
        let g =
            parse_grant(br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0"}"#)
                .unwrap();
        assert_eq!((g.raw.as_str(), g.lifetime), ("eyJ0", Duration::from_secs(3599)));
        assert_eq!(g.bearer, "Bearer eyJ0");
        assert!(g.bearer.is_sensitive());
        let g = parse_grant(br#"{"access_token":"t","expires_in":"120"}"#).unwrap();
        assert_eq!(g.lifetime, Duration::from_secs(120));
        let g = parse_grant(br#"{"access_token":"t"}"#).unwrap();
        assert_eq!(g.lifetime, DEFAULT_LIFETIME);
        let g = parse_grant(br#"{"access_token":"t","expires_in":-5}"#).unwrap();
        assert_eq!(g.lifetime, Duration::ZERO);
        for (bad, why) in [
            (&b"<html>"[..], "without a JSON token response"),
            (br#"{"expires_in":3599}"#, "without an `access_token`"),
            (br#"{"access_token":""}"#, "without an `access_token`"),
            (br#"{"access_token":"a\nb"}"#, "not a valid header value"),
            (br#"{"access_token":"t","token_type":"mac"}"#, "not a bearer token"),
        ] {
            let err = parse_grant(bad).err().unwrap();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn error_details() {
        let aad = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc\r\nCorrelation ID: def","error_codes":[7000215]}"#;
        assert_eq!(
            detail(aad),
            ": invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            detail(br#"{"error":"invalid_client","error_codes":[7000215]}"#),
            ": invalid_client (AADSTS7000215)"
        );
        assert_eq!(detail(b"busy\nnow"), ": busy now");
        assert_eq!(detail(b""), "");
        assert!(detail(&vec![b'x'; 5000]).chars().count() < 410);
    }

    #[test]
    fn scrub_hides_raw_and_encoded_secrets() {
        let secret = "a+b/c=d~e";
        let echoed = "bad client_secret=a%2Bb%2Fc%3Dd%7Ee or a+b/c=d~e";
        assert_eq!(scrub(echoed, secret), "bad client_secret=<redacted> or <redacted>");
        assert_eq!(scrub("x", ""), "x");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = Token {
            bearer: HeaderValue::from_static("Bearer s3cr3t"),
            raw: "s3cr3t".into(),
            refresh_at: Timestamp::UNIX_EPOCH,
            generation: 1,
        };
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
