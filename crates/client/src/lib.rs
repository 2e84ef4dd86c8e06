//! The client side of auditrelay: the `emit` and `tail` subcommands that the `auditrelay`
//! binary embeds, plus the pieces they are made of as plain library functions, so that tests
//! (and other tools) can use them without starting a process.
//!
//! * [`EmitArgs`] / [`emit_reader`] / [`emit_events`]: read events (a JSON array, one JSON
//!   object, or NDJSON), split them with [`split_events`] and `POST /v1/events` them in batches.
//! * [`TailArgs`] / [`tail_to`]: long-poll `GET /v1/events` from a cursor and print each event as
//!   one line of JSON, optionally persisting the cursor ([`read_cursor_file`],
//!   [`write_cursor_file`]) so that a restart resumes with no gap and no repeat.
//!
//! Only the public HTTP contract (`shared/api.md`) is used: this crate does not depend on the
//! server's crates, so it is also what a third-party client would have to do.

mod conn;
mod cursor;
mod emit;
mod retry;
mod split;
mod tail;

pub use conn::{http_client, ApiError, ConnectionArgs, ConnectionError};
pub use cursor::{read_cursor_file, write_cursor_file, CursorFileError};
pub use emit::{
    emit_events, emit_reader, plan_batches, AcceptedEvent, BatchReport, EmitArgs, EmitError,
    EmitOptions, EmitSummary, RequestFailure, DEFAULT_MAX_REQUEST_BYTES, MAX_BATCH_EVENTS,
};
pub use retry::Backoff;
pub use split::{minify_json, split_events, SplitError};
pub use tail::{tail_to, TailArgs, TailError, TailOptions, TailSummary};
