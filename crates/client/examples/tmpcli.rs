use clap::Parser;
#[derive(Parser, Debug)]
struct Cli { #[command(subcommand)] cmd: Cmd }
#[derive(clap::Subcommand, Debug)]
enum Cmd { Emit(auditrelay_client::EmitArgs), Tail(auditrelay_client::TailArgs) }
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd { Cmd::Emit(a) => a.run().await, Cmd::Tail(a) => a.run().await }
}
