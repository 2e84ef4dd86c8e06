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

mod chain_check;
mod conn;
mod cursor;
mod emit;
mod export_csv;
mod integrity_cli;
mod retry;
mod split;
mod tail;

pub use chain_check::{
    parse_public_key, Anchor, ChainChecker, CheckpointDoc, Problem, TenantSummary, GENESIS as CHAIN_GENESIS,
};
pub use conn::{http_client, ApiError, ConnectionArgs, ConnectionError};
pub use cursor::{read_cursor_file, write_cursor_file, CursorFileError};
pub use emit::{
    emit_events, emit_reader, plan_batches, AcceptedEvent, BatchReport, EmitArgs, EmitError, EmitOptions, EmitSummary,
    RequestFailure, DEFAULT_MAX_REQUEST_BYTES, MAX_BATCH_EVENTS,
};
pub use integrity_cli::{ExportArgs, VerifyArgs};
pub use retry::Backoff;
pub use split::{minify_json, split_events, SplitError};
pub use tail::{tail_to, TailArgs, TailError, TailOptions, TailSummary};

#[cfg(test)]
mod cli_tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The shape the server binary embeds the subcommands in.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Cmd {
        Emit(EmitArgs),
        Tail(TailArgs),
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_emit_and_tail() {
        let cli = Cli::try_parse_from([
            "auditrelay",
            "emit",
            "--token",
            "t",
            "--tenant",
            "acme",
            "--batch-size",
            "50",
            "--json",
            "events.ndjson",
        ])
        .expect("emit parses");
        let Cmd::Emit(emit) = cli.cmd else { panic!("not emit") };
        assert_eq!(emit.batch_size, 50);
        assert_eq!(emit.conn.tenant.as_deref(), Some("acme"));
        assert_eq!(emit.input.as_deref(), Some(std::path::Path::new("events.ndjson")));

        let cli = Cli::try_parse_from([
            "auditrelay",
            "tail",
            "--token",
            "t",
            "--after",
            "7",
            "--types",
            "a.*,b.c",
            "--no-follow",
            "--pretty",
            "--cursor-file",
            "c.txt",
        ])
        .expect("tail parses");
        let Cmd::Tail(tail) = cli.cmd else { panic!("not tail") };
        assert_eq!(tail.after, Some(7));
        assert_eq!(tail.types, vec!["a.*".to_string(), "b.c".to_string()]);
        assert_eq!((tail.wait, tail.limit), (30, 100));
        assert!(tail.no_follow && tail.pretty);

        assert!(Cli::try_parse_from(["auditrelay", "tail", "--token", "t", "--wait", "61"]).is_err());
        assert!(Cli::try_parse_from(["auditrelay", "tail", "--token", "t", "--limit", "0"]).is_err());
    }
}
