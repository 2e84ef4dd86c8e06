//! `auditrelay emit`: send events from a file or stdin to `POST /v1/events`.

use std::fmt;
use std::io::IsTerminal;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::conn::{http_client, transport_error, ApiError, ConnectionArgs, ConnectionError};
use crate::retry::{retry_after, Backoff};
use crate::split::{split_events, SplitError};

/// The most events the server takes in one request (its default limit).
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Request bodies are kept at or under this many bytes: 4.5 MiB, safely below the server's
/// default 5 MiB limit, with room for a proxy that counts a little differently.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024 + 512 * 1024;

/// One request may take this long: the server answers only once the events are durable, and a
/// 4.5 MiB batch on a slow disk can take a while.
const EMIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Send audit events to the server.
#[derive(clap::Args, Debug)]
pub struct EmitArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// File of events: a JSON array, one JSON object, or NDJSON (one object per line).
    /// `-` or omitted reads standard input.
    pub input: Option<PathBuf>,

    /// Events per request (at most 10000); a batch is split further to stay under 4.5 MiB.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,

    /// Print the final summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Do not print a progress line per request on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl EmitArgs {
    /// Runs the subcommand: reads the input, sends it, prints the summary on stdout.
    pub async fn run(self) -> anyhow::Result<()> {
        self.conn.validate()?;
        let opts = EmitOptions {
            batch_size: self.batch_size,
            progress: !self.quiet,
            ..EmitOptions::default()
        };
        opts.check()?;
        let client = http_client(EMIT_TIMEOUT).context("building the HTTP client")?;
        let summary = match self.input.as_deref() {
            None => read_stdin(&client, &self.conn, &opts).await?,
            Some(p) if p.as_os_str() == "-" => read_stdin(&client, &self.conn, &opts).await?,
            Some(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
                emit_reader(&client, &self.conn, file, &opts)
                    .await
                    .map_err(|e| match e {
                        // One self-contained line: `{}` and `{:#}` reports print the same.
                        EmitError::Parse(_) | EmitError::Read(_) => {
                            anyhow::anyhow!("{}: {e}", path.display())
                        }
                        other => other.into(),
                    })?
            }
        };
        if self.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!("{summary}");
        }
        Ok(())
    }
}

async fn read_stdin(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    opts: &EmitOptions,
) -> Result<EmitSummary, EmitError> {
    if std::io::stdin().is_terminal() {
        eprintln!("reading events from standard input (end with Ctrl-D)");
    }
    emit_reader(client, conn, tokio::io::stdin(), opts).await
}

/// How [`emit_events`] batches and retries.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// Events per request, 1..=[`MAX_BATCH_EVENTS`].
    pub batch_size: usize,
    /// A request body's byte budget (a single larger event still goes alone, for the server to
    /// judge).
    pub max_request_bytes: usize,
    /// Attempts per request, counting the first, for the failures that may be retried.
    pub max_attempts: u32,
    /// Delay between attempts, when the server gives no `Retry-After`.
    pub backoff: Backoff,
    /// Print a progress line per request, and retry notices, on stderr.
    pub progress: bool,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            batch_size: 1000,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_attempts: 5,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(10),
            },
            progress: true,
        }
    }
}

impl EmitOptions {
    fn check(&self) -> Result<(), EmitError> {
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_EVENTS {
            return Err(EmitError::BatchSize(self.batch_size));
        }
        Ok(())
    }
}

/// What the server said about one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AcceptedEvent {
    pub id: String,
    pub offset: u64,
    /// The event repeated a client id already stored: it was not stored again, and `offset` is
    /// the original's.
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Debug, Deserialize)]
struct AcceptedBody {
    #[serde(default)]
    accepted: Option<usize>,
    #[serde(default)]
    events: Vec<AcceptedEvent>,
}

/// The outcome of an emit, so far or in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmitSummary {
    /// Events the server accepted (stored, or recognised as duplicates of stored ones).
    pub accepted: usize,
    /// Of those, the ones whose client id had been stored before.
    pub duplicates: usize,
    /// Requests that succeeded.
    pub requests: usize,
    /// The lowest and highest offsets the server reported.
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
}

