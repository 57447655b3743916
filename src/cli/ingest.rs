//! `verbatim ingest`: backfill a file through the same pipeline.

use std::path::PathBuf;

use anyhow::Context;

use super::load;
use crate::config::PipelineConfig;
use crate::pipeline::PipelineBuilder;
use crate::source::file::FileFormat;

/// Backfill a JSONL or CSV file through the same pipeline. Re-running
/// resumes after the last committed record; nothing is written twice.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// The file: one JSON object per line, or CSV with a header row.
    pub file: PathBuf,
    /// Pipeline file for field mapping, batching and output (its [kafka] is ignored).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Write here instead of the pipeline's output.root.
    #[arg(long)]
    pub output_root: Option<PathBuf>,
    /// How the file is framed.
    #[arg(long, value_enum, default_value_t = FileFormat::Auto)]
    pub format: FileFormat,
}

/// Reads the file through the pipeline and prints what was committed.
pub async fn execute(args: IngestArgs) -> anyhow::Result<()> {
    let IngestArgs {
        file,
        pipeline,
        output_root,
        format,
    } = args;
    let mut cfg = match &pipeline {
        Some(p) => load(p)?,
        None => PipelineConfig::default(),
    };
    if let Some(root) = output_root {
        cfg.output.root = root;
    }
    if !file.is_file() {
        anyhow::bail!(
            "{}: no such file. Fix: pass a JSONL or CSV file to ingest",
            file.display()
        );
    }
    let root = cfg.output.root.clone();
    let s = PipelineBuilder::new(cfg)
        .run_file(file.clone(), format)
        .await
        .with_context(|| format!("ingesting {}", file.display()))?;
    println!(
                "ingested {}: {} records read, {} comment rows and {} rejected rows committed in {} files under {}",
                file.display(),
                s.messages,
                s.comments,
                s.rejected,
                s.files,
                root.display()
            );
    Ok(())
}
