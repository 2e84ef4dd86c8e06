//! `auditrelay tail`: follow a tenant's log with the long-poll `GET /v1/events`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::conn::{http_client, transport_error, ApiError, ConnectionArgs, ConnectionError};
use crate::cursor::{read_cursor_file, write_cursor_file, CursorFileError};
use crate::retry::{retry_after, Backoff};
use crate::split::minify_json;

/// A long-poll may take `wait` seconds by design; this much more covers a slow answer.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

/// Print events as they are appended, one JSON object per line.
#[derive(clap::Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Start after this offset [default: 0, from the beginning]. Given explicitly, it wins over
    /// the offset in --cursor-file.
    #[arg(long, value_name = "OFFSET")]
    pub after: Option<u64>,

    /// Resumable tailing: start after the offset stored in this file if it exists, and store
    /// the position reached after every batch (atomically, via a temporary file and rename).
    #[arg(long, value_name = "PATH")]
    pub cursor_file: Option<PathBuf>,

    /// Only events whose type matches one of these globs, e.g. `decision.*,auth.login`.
    #[arg(long, value_name = "GLOB,...", value_delimiter = ',')]
    pub types: Vec<String>,

    /// Seconds the server may hold a poll open waiting for new events (at most 60).
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub wait: u64,

    /// Events per poll.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,

    /// Print what is there and exit, instead of waiting for new events.
    #[arg(long)]
    pub no_follow: bool,

    /// Pretty-print each event (several lines per event).
    #[arg(long)]
    pub pretty: bool,
}

impl TailArgs {
    /// Runs the subcommand until Ctrl-C (or SIGTERM), or, with `--no-follow`, until the log is
    /// drained. Either way the batch being printed is finished and its cursor stored first.
    pub async fn run(self) -> anyhow::Result<()> {
        self.conn.validate()?;
        let mut start = self.after.unwrap_or(0);
        if let (None, Some(path)) = (self.after, &self.cursor_file) {
            if let Some(stored) = read_cursor_file(path)? {
                eprintln!("resuming after offset {stored} (from {})", path.display());
                start = stored;
            }
        }
        let opts = TailOptions {
            after: start,
            cursor_file: self.cursor_file,
            types: self.types,
            wait: if self.no_follow { 0 } else { self.wait },
            limit: self.limit,
            follow: !self.no_follow,
            pretty: self.pretty,
            ..TailOptions::default()
        };
        let client =
            http_client(Duration::from_secs(opts.wait) + TIMEOUT_MARGIN).context("building the HTTP client")?;

        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
        let result = tail_to(&client, &self.conn, &opts, &mut io::stdout(), &shutdown).await;
        signals.abort();
        result?;
        Ok(())
    }
}

/// Cancels `token` on Ctrl-C, and on SIGTERM where there is one (a service manager stopping
/// `tail` deserves the same clean stop). If the handlers cannot be installed, the default
/// behaviour (immediate exit) stays, which loses at most the batch being printed.
async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => { if r.is_err() { return; } }
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    token.cancel();
}

/// How [`tail_to`] polls.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Start after this offset (0 = from the beginning).
    pub after: u64,
    /// Store the position reached here after every batch.
    pub cursor_file: Option<PathBuf>,
    /// Type globs (empty = all types).
    pub types: Vec<String>,
    /// Long-poll seconds.
    pub wait: u64,
    /// Events per poll.
    pub limit: u32,
    /// Keep polling when caught up (`false`: stop at the first poll that brings nothing new).
    pub follow: bool,
    /// Pretty-print events instead of one line each.
    pub pretty: bool,
    /// Delay between attempts after a failed poll.
    pub backoff: Backoff,
    /// Without `follow`, give up after this many consecutive failed polls (a follower retries
    /// forever, since it must outlive a server restart; a one-shot dump should not hang).
    pub max_attempts_no_follow: u32,
    /// Print retry notices on stderr.
    pub verbose: bool,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            after: 0,
            cursor_file: None,
            types: Vec::new(),
            wait: 30,
            limit: 100,
            follow: true,
            pretty: false,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(10),
            },
            max_attempts_no_follow: 5,
            verbose: true,
        }
    }
}

/// Where a tail stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSummary {
    /// Events written to the output.
    pub printed: u64,
    /// The position reached: the next poll would ask for events after this offset.
    pub cursor: u64,
}

