//! Append → long-poll wakeup latency.
//!
//! A reader parks `GET /v1/events?after=<head>&wait=30` (nothing is there,
//! so it hangs); ~20 ms later a writer appends one event. The latency is
//! from just before the POST is sent to when the long-poll response has
//! been fully received. Iterations run one after another; each next `after`
//! is the previous answer's `next_cursor`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use serde::Deserialize;

use crate::events::write_legacy_event;
use crate::http::{Auth, Conn, Resp, Target};
use crate::stats::{Samples, Summary};

#[derive(Debug, Clone)]
pub struct WakeupConfig {
    pub iterations: usize,
    /// Pause between issuing the long-poll and sending the event.
    pub delay: Duration,
    /// The `wait` parameter of the long-poll, seconds.
    pub wait_secs: u64,
}

#[derive(Debug, Clone)]
pub struct WakeupResult {
    pub iterations: usize,
    /// POST sent → long-poll answer fully received.
    pub wakeup: Summary,
    /// POST sent → its 202 received (the durable append, for comparison).
    pub append: Summary,
    /// Long-polls that answered before the event was sent (not measured).
    pub early_returns: u64,
    /// Events this scenario appended (the initial head event included).
    pub appended: u64,
    /// Answers with the wrong status, shape, events or cursor, and
    /// transport failures.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl WakeupResult {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "iterations": self.iterations,
            "measured": self.wakeup.count,
            "wakeup_latency": self.wakeup.to_json_ms(),
            "append_latency": self.append.to_json_ms(),
            "early_returns": self.early_returns,
            "errors": self.errors,
            "first_error": self.first_error,
        })
    }
}

#[derive(Deserialize)]
struct AppendAnswer {
    accepted: u64,
    events: Vec<AppendedRef>,
}

#[derive(Deserialize)]
struct AppendedRef {
    offset: u64,
}

#[derive(Deserialize)]
struct PollAnswer {
    events: Vec<PolledEvent>,
    next_cursor: u64,
}

#[derive(Deserialize)]
struct PolledEvent {
    offset: u64,
}

fn event_body(n: u64) -> bytes::Bytes {
    let mut s = String::with_capacity(256);
    write_legacy_event(&mut s, "bench.wakeup", n);
    bytes::Bytes::from(s)
}

/// POST one event; its offset.
async fn append(conn: &mut Conn, auth: &Auth, n: u64) -> Result<u64> {
    let resp = conn.post_json("/v1/events", auth, event_body(n)).await?;
    append_offset(&resp)
}

fn append_offset(resp: &Resp) -> Result<u64> {
    if resp.status != StatusCode::ACCEPTED {
        bail!("POST /v1/events answered {}: {}", resp.status, resp.body_snippet());
    }
    let a: AppendAnswer = resp.json()?;
    match (a.accepted, a.events.as_slice()) {
        (1, [one]) => Ok(one.offset),
        _ => bail!("unexpected 202 body: {}", resp.body_snippet()),
    }
}

fn poll_answer(resp: &Resp) -> Result<PollAnswer> {
    if resp.status != StatusCode::OK {
        bail!("GET /v1/events answered {}: {}", resp.status, resp.body_snippet());
    }
    resp.json()
}

pub async fn run(target: Arc<Target>, auth: Auth, cfg: WakeupConfig) -> Result<WakeupResult> {
    let mut writer = Conn::connect(target.clone()).await?;
    let mut reader = Some(Conn::connect(target.clone()).await?);
    // The head of the log: append one event and start after it.
    let mut head = append(&mut writer, &auth, 0).await.context("wakeup: initial append")?;

    let mut wakeup = Samples::with_capacity(cfg.iterations);
    let mut append_lat = Samples::with_capacity(cfg.iterations);
    let mut early_returns = 0;
    let mut appended_count = 1;
    let mut errors = 0;
    let mut first_error: Option<String> = None;
    let mut note = |errors: &mut u64, msg: String| {
        *errors += 1;
        if first_error.is_none() {
            first_error = Some(msg);
        }
    };

    for i in 0..cfg.iterations {
        let mut rconn = match reader.take() {
            Some(c) if !c.is_closed() => c,
            _ => Conn::connect(target.clone()).await?,
        };
        if writer.is_closed() {
            writer = Conn::connect(target.clone()).await?;
        }
        let path = format!("/v1/events?after={head}&wait={}", cfg.wait_secs);
        let poll_auth = auth.clone();
        let poll = tokio::spawn(async move {
            let r = rconn.get(&path, Some(&poll_auth)).await;
            let done = Instant::now();
            (rconn, r, done)
        });
        tokio::time::sleep(cfg.delay).await;

        if poll.is_finished() {
            // The long-poll did not wait (or failed); note it, move the
            // cursor on, and do not measure this round.
            let (rconn, r, _) = poll.await.context("long-poll task panicked")?;
            reader = Some(rconn);
            early_returns += 1;
            match r.and_then(|r| poll_answer(&r)) {
                Ok(a) => head = a.next_cursor.max(head),
                Err(e) => note(&mut errors, format!("iteration {i}: early long-poll: {e:#}")),
            }
            continue;
        }

        let sent = Instant::now();
        let appended = writer.post_json("/v1/events", &auth, event_body(i as u64 + 1));
        let appended = appended.await;
        let append_done = Instant::now();
        let (rconn, r, done) = poll.await.context("long-poll task panicked")?;
        reader = Some(rconn);

        let offset = match appended.and_then(|r| append_offset(&r)) {
            Ok(o) => o,
            Err(e) => {
                note(&mut errors, format!("iteration {i}: append: {e:#}"));
                // Resynchronise the cursor on whatever the poll saw.
                if let Ok(a) = r.and_then(|r| poll_answer(&r)) {
                    head = a.next_cursor.max(head);
                }
                continue;
            }
        };
        append_lat.record(append_done - sent);
        appended_count += 1;

        match r.and_then(|r| poll_answer(&r)) {
            Ok(a) => {
                let offsets: Vec<u64> = a.events.iter().map(|e| e.offset).collect();
                if offsets != [offset] || a.next_cursor != offset {
                    note(
                        &mut errors,
                        format!(
                            "iteration {i}: appended offset {offset} after {head}, long-poll returned offsets {offsets:?} next_cursor {}",
                            a.next_cursor
                        ),
                    );
                }
                if !offsets.is_empty() && done > sent {
                    wakeup.record(done - sent);
                }
                head = a.next_cursor.max(head);
            }
            Err(e) => {
                note(&mut errors, format!("iteration {i}: long-poll: {e:#}"));
                head = offset.max(head);
            }
        }
    }

    Ok(WakeupResult {
        iterations: cfg.iterations,
        wakeup: wakeup.summary(),
        append: append_lat.summary(),
        early_returns,
        appended: appended_count,
        errors,
        first_error,
    })
}
