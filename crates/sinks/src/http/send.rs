//! One HTTP attempt, turned into an [`AttemptReport`].

use std::error::Error as StdError;
use std::io;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, Url};

use super::classify::classify;
use super::ssrf::PrivateAddressRefused;
use crate::{AttemptReport, Outcome};

/// How much of a failed response's body goes into the error shown to operators.
pub const ERROR_SNIPPET_BYTES: usize = 4096;

/// How much of a successful response's body is read so its connection can be reused; a receiver
/// answering more than this to a webhook is odd, and its connection is simply not reused.
const DRAIN_LIMIT: usize = 64 * 1024;

/// How much of an unfollowed redirect's `Location` the error shows.
const MAX_LOCATION_CHARS: usize = 512;

/// Sends `request` once and classifies the result: the status with [`classify`], a transport
/// failure as `Retry` (or `Misconfigured` for the SSRF guard's refusal, which a retry cannot
/// change). Error strings name the failure and `host:port` only: never the path or query (which
/// may carry a token), never a request header.
pub async fn send(request: RequestBuilder) -> AttemptReport {
    match request.send().await {
        Ok(response) => report_response(response).await,
        Err(err) => transport_error(&err),
    }
}

/// Classifies a response already received (what [`send`] does after sending). For sinks that
/// read a successful answer's body themselves (Elastic `_bulk` item results) and hand every
/// other answer here.
pub async fn report_response(mut response: Response) -> AttemptReport {
    let status = response.status().as_u16();
    let outcome = classify(status, response.headers());
    if outcome == Outcome::Delivered {
        // Reading the body to its end returns the connection to the pool.
        let _ = read_prefix(&mut response, DRAIN_LIMIT).await;
        return AttemptReport::delivered(Some(status));
    }
    let headers = response.headers().clone();
    let (body, truncated) = read_prefix(&mut response, ERROR_SNIPPET_BYTES).await;
    status_report(status, &headers, &body, truncated)
}

/// The report for an answer whose status decides (a failure, unless 2xx): [`classify`] plus
/// `HTTP <status>[ (redirect to … not followed)]: <body snippet>`. `body` is a prefix of the
/// answer; `truncated` says there was more.
pub(super) fn status_report(status: u16, headers: &HeaderMap, body: &[u8], truncated: bool) -> AttemptReport {
    let outcome = classify(status, headers);
    if outcome == Outcome::Delivered {
        return AttemptReport::delivered(Some(status));
    }
    let location = (300..400)
        .contains(&status)
        .then(|| headers.get(reqwest::header::LOCATION))
        .flatten()
        .map(|v| {
            // Receiver-controlled and unbounded: keep the error short.
            let mut location = sanitize(&String::from_utf8_lossy(v.as_bytes()));
            if location.len() > MAX_LOCATION_CHARS {
                location = location.chars().take(MAX_LOCATION_CHARS).collect::<String>() + "…";
            }
            location
        });
    let snippet = snippet(body, truncated);
    let mut error = format!("HTTP {status}");
    if let Some(location) = location {
        error.push_str(&format!(" (redirect to {location} not followed)"));
    }
    if !snippet.is_empty() {
        error.push_str(": ");
        error.push_str(&snippet);
    }
    AttemptReport {
        outcome,
        status: Some(status),
        error: Some(error),
    }
}

/// A body prefix as one line for an error message, capped at [`ERROR_SNIPPET_BYTES`], with `…`
/// when there was more.
pub(super) fn snippet(body: &[u8], truncated: bool) -> String {
    let capped = &body[..body.len().min(ERROR_SNIPPET_BYTES)];
    let mut snippet = sanitize(&utf8_prefix(capped));
    if (truncated || body.len() > ERROR_SNIPPET_BYTES) && !snippet.is_empty() {
        snippet.push('…');
    }
    snippet
}

/// Up to `limit` bytes of the body, and whether there was more. A read error ends the prefix:
/// the status already says what matters.
pub(crate) async fn read_prefix(response: &mut Response, limit: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return (buf, true);
        }
        buf.extend_from_slice(&chunk);
    }
    (buf, false)
}

/// The bytes as text, dropping a multi-byte character cut in half by the size limit.
fn utf8_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// One line of text: control characters (newlines included) become spaces, so a receiver's
/// answer cannot forge extra lines in logs.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Classifies a failure to get a response (what [`send`] does on a transport error).
pub fn transport_error(err: &reqwest::Error) -> AttemptReport {
    if let Some(refused) = find_source::<PrivateAddressRefused>(err) {
        return AttemptReport {
            outcome: Outcome::Misconfigured,
            status: None,
            error: Some(refused.to_string()),
        };
    }
    let target = err.url().map(url_target).unwrap_or_else(|| "the receiver".to_owned());
    AttemptReport {
        outcome: Outcome::Retry { after: None },
        status: None,
        error: Some(describe(err, &target)),
    }
}

/// `host:port` of the URL, never its path or query.
pub(crate) fn url_target(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => "the receiver".to_owned(),
    }
}

/// A short, operator-readable cause. reqwest's own Display leads with the full URL (query
/// included) and buries the cause under wrappers, so the cause is found in the source chain.
fn describe(err: &reqwest::Error, target: &str) -> String {
    let io_kind = find_source::<io::Error>(err).map(io::Error::kind);
    let innermost = sources(err).last().map(ToString::to_string).unwrap_or_default();
    let summary = match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => format!("connection refused by {target}"),
        Some(io::ErrorKind::ConnectionReset) => format!("connection reset by {target}"),
        Some(io::ErrorKind::ConnectionAborted) => format!("connection aborted by {target}"),
        Some(io::ErrorKind::BrokenPipe) => format!("connection to {target} closed while sending"),
        Some(io::ErrorKind::HostUnreachable) => format!("host {target} unreachable"),
        Some(io::ErrorKind::NetworkUnreachable) => format!("network unreachable for {target}"),
        _ if err.is_timeout() && err.is_connect() => format!("timed out connecting to {target}"),
        _ if err.is_timeout() => format!("timed out waiting for {target}"),
        _ if sources(err).any(|e| e.to_string() == "dns error") => format!("DNS lookup for {target} failed"),
        _ if err.is_connect() => format!("could not connect to {target}"),
        // hyper's words for a peer that closed (or reset) the connection before answering.
        _ if innermost.contains("connection closed before message completed") => {
            format!("connection closed by {target} before a response")
        }
        _ => format!("request to {target} failed"),
    };
    if innermost.is_empty() {
        summary
    } else {
        format!("{summary}: {innermost}")
    }
}

fn sources<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(err.source(), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    sources(err).find_map(|e| e.downcast_ref::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_one_line() {
        assert_eq!(sanitize("  busy\r\nX-Forged: 1\t "), "busy  X-Forged: 1");
    }

    #[test]
    fn utf8_prefix_drops_a_cut_character() {
        let s = "é".repeat(3);
        assert_eq!(utf8_prefix(&s.as_bytes()[..5]), "éé");
        assert_eq!(utf8_prefix(b"ok"), "ok");
    }

    #[test]
    fn url_target_hides_path_and_query() {
        let url = Url::parse("https://hooks.example.com/in/abc?token=s3cret").unwrap();
        assert_eq!(url_target(&url), "hooks.example.com:443");
    }
}
