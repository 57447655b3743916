//! `verbatim report`: the report for product teams, from the job's Parquet.

use std::path::PathBuf;

use anyhow::Context;

/// Write the report for product teams and frontline managers from the
/// Parquet the job wrote: overview, themes, fair staff scorecard, score
/// solicitation, follow-up queue, survey fatigue. HTML is one offline page.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The job's output root (holds comments/): a folder, or a bucket
    /// (`s3://bucket/prefix`...) read with the `[output.storage]` of
    /// `--pipeline` (else the standard AWS_*/GOOGLE_*/AZURE_* environment).
    #[arg(long, value_parser = crate::config::parse_output_root)]
    pub output_root: PathBuf,
    /// Where a bucket's tables are copied (under `.read-cache/`) before the
    /// report is built; kept, so the next report fetches only new and
    /// rewritten files. Default: a folder per root in the system temp folder.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
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
    /// The moment ages, SLAs and "overdue" are measured to (RFC 3339, e.g.
    /// 2026-11-20T09:00:00Z); default: now. Two reports with one `--as-of`
    /// over the same files are the same.
    #[arg(long)]
    pub as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Theme labels in this language (ISO 639-1, e.g. `ru`) where a theme
    /// has one (themes whose texts are partly in it); default: each
    /// theme's label in the language most of its texts use.
    #[arg(long)]
    pub language: Option<String>,
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
        cache_dir,
        as_of,
        language,
    } = args;
    let cfg = super::load_or_default(pipeline.as_deref(), true, super::if_bucket(&output_root))?;
    let sla = crate::followup::status::Sla(
        cfg.actions
            .sla
            .spans()
            .map_err(|(k, p)| anyhow::anyhow!("actions.sla.{k} {p}"))?,
    );
    let store = super::open_output(&output_root, &cfg, cache_dir)?;
    let root = store.readable(REPORT_FOLDERS)?;
    let shown = match store.local_root() {
        Some(_) => None,
        None => {
            eprintln!(
                "read {} through a local copy in {}",
                store.url(),
                root.display()
            );
            Some(store.url().to_string())
        }
    };
    let mut builder = crate::report::ReportBuilder::new(&root)
        .since(since)
        .until(until)
        .min_comments(min_comments)
        .sla(sla)
        .language(language);
    if let Some(t) = as_of {
        builder = builder.now(t.with_timezone(&chrono::Utc));
    }
    let text = render_report(&builder, shown.as_deref(), format)?;
    match out {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// What a report reads under an output root.
const REPORT_FOLDERS: &[&str] = &["comments", "mentions", "actions", "responses", "themes"];

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

/// Builds the report `builder` describes and renders it in `format`;
/// `shown` names the root in the report when it was read from a copy (a
/// bucket's).
pub fn render_report(
    builder: &crate::report::ReportBuilder,
    shown: Option<&str>,
    format: ReportFormat,
) -> anyhow::Result<String> {
    let mut report = builder.build()?;
    if let Some(s) = shown {
        report.output_root = s.to_string();
    }
    Ok(match format {
        ReportFormat::Html => crate::report::render::html(&report),
        ReportFormat::Md => crate::report::render::markdown(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)?,
    })
}
