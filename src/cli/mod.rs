//! The `verbatim` commands, one file each: its `clap` arguments (their doc
//! comments are `--help`) beside its body. `main.rs` only parses and
//! dispatches. This is the binary's edge: errors meet `anyhow` here and
//! nowhere else in the crate.
//!
//! | command | module | what it does |
//! |---|---|---|
//! | `run` | [`run`] | the stream job |
//! | `demo` | [`demo`] | the whole job on a bundled sample and a mock cluster |
//! | `ingest` | [`ingest`] | a JSONL/CSV backfill through the same pipeline |
//! | `check` | [`check`] | validate a pipeline file |
//! | `eval` | [`eval`] | score the comment analysis on labelled data |
//! | `train` | [`train`] | train the analysis heads |
//! | `train-flags` | [`train_flags`] | train the learned flags |
//! | `eval-themes` | [`eval_themes`] | score the online themes on labelled data |
//! | `themes` | [`themes`] | curate, refit and tabulate the themes |
//! | `report` | [`report`] | the report for product teams |

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::config::{PipelineConfig, Precision};

pub mod actions;
pub mod check;
pub mod demo;
pub mod eval;
pub mod eval_themes;
pub mod ingest;
pub mod report;
pub mod run;
pub mod themes;
pub mod train;
pub mod train_flags;

/// Turns customer feedback from Kafka into enriched, queryable Parquet.
#[derive(Parser, Debug)]
#[command(name = "verbatim", version, about, long_about = None)]
pub struct Cli {
    /// Log filter in RUST_LOG syntax, e.g. `info` or `verbatim=debug,librdkafka=warn`.
    #[arg(long, global = true, env = "VERBATIM_LOG", default_value = "info")]
    pub log: String,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands; each one's `--help` is the doc comment of its arguments
/// struct, in the command's own file (a variant doc here would override it).
#[derive(Subcommand, Debug)]
#[allow(missing_docs)]
pub enum Command {
    Run(run::RunArgs),
    Demo(demo::DemoArgs),
    Ingest(ingest::IngestArgs),
    Eval(eval::EvalArgs),
    Train(train::TrainArgs),
    TrainFlags(train_flags::TrainFlagsArgs),
    EvalThemes(eval_themes::EvalThemesArgs),
    Report(report::ReportArgs),
    Themes(themes::ThemesArgs),
    Actions(actions::ActionsArgs),
    Check(check::CheckArgs),
}

impl Command {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Run(a) => run::execute(a).await,
            Command::Demo(a) => demo::execute(a).await,
            Command::Ingest(a) => ingest::execute(a).await,
            Command::Eval(a) => eval::execute(a),
            Command::Train(a) => train::execute(a),
            Command::TrainFlags(a) => train_flags::execute(a),
            Command::EvalThemes(a) => eval_themes::execute(a),
            Command::Report(a) => report::execute(a),
            Command::Themes(a) => themes::execute(a),
            Command::Actions(a) => actions::execute(a),
            Command::Check(a) => check::execute(a),
        }
    }
}

/// Logs to stderr with `filter` (RUST_LOG syntax; `info` if it does not parse).
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log collectors get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Loads and validates a pipeline file.
fn load(path: &Path) -> anyhow::Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}

/// The `[nlp]` section of the pipeline at `path` (offline commands that
/// train a model's heads: train, train-flags), with `model` overriding
/// its `nlp.model`.
fn load_nlp(path: &Path, model: Option<String>) -> anyhow::Result<crate::config::NlpConfig> {
    let mut nlp = load(path)?.nlp.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no [nlp] section. Fix: use a pipeline that has one, e.g. pipelines/demo.toml",
            path.display()
        )
    })?;
    if let Some(m) = model {
        nlp.model = m;
    }
    Ok(nlp)
}