impl EmitSummary {
    fn add(&mut self, report: &BatchReport) {
        self.accepted += report.accepted;
        self.duplicates += report.duplicates;
        self.requests += 1;
        self.first_offset = min_opt(self.first_offset, report.first_offset);
        self.last_offset = max_opt(self.last_offset, report.last_offset);
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl fmt::Display for EmitSummary {
    /// `emitted 1234 events (2 duplicates), offsets 1..1234`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, one: &'static str, many: &'static str| {
            if n == 1 {
                one
            } else {
                many
            }
        };
        write!(
            f,
            "emitted {} {} ({} {})",
            self.accepted,
            plural(self.accepted, "event", "events"),
            self.duplicates,
            plural(self.duplicates, "duplicate", "duplicates"),
        )?;
        if let (Some(first), Some(last)) = (self.first_offset, self.last_offset) {
            write!(f, ", offsets {first}..{last}")?;
        }
        Ok(())
    }
}

/// One request's outcome, as given to the progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// 1-based number of this request, and how many there are.
    pub batch: usize,
    pub batches: usize,
    /// Which input events it carried (0-based indexes).
    pub events: Range<usize>,
    pub accepted: usize,
    pub duplicates: usize,
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    /// The events themselves, as the server reported them.
    pub results: Vec<AcceptedEvent>,
}

/// Why one request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// The server answered with an error status.
    #[error("{0}")]
    Api(ApiError),
    /// No usable answer: connection refused, timeout, reset.
    #[error("{0}")]
    Transport(String),
}

/// Why an emit stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    // Read and Parse carry their cause in the message and deliberately not as `source`, so
    // that an anyhow report does not print it twice.
    #[error("reading the input: {0}")]
    Read(std::io::Error),
    #[error("the input is not valid event JSON, nothing was sent: {0}")]
    Parse(SplitError),
    #[error("--batch-size must be between 1 and {MAX_BATCH_EVENTS}, not {0}")]
    BatchSize(usize),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A request failed; `summary` is what had been accepted before it.
    #[error(
        "request {batch}/{batches} (input events {}..{}) failed: {cause}{}; {} accepted before the failure{}",
        events.start + 1,
        events.end,
        input_index_hint(cause, events.start),
        match summary.accepted { 1 => "1 event was".to_string(), n => format!("{n} events were") },
        match (summary.first_offset, summary.last_offset) {
            (Some(a), Some(b)) => format!(" (offsets {a}..{b})"),
            _ => String::new(),
        }
    )]
    Failed {
        batch: usize,
        batches: usize,
        /// The failed request's input events (0-based indexes).
        events: Range<usize>,
        summary: EmitSummary,
        /// Boxed: it is large, and the error type is returned on every path.
        cause: Box<RequestFailure>,
    },
}

impl From<std::io::Error> for EmitError {
    fn from(e: std::io::Error) -> Self {
        EmitError::Read(e)
    }
}

impl From<SplitError> for EmitError {
    fn from(e: SplitError) -> Self {
        EmitError::Parse(e)
    }
}

/// The server names a bad event by its index in the request; users think in input positions.
fn input_index_hint(cause: &RequestFailure, batch_start: usize) -> String {
    match cause {
        RequestFailure::Api(api) => api
            .detail
            .as_ref()
            .and_then(|d| d.get("index"))
            .and_then(|i| i.as_u64())
            .and_then(|i| usize::try_from(i).ok())
            .map(|i| format!(" [that is input event #{}]", batch_start + i + 1))
            .unwrap_or_default(),
        RequestFailure::Transport(_) => String::new(),
    }
}

