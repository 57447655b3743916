//! The `verbatim` command line: parse the arguments and dispatch to
//! [`verbatim::cli`], where each command lives in a file of its own.

use clap::Parser;
use verbatim::cli::{init_logging, Cli};

fn main() -> anyhow::Result<()> {
    // Before any thread starts (the runtime's included).
    verbatim::metrics::memory::limit_heap_arenas();
    let cli = Cli::parse();
    init_logging(&cli.log);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cli.command.execute())
}