/// The output root of an offline command as a store: a folder as it is; a
/// bucket with `cfg`'s `[output.storage]` (else the standard environment),
/// the tables it reads copied under `cache` (default: a folder per root in
/// the system temp folder; kept, so the next run fetches only new files).
fn open_output(
    root: &Path,
    cfg: &PipelineConfig,
    cache: Option<std::path::PathBuf>,
) -> anyhow::Result<crate::sink::store::OutputStore> {
    let out = crate::config::OutputConfig {
        root: root.to_path_buf(),
        ..Default::default()
    };
    if out.bucket_url().is_none() && !root.is_dir() {
        anyhow::bail!(
            "--output-root {}: no such folder. Fix: give the job's output.root (a folder, or s3://bucket/prefix with --pipeline for its [output.storage])",
            root.display()
        );
    }
    let cache = cache.unwrap_or_else(|| {
        std::env::temp_dir()
            .join("verbatim-cache")
            .join(crate::sink::files::safe_topic(&root.to_string_lossy()))
    });
    Ok(crate::sink::store::OutputStore::open(
        &crate::config::OutputConfig {
            storage: cfg.output.storage.clone(),
            spool_dir: Some(cache),
            ..out
        },
    )?)
}

/// The shipped `pipelines/feedback.toml`, used when no `--pipeline` is given.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/feedback.toml");

/// `root` when it is a bucket: what a command that only reads passes to
/// [`load_or_default`] (a folder, often a local copy of a bucket, keeps the
/// pipeline's own root, so a bucket pipeline's `[output.storage]` stays valid).
fn if_bucket(root: &Path) -> Option<&Path> {
    crate::config::OutputConfig {
        root: root.to_path_buf(),
        ..Default::default()
    }
    .bucket_url()
    .map(|_| root)
}

/// The pipeline file given, else the built-in `pipelines/feedback.toml`,
/// with `root` (a command's `--output-root`) as its `output.root`.
fn pipeline_at(path: Option<&Path>, root: Option<&Path>) -> anyhow::Result<PipelineConfig> {
    Ok(match path {
        Some(p) => PipelineConfig::load_at(p, root)?,
        None => PipelineConfig::from_toml_at(
            DEFAULT_PIPELINE,
            Path::new("pipelines/feedback.toml (built in)"),
            root,
        )?,
    })
}

/// The pipeline a command runs: the file given, else the built-in
/// `pipelines/feedback.toml` (the full analysis), with `root` (the
/// command's `--output-root`, if any) as its `output.root`; `no_nlp` drops
/// `[nlp]` (the spine alone). Says which in its first log line.
fn load_or_default(
    path: Option<&Path>,
    no_nlp: bool,
    root: Option<&Path>,
) -> anyhow::Result<PipelineConfig> {
    let mut cfg = pipeline_at(path, root)?;
    if no_nlp {
        cfg.nlp = None;
    }
    let analysis = match &cfg.nlp {
        Some(n) => format!(
            "full analysis with {} ({:?}, {:?}; models from {})",
            n.model,
            n.backend,
            n.precision,
            n.cache_dir.display()
        ),
        None if no_nlp => "no analysis (--no-nlp): the spine alone".into(),
        None => "no analysis (the pipeline has no [nlp] section)".into(),
    };
    match path {
        Some(p) => tracing::info!("pipeline {}: {analysis}", p.display()),
        None => tracing::info!(
            "no --pipeline given: using the built-in pipelines/feedback.toml, {analysis}; pass --no-nlp for the spine alone"
        ),
    }
    Ok(cfg)
}

/// Adds, to a pipeline error from loading models, where the models come
/// from and how to set them up.
fn with_model_hint(
    e: crate::pipeline::PipelineError,
    nlp: Option<&crate::config::NlpConfig>,
    what: String,
) -> anyhow::Error {
    let hint = match (&e, nlp) {
        (crate::pipeline::PipelineError::Nlp(_), Some(n)) => format!(
            " (model {} from {}: set the models up with `bash models/setup.sh`, or pass --no-nlp for the spine alone)",
            n.model,
            n.cache_dir.display()
        ),
        _ => String::new(),
    };
    anyhow::Error::new(e).context(format!("{what}{hint}"))
}

/// `--precision` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    /// Dynamic int8.
    Int8,
    /// Full precision.
    Fp32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Int8 => Precision::Int8,
            PrecisionArg::Fp32 => Precision::Fp32,
        }
    }
}

/// Whether a labelled row belongs to `split`: every row when no split is
/// asked for, else rows whose `split` field is that one or that have none
/// (the public sets carry no split; the team's fresh set does).
pub(crate) fn in_split(row: &serde_json::Value, split: Option<&str>) -> bool {
    match (split, row.get("split").and_then(|s| s.as_str())) {
        (Some(want), Some(have)) => want == have,
        _ => true,
    }
}
