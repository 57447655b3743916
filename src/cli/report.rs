//! `verbatim report`: the report for product teams, from the job's Parquet.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Write the report for product teams and frontline managers from the
/// Parquet the job wrote: overview, themes, fair staff scorecard, score
/// solicitation, follow-up queue, survey fatigue. HTML is one offline page.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The job's output root (holds comments/).
    #[arg(long, value_parser = crate::config::parse_local_root)]
    pub output_root: PathBuf,
    /// First day to include (event date, UTC), e.g. 2026-11-01.
    #[arg(long)]
    pub since: Option<chrono::NaiveDate>,
    /// Last day to include (event date, UTC).
    #[arg(long)]
    pub until: Option<chrono::NaiveDate>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fewest analysed comments a staff member or location needs to be ranked.
    #[arg(long, default_value_t = 10)]
    pub min_comments: u64,
    /// Pipeline file whose `[actions.sla]` "Did we answer?" applies.
    /// Default: the built-in pipelines/feedback.toml (4h, 24h, 72h, 7d).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
}

/// Builds the report and writes it to `--out` or stdout.
pub fn execute(args: ReportArgs) -> anyhow::Result<()> {
    let ReportArgs {
        output_root,
        since,
        until,
        format,
        out,
        min_comments,
        pipeline,
    } = args;
    let cfg = super::load_or_default(pipeline.as_deref(), true)?;
    let sla = crate::followup::status::Sla(
        cfg.actions
            .sla
            .spans()
            .map_err(|(k, p)| anyhow::anyhow!("actions.sla.{k} {p}"))?,
    );
    let text = render_report(&output_root, since, until, min_comments, format, sla)?;
    match out {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `report --format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page (inline SVG, no network).
    Html,
    /// Markdown.
    Md,
    /// One JSON object.
    Json,
}

/// Builds the report and renders it in `format`.
pub fn render_report(
    root: &Path,
    since: Option<chrono::NaiveDate>,
    until: Option<chrono::NaiveDate>,
    min_comments: u64,
    format: ReportFormat,
    sla: crate::followup::status::Sla,
) -> anyhow::Result<String> {
    let report = crate::report::ReportBuilder::new(root)
        .since(since)
        .until(until)
        .min_comments(min_comments)
        .sla(sla)
        .build()?;
    Ok(match format {
        ReportFormat::Html => crate::report::render::html(&report),
        ReportFormat::Md => crate::report::render::markdown(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)?,
    })
}
