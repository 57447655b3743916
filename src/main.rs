//! The `verbatim` command line: parse the arguments and dispatch to
//! [`verbatim::cli`], where each command lives in a file of its own.

use clap::Parser;
use verbatim::cli::{init_logging, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log);
    cli.command.execute().await
}