/// Why a tail stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// An answer that retrying cannot fix: bad token (401), missing scope (403), unknown tenant
    /// (404), bad parameters (400).
    #[error("the server refused the poll: {0}")]
    Api(ApiError),
    #[error("the server could not be reached after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("the server answered something that is not an events page: {0}")]
    BadResponse(String),
    #[error(transparent)]
    Cursor(#[from] CursorFileError),
    #[error("writing the output: {0}")]
    Output(io::Error),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

#[derive(Deserialize)]
struct Page {
    events: Vec<Box<RawValue>>,
    #[serde(default)]
    next_cursor: Option<u64>,
}

#[derive(Deserialize)]
struct OffsetProbe {
    #[serde(default)]
    offset: Option<u64>,
}

enum PollFailure {
    /// Worth retrying: the network, a 5xx, a 429/408.
    Transient(String, Option<Duration>),
    Fatal(TailError),
}

/// Polls from `opts.after`, writing each new event to `out` as one line of JSON (or
/// pretty-printed), flushing after every batch and then storing the position in
/// `opts.cursor_file`.
///
/// Transient failures (network, 5xx, 429) are logged and retried with backoff, forever when
/// following, so that a server restart is survived; since polling resumes from the last cursor
/// there is no gap and no repeat. Events at or below the cursor are skipped should a server ever
/// send them, and with no type filter a jump in offsets is reported on stderr (offsets have no
/// gaps, so a jump means lost events).
///
/// `shutdown` stops the loop between batches, or aborts an in-flight poll (nothing of which was
/// printed), and the function returns `Ok`. A closed output (`tail | head`) also ends it with
/// `Ok`, without storing the batch that could not be written.
pub async fn tail_to<W: Write>(
    client: &reqwest::Client,
    conn: &ConnectionArgs,
    opts: &TailOptions,
    out: &mut W,
    shutdown: &CancellationToken,
) -> Result<TailSummary, TailError> {
    let token = conn.bearer()?;
    let base = conn.endpoint("/v1/events")?;
    let types = opts
        .types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let mut summary = TailSummary {
        printed: 0,
        cursor: opts.after,
    };
    let mut failures = 0u32;
    let mut buf = Vec::new();
    loop {
        if shutdown.is_cancelled() {
            return Ok(summary);
        }
        let mut url = base.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("after", &summary.cursor.to_string());
            q.append_pair("limit", &opts.limit.to_string());
            q.append_pair("wait", &opts.wait.to_string());
            if !types.is_empty() {
                q.append_pair("types", &types);
            }
        }
        let polled = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(summary),
            r = poll(client, url, token) => r,
        };
        let page = match polled {
            Ok(page) => page,
            Err(PollFailure::Fatal(e)) => return Err(e),
            Err(PollFailure::Transient(reason, hint)) => {
                failures += 1;
                if !opts.follow && failures >= opts.max_attempts_no_follow.max(1) {
                    return Err(TailError::GaveUp {
                        attempts: failures,
                        last: reason,
                    });
                }
                let delay = hint.unwrap_or_else(|| opts.backoff.delay(failures - 1));
                if opts.verbose {
                    eprintln!(
                        "poll after offset {} failed: {reason}; retrying in {:.1} s",
                        summary.cursor,
                        delay.as_secs_f64()
                    );
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(summary),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        if failures > 0 && opts.verbose {
            eprintln!("polling again after {failures} failed attempts");
        }
        failures = 0;

        // Render the whole batch first, then write it in one go.
        buf.clear();
        let mut new_cursor = summary.cursor;
        let mut printed = 0u64;
        for event in &page.events {
            let offset = serde_json::from_str::<OffsetProbe>(event.get())
                .ok()
                .and_then(|p| p.offset);
            if let Some(offset) = offset {
                if offset <= new_cursor {
                    continue; // already printed: the cursor only moves forward
                }
                if types.is_empty() && offset != new_cursor + 1 && opts.verbose {
                    eprintln!(
                        "warning: offsets jump from {new_cursor} to {offset}: {} events missing",
                        offset - new_cursor - 1
                    );
                }
                new_cursor = offset;
            }
            render(&mut buf, event, opts.pretty);
            printed += 1;
        }
        let advanced_to = page.next_cursor.map_or(new_cursor, |n| n.max(new_cursor));
        if !page.events.is_empty() && advanced_to == summary.cursor {
            // Events came, but neither they nor next_cursor move past the cursor: the next poll
            // would return them again, forever.
            return Err(TailError::BadResponse(format!(
                "events came back but the cursor does not move past {} (no new offsets, no next_cursor)",
                summary.cursor
            )));
        }

        if !buf.is_empty() {
            let written = out.write_all(&buf).and_then(|()| out.flush());
            match written {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(summary),
                Err(e) => return Err(TailError::Output(e)),
            }
        }
        summary.printed += printed;
        let moved = advanced_to != summary.cursor;
        summary.cursor = advanced_to;
        if moved {
            if let Some(path) = &opts.cursor_file {
                write_cursor_file(path, summary.cursor)?;
            }
        }
        // Without follow, stop once a poll brings nothing and does not move the cursor (with a
        // type filter, a page may be empty but skip past non-matching events: keep going then).
        if !opts.follow && page.events.is_empty() && !moved {
            return Ok(summary);
        }
    }
}

fn render(buf: &mut Vec<u8>, event: &RawValue, pretty: bool) {
    if pretty {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(event.get()) {
            if let Ok(text) = serde_json::to_string_pretty(&value) {
                buf.extend_from_slice(text.as_bytes());
                buf.push(b'\n');
                return;
            }
        }
    }
    buf.extend_from_slice(minify_json(event.get()).as_bytes());
    buf.push(b'\n');
}

async fn poll(client: &reqwest::Client, url: reqwest::Url, token: &str) -> Result<Page, PollFailure> {
    let resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| PollFailure::Transient(transport_error(e), None))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = retry_after(resp.headers());
        let api = ApiError::from_response(resp).await;
        return Err(
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
            {
                PollFailure::Transient(api.to_string(), hint)
            } else {
                PollFailure::Fatal(TailError::Api(api))
            },
        );
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| PollFailure::Transient(transport_error(e), None))?;
    serde_json::from_slice::<Page>(&body).map_err(|e| PollFailure::Fatal(TailError::BadResponse(e.to_string())))
}
