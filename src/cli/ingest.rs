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
    /// What the file holds: feedback comments, or follow-up events
    /// (`{comment_id or action_id, at, channel, outcome, agent, note}`,
    /// mapped by [responses.fields]) that answer the action queue.
    #[arg(long, value_enum, default_value_t = IngestTable::Comments)]
    pub table: IngestTable,
}

/// The table a file is ingested into.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestTable {
    /// Comments: analysed, into `comments/` (and `mentions/`, `actions/`).
    Comments,
    /// Follow-up events, into `responses/`.
    Responses,
}

/// Reads the file through the pipeline and prints what was committed.
pub async fn execute(args: IngestArgs) -> anyhow::Result<()> {
    let IngestArgs {
        file,
        pipeline,
        output_root,
        format,
        no_nlp,
        table,
    } = args;
    let responses = table == IngestTable::Responses;
    // Events need no models.
    let cfg = load_or_default(
        pipeline.as_deref(),
        no_nlp || responses,
        output_root.as_deref(),
    )?;
    crate::source::file::check_input(&file)?;
    let root = cfg.output.root.clone();
    let nlp = cfg.nlp.clone();
    let mut builder = PipelineBuilder::new(cfg);
    if responses {
        builder = builder.responses_only();
    }
    let s = builder
        .run_file(file.clone(), format)
        .await
        .map_err(|e| with_model_hint(e, nlp.as_ref(), format!("ingesting {}", file.display())))?;
    let (good, kind) = if responses {
        (s.responses, "response")
    } else {
        (s.comments, "comment")
    };
    println!(
        "ingested {}: {} records read, {good} {kind} rows and {} rejected rows committed in {} files under {}",
        file.display(),
        s.messages,
        s.rejected,
        s.files,
        root.display()
    );
    if s.rejected > 0 && s.rejected >= good {
        tracing::warn!(
            "{} of {} records were rejected; query rejected/ for the reasons (is the file in the format the pipeline expects? see input.format and input.fields, or responses.fields for --table responses)",
            s.rejected,
            s.messages
        );
    }
    Ok(())
}