/// Reads all of `reader`, splits it with [`split_events`] (failing before anything is sent if it
/// does not parse) and sends it with [`emit_events`].
pub async fn emit_reader<R: AsyncRead + Unpin>(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    mut reader: R,
    opts: &EmitOptions,
) -> Result<EmitSummary, EmitError> {
    opts.check()?;
    conn.validate()?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await?;
    let text = String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not valid UTF-8 (first bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let events = split_events(&text)?;
    drop(text);
    emit_events(client, conn, &events, opts).await
}

/// Splits `events` into request-sized ranges: at most `max_events` each, and at most
/// `max_bytes` of NDJSON body (each event plus its newline), except that an event larger than
/// `max_bytes` on its own still gets a request of its own (the server decides; it will most
/// likely answer 413, which is then reported with that event's position).
pub fn plan_batches(events: &[String], max_events: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let max_events = max_events.max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let size = event.len() + 1;
        let count = i - start;
        if count > 0 && (count >= max_events || bytes + size > max_bytes) {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        batches.push(start..events.len());
    }
    batches
}

/// Sends `events` (compact JSON objects, as [`split_events`] gives) in batches, in order,
/// stopping at the first request that fails for good.
pub async fn emit_events(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    events: &[String],
    opts: &EmitOptions,
) -> Result<EmitSummary, EmitError> {
    opts.check()?;
    let token = conn.bearer()?;
    let url = conn.endpoint("/v1/events")?;
    let batches = plan_batches(events, opts.batch_size, opts.max_request_bytes);
    let mut summary = EmitSummary::default();
    for (n, range) in batches.iter().enumerate() {
        let chunk = &events[range.clone()];
        let mut body = String::with_capacity(chunk.iter().map(|e| e.len() + 1).sum());
        for e in chunk {
            body.push_str(e);
            body.push('\n');
        }
        let label = format!("request {}/{}", n + 1, batches.len());
        let answer = send_batch(client, &url, token, Bytes::from(body), chunk, opts, &label)
            .await
            .map_err(|cause| EmitError::Failed {
                batch: n + 1,
                batches: batches.len(),
                events: range.clone(),
                summary: summary.clone(),
                cause: Box::new(cause),
            })?;
        let report = BatchReport {
            batch: n + 1,
            batches: batches.len(),
            events: range.clone(),
            accepted: answer.accepted.unwrap_or(answer.events.len()),
            duplicates: answer.events.iter().filter(|e| e.duplicate).count(),
            first_offset: answer.events.iter().map(|e| e.offset).min(),
            last_offset: answer.events.iter().map(|e| e.offset).max(),
            results: answer.events,
        };
        summary.add(&report);
        if opts.progress {
            let offsets = match (report.first_offset, report.last_offset) {
                (Some(a), Some(b)) => format!(", offsets {a}..{b}"),
                _ => String::new(),
            };
            eprintln!(
                "{label}: {} accepted ({} duplicates{offsets}); {}/{} events sent",
                report.accepted,
                report.duplicates,
                range.end,
                events.len()
            );
        }
    }
    Ok(summary)
}

/// Does this event carry its own `id`? Then sending it twice stores it once.
fn has_client_id(event: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    serde_json::from_str::<Probe>(event)
        .ok()
        .and_then(|p| p.id)
        .is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty()))
}

