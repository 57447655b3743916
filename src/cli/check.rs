//! `verbatim check`: validate a pipeline file.

use std::path::PathBuf;

use super::load;

/// Validate a pipeline file and print the resolved settings (secrets masked).
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
}

/// Validates the file and prints the resolved settings.
pub fn execute(args: CheckArgs) -> anyhow::Result<()> {
    let pipeline = args.pipeline;
    let cfg = load(&pipeline)?;
    println!("# {} is valid. Resolved settings:\n", pipeline.display());
    print!("{}", cfg.to_display_toml());
    println!("\n# pipeline_version = {:?}", cfg.version_tag());
    Ok(())
}
