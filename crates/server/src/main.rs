//! `auditrelay`: the server and its command-line tools in one binary.

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: under ingest load glibc's malloc spent ~18% of
/// the server's CPU in `malloc`/`free` and its arena locks (perf, issue 13); mimalloc's
/// per-thread heaps avoid both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "auditrelay",
    version,
    about = "Durable audit-event streaming to SIEMs and pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite by default; no config needed).
    Serve(Box<auditrelay_server::config::ServeArgs>),
    /// Send events from a file or stdin (JSON object, JSON array or NDJSON).
    Emit(auditrelay_client::EmitArgs),
    /// Follow a tenant's log in the terminal, resumably.
    Tail(auditrelay_client::TailArgs),
    /// Master-key maintenance (`keys rotate`).
    Keys(auditrelay_server::keys::KeysArgs),
    /// Export a tenant's events (a range, some types) as NDJSON or CSV, streamed.
    Export(auditrelay_client::ExportArgs),
    /// Check hash chains: of an export or a SIEM's copy (--file), or of the live log (--url).
    Verify(auditrelay_client::VerifyArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auditrelay: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => auditrelay_server::serve(*args).await,
            Command::Emit(args) => args.run().await,
            Command::Tail(args) => args.run().await,
            Command::Keys(args) => args.run().await,
            Command::Export(args) => args.run().await,
            Command::Verify(args) => args.run().await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auditrelay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