/// One request, with retries.
///
/// When to retry is about not duplicating events. The server deduplicates events that carry a
/// client `id`, but an event without one is stored again each time it is sent. So a request is
/// retried only when it certainly was not stored:
/// * 429 and 503: the server sends these before storing anything (rate limited, not ready,
///   draining); `Retry-After` is honoured.
/// * a connection that could not be established: nothing reached the server.
///
/// Failures where the request may or may not have been stored (a timeout or a connection reset
/// after sending, a 500/502/504) are retried only when every event in the batch has a client
/// id, since a repeat is then harmless; otherwise they are reported, and the user decides. Other
/// 4xx answers are never retried: the same request would get the same answer.
async fn send_batch(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    body: Bytes,
    chunk: &[String],
    opts: &EmitOptions,
    label: &str,
) -> Result<AcceptedBody, RequestFailure> {
    let mut idempotent: Option<bool> = None;
    let mut is_idempotent = || *idempotent.get_or_insert_with(|| chunk.iter().all(|e| has_client_id(e)));
    let max_attempts = opts.max_attempts.max(1);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = client
            .post(url.clone())
            .bearer_auth(token)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body.clone())
            .send()
            .await;
        let (failure, wait_hint) = match sent {
            Ok(resp) if resp.status().is_success() => {
                let status = resp.status();
                let bytes = match resp.bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        // The server said the events are stored; only the answer was lost.
                        // Retrying would duplicate id-less events, so report what we know.
                        if opts.progress {
                            eprintln!(
                                "{label}: HTTP {status} but the answer could not be read ({}); counting the {} events as accepted",
                                transport_error(e),
                                chunk.len()
                            );
                        }
                        return Ok(AcceptedBody {
                            accepted: Some(chunk.len()),
                            events: Vec::new(),
                        });
                    }
                };
                return Ok(match serde_json::from_slice::<AcceptedBody>(&bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        if opts.progress {
                            eprintln!(
                                "{label}: HTTP {status} with an unexpected answer ({e}); counting the {} events as accepted",
                                chunk.len()
                            );
                        }
                        AcceptedBody {
                            accepted: Some(chunk.len()),
                            events: Vec::new(),
                        }
                    }
                });
            }
            Ok(resp) => {
                let status = resp.status();
                let hint = retry_after(resp.headers());
                let api = ApiError::from_response(resp).await;
                let retryable = match status {
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => true,
                    s if s.is_server_error() => is_idempotent(),
                    _ => false,
                };
                if !retryable {
                    return Err(RequestFailure::Api(api));
                }
                (RequestFailure::Api(api), hint)
            }
            Err(e) => {
                let retryable = e.is_connect() || (!e.is_builder() && is_idempotent());
                let text = transport_error(e);
                if !retryable {
                    return Err(RequestFailure::Transport(text));
                }
                (RequestFailure::Transport(text), None)
            }
        };
        if attempt >= max_attempts {
            return Err(failure);
        }
        let delay = wait_hint.unwrap_or_else(|| opts.backoff.delay(attempt - 1));
        if opts.progress {
            eprintln!(
                "{label}: {failure}; retrying in {:.1} s (attempt {}/{max_attempts})",
                delay.as_secs_f64(),
                attempt + 1
            );
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(sizes: &[usize]) -> Vec<String> {
        sizes.iter().map(|n| "x".repeat(*n)).collect()
    }

    #[test]
    fn batches_by_count() {
        let ev = events(&[1; 7]);
        assert_eq!(plan_batches(&ev, 3, 1000), vec![0..3, 3..6, 6..7]);
        assert_eq!(plan_batches(&ev, 7, 1000), vec![0..7]);
        assert!(plan_batches(&[], 3, 1000).is_empty());
    }

    #[test]
    fn batches_by_bytes() {
        // Each costs len + 1 (newline): 4 + 4 + 4 = 12 > 10.
        let ev = events(&[3, 3, 3, 20, 1]);
        assert_eq!(plan_batches(&ev, 100, 10), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(plan_batches(&ev, 100, 12), vec![0..3, 3..4, 4..5]);
    }

    #[test]
    fn client_id_probe() {
        assert!(has_client_id(r#"{"id":"a","type":"x.y"}"#));
        assert!(!has_client_id(r#"{"type":"x.y"}"#));
        assert!(!has_client_id(r#"{"id":"","type":"x.y"}"#));
        assert!(!has_client_id(r#"{"id":null}"#));
        assert!(!has_client_id(r#"{"actor":{"id":"u"}}"#));
    }

    #[test]
    fn summary_line() {
        let s = EmitSummary {
            accepted: 1234,
            duplicates: 2,
            requests: 2,
            first_offset: Some(1),
            last_offset: Some(1234),
        };
        assert_eq!(s.to_string(), "emitted 1234 events (2 duplicates), offsets 1..1234");
        assert_eq!(EmitSummary::default().to_string(), "emitted 0 events (0 duplicates)");
    }

    #[test]
    fn failure_message_counts_what_was_accepted() {
        let err = EmitError::Failed {
            batch: 2,
            batches: 3,
            events: 1000..2000,
            summary: EmitSummary {
                accepted: 1000,
                duplicates: 0,
                requests: 1,
                first_offset: Some(1),
                last_offset: Some(1000),
            },
            cause: Box::new(RequestFailure::Api(ApiError {
                status: 400,
                code: "invalid_event".into(),
                message: "bad type".into(),
                detail: Some(serde_json::json!({"index": 5, "field": "type"})),
            })),
        };
        assert_eq!(
            err.to_string(),
            "request 2/3 (input events 1001..2000) failed: HTTP 400 invalid_event: bad type \
             (detail: {\"index\":5,\"field\":\"type\"}) [that is input event #1006]; \
             1000 events were accepted before the failure (offsets 1..1000)"
        );
    }
}
