//! `verbatim ingest`: backfill a file through the same pipeline.

use std::path::PathBuf;

use super::{load_or_default, with_model_hint};
use crate::pipeline::PipelineBuilder;
use crate::source::file::FileFormat;

/// Backfill a JSONL or CSV file through the same pipeline. Re-running
/// resumes after the last committed record; nothing is written twice.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// The file: one JSON object per line, or CSV with a header row.
    pub file: PathBuf,
    /// Pipeline file for field mapping, batching, analysis and output (its
    /// [kafka] is ignored). Default: the built-in pipelines/feedback.toml,
    /// the full analysis with the set-up models.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Leave out the analysis ([nlp]): only the spine's columns are written.
    #[arg(long)]
    pub no_nlp: bool,
    /// Write here instead of the pipeline's output.root.
    #[arg(long, value_parser = crate::config::parse_output_root)]
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
        no_nlp,
    } = args;
    let mut cfg = load_or_default(pipeline.as_deref(), no_nlp)?;
    if let Some(root) = output_root {
        cfg.output.root = root;
    }
    crate::source::file::check_input(&file)?;
    let root = cfg.output.root.clone();
    let nlp = cfg.nlp.clone();
    let s = PipelineBuilder::new(cfg)
        .run_file(file.clone(), format)
        .await
        .map_err(|e| with_model_hint(e, nlp.as_ref(), format!("ingesting {}", file.display())))?;
    println!(
                "ingested {}: {} records read, {} comment rows and {} rejected rows committed in {} files under {}",
                file.display(),
                s.messages,
                s.comments,
                s.rejected,
                s.files,
                root.display()
            );
    if s.rejected > 0 && s.rejected >= s.comments {
        tracing::warn!(
            "{} of {} records were rejected; query rejected/ for the reasons (is the file in the format the pipeline expects? see input.format and input.fields)",
            s.rejected,
            s.messages
        );
    }
    Ok(())
}
