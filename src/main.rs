//! The `verbatim` command line. Errors meet `anyhow` here and nowhere else.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use verbatim::config::{PipelineConfig, Precision};
use verbatim::metrics::Metrics;
use verbatim::pipeline::PipelineBuilder;
use verbatim::source::file::FileFormat;

/// Turns customer feedback from Kafka into enriched, queryable Parquet.
#[derive(Parser, Debug)]
#[command(name = "verbatim", version, about, long_about = None)]
struct Cli {
    /// Log filter in RUST_LOG syntax, e.g. `info` or `verbatim=debug,librdkafka=warn`.
    #[arg(long, global = true, env = "VERBATIM_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the stream job: join the consumer group and write Parquet until
    /// SIGINT/SIGTERM, then drain, commit and exit 0.
    Run {
        /// The pipeline file, e.g. pipelines/feedback.toml.
        #[arg(long)]
        pipeline: PathBuf,
    },
    /// Run the whole job on a bundled sample against an in-process mock Kafka
    /// cluster, write Parquet under --output-root, and show how to query it.
    Demo {
        /// Where to write (cleared first if it holds an earlier demo).
        #[arg(long, default_value = "out/demo")]
        output_root: PathBuf,
    },
    /// Backfill a JSONL or CSV file through the same pipeline. Re-running
    /// resumes after the last committed record; nothing is written twice.
    Ingest {
        /// The file: one JSON object per line, or CSV with a header row.
        file: PathBuf,
        /// Pipeline file for field mapping, batching and output (its [kafka] is ignored).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Write here instead of the pipeline's output.root.
        #[arg(long)]
        output_root: Option<PathBuf>,
        /// How the file is framed.
        #[arg(long, value_enum, default_value_t = FileFormat::Auto)]
        format: FileFormat,
    },
    /// Score the understanding stages on a labelled JSONL file (the project's
    /// format, see ../shared/data/README.md): aspect targets, complaints,
    /// polarity, sentiment and the follow-up flags, through the same stages
    /// the stream job runs.
    Eval {
        /// Labelled rows, one JSON object per line.
        #[arg(long)]
        input: PathBuf,
        /// Pipeline whose `[nlp]` and `[flags]` to use.
        #[arg(long, default_value = "pipelines/demo.toml")]
        pipeline: PathBuf,
        /// Score only the flags (no model needed).
        #[arg(long)]
        flags_only: bool,
        /// Override the pipeline's nlp.precision.
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Run int8 and fp32 and compare; exit 3 when any headline metric
        /// differs by more than 1 point (int8 stays the default only while
        /// it does not).
        #[arg(long)]
        compare_precision: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Also list every miss (false positives and negatives).
        #[arg(long)]
        misses: bool,
        /// Write every row's predictions beside its gold labels to this
        /// JSONL file, with a `disagreements` list per row (e.g. `product:
        /// gold negative, predicted neutral`), for reading what the model
        /// gets wrong.
        #[arg(long)]
        predictions: Option<PathBuf>,
    },
    /// Train the comment-analysis heads (aspects, sentiment) on labelled
    /// files with the pipeline's encoder, and write them with a manifest
    /// (data, sha256, command) to --out. The committed heads are made by the
    /// command in models/heads/README.md.
    Train {
        /// Pipeline whose `[nlp]` encoder makes the training vectors.
        #[arg(long, default_value = "pipelines/demo.toml")]
        pipeline: PathBuf,
        /// Aspect-labelled JSONL (the project's format); repeat for more files.
        #[arg(long, required = true)]
        aspects: Vec<PathBuf>,
        /// Sentiment file, `sentence<TAB>0|1` a line; repeat for more files.
        #[arg(long, required = true)]
        sentiment: Vec<PathBuf>,
        /// Output folder, e.g. models/heads/all-MiniLM-L6-v2.
        #[arg(long)]
        out: PathBuf,
        /// Passes over the aspect data.
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Seed for initialisation, dropout and shuffling.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Score the online themes on JSONL rows with `text` and a ground-truth
    /// `label`: one pass in input order, NMI and ARI against the labels, beside
    /// k-means with k = number of labels on the same embeddings.
    EvalThemes {
        /// Labelled rows, e.g. ../shared/data/labelled/banking77_train.jsonl.
        #[arg(long)]
        input: PathBuf,
        /// Pipeline whose `[nlp]` and `[themes]` to use.
        #[arg(long, default_value = "pipelines/demo.toml")]
        pipeline: PathBuf,
        /// Override the pipeline's nlp.precision.
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Run int8 and fp32 and compare; exit 3 when int8's NMI or ARI is
        /// more than 1 point below fp32's.
        #[arg(long)]
        compare_precision: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the report for product teams and frontline managers from the
    /// Parquet the job wrote: overview, themes, fair staff scorecard, score
    /// solicitation, follow-up queue, survey fatigue. HTML is one offline page.
    Report {
        /// The job's output root (holds comments/).
        #[arg(long)]
        output_root: PathBuf,
        /// First day to include (event date, UTC), e.g. 2026-11-01.
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Last day to include (event date, UTC).
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fewest analysed comments a staff member or location needs to be ranked.
        #[arg(long, default_value_t = 10)]
        min_comments: u64,
    },
    /// Curate and refit the themes under an output root.
    Themes {
        #[command(subcommand)]
        action: ThemesAction,
    },
    /// Validate a pipeline file and print the resolved settings (secrets masked).
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
    },
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

fn load(path: &Path) -> anyhow::Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match cli.command {
        Command::Run { pipeline } => {
            let cfg = load(&pipeline)?;
            cfg.kafka_or_err(&pipeline)?;
            let metrics = Metrics::new();
            if let Some(addr) = &cfg.metrics.listen {
                let addr = addr
                    .parse()
                    .with_context(|| format!("{}: metrics.listen", pipeline.display()))?;
                let m = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = m.serve(addr).await {
                        tracing::error!(error = %e, "metrics endpoint stopped");
                    }
                });
            }
            tracing::info!(pipeline = %pipeline.display(), root = %cfg.output.root.display(), "starting");
            let summary = PipelineBuilder::new(cfg)
                .metrics(metrics)
                .run_kafka(shutdown_signal())
                .await
                .context("the stream job stopped")?;
            tracing::info!(?summary, "stopped cleanly");
        }
        Command::Demo { output_root } => {
            eprintln!("verbatim demo: starting an in-process Kafka mock cluster and producing the bundled sample...");
            let r = verbatim::demo::run(&output_root)
                .await
                .context("demo failed")?;
            print_demo(&r);
            let (daily, _) = verbatim::theme_daily::write_daily(&output_root)?;
            println!(
                "\nThemes over time (theme, day, counts, spike flag): {}",
                daily.display()
            );
            let page = render_report(&output_root, None, None, 10, ReportFormat::Html)?;
            let path = output_root.join("report.html");
            std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "\nReport for product teams (one offline HTML page): {}",
                path.display()
            );
        }
        Command::Themes { action } => run_themes(action)?,
        Command::Report {
            output_root,
            since,
            until,
            format,
            out,
            min_comments,
        } => {
            let text = render_report(&output_root, since, until, min_comments, format)?;
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Ingest {
            file,
            pipeline,
            output_root,
            format,
        } => {
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
        }
        Command::Train {
            pipeline,
            aspects,
            sentiment,
            out,
            epochs,
            seed,
        } => {
            let cfg = load(&pipeline)?;
            let nlp = cfg.nlp.clone().with_context(|| {
                format!(
                    "{}: no [nlp] section. Fix: train with a pipeline that has one, e.g. pipelines/demo.toml",
                    pipeline.display()
                )
            })?;
            let mut opts = verbatim::train::TrainOptions::new(out.clone());
            opts.aspects = aspects;
            opts.sentiment = sentiment;
            opts.epochs = epochs;
            opts.seed = seed;
            opts.command = std::env::args()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
                .replace(&*std::env::var("HOME").unwrap_or_default(), "~");
            let t = std::time::Instant::now();
            let m = verbatim::train::train(&nlp, &opts).context("training failed")?;
            println!(
                "trained heads on {} files in {:.0} s ({}); wrote {}/heads.toml and {} (sha256 {})",
                m.data.len(),
                t.elapsed().as_secs_f64(),
                m.encoder,
                out.display(),
                m.weights,
                m.weights_sha256
            );
        }
        Command::Eval {
            input,
            pipeline,
            flags_only,
            precision,
            compare_precision,
            json,
            misses,
            predictions,
        } => {
            let cfg = load(&pipeline)?;
            let nlp = if flags_only { None } else { cfg.nlp.clone() };
            if !flags_only && nlp.is_none() {
                anyhow::bail!(
                    "{}: no [nlp] section, so only flags could be scored. Fix: pass a pipeline with [nlp], or --flags-only",
                    pipeline.display()
                );
            }
            let run = |p: Option<Precision>| -> anyhow::Result<verbatim::eval::EvalReport> {
                let mut nlp = nlp.clone();
                if let (Some(n), Some(p)) = (nlp.as_mut(), p) {
                    n.precision = p;
                }
                Ok(verbatim::eval::evaluate(&input, &cfg.flags, nlp.as_ref())?)
            };
            if compare_precision {
                let int8 = run(Some(Precision::Int8))?;
                let fp32 = run(Some(Precision::Fp32))?;
                let (a, b) = (verbatim::eval::scores(&int8), verbatim::eval::scores(&fp32));
                // int8 may not lose more than a point on a headline score.
                let mut worst_drop = 0f64;
                let mut rows = Vec::new();
                for (k, (x, head)) in &b {
                    let y = a.get(k).map_or(f64::NAN, |v| v.0);
                    let d = y - x;
                    if *head {
                        worst_drop = worst_drop.max(-d);
                    }
                    rows.push((k.clone(), *x, y, d, *head));
                }
                let ok = worst_drop <= 0.01;
                if json {
                    let obj = serde_json::json!({
                        "fp32": fp32, "int8": int8,
                        "max_headline_drop": worst_drop, "within_one_point": ok,
                    });
                    println!("{obj}");
                } else {
                    println!("{}: {} rows, int8 vs fp32", input.display(), int8.n);
                    println!(
                        "{:<34} {:>7} {:>7} {:>7}",
                        "metric (* headline)", "fp32", "int8", "delta"
                    );
                    for (k, x, y, d, head) in rows {
                        let k = if head { format!("{k} *") } else { k };
                        println!("{k:<34} {x:>7.3} {y:>7.3} {d:>+7.3}");
                    }
                    println!(
                        "largest headline drop {:.3}: int8 {} within 1 point of fp32",
                        worst_drop,
                        if ok { "is" } else { "is NOT" }
                    );
                }
                if !ok {
                    std::process::exit(3);
                }
                return Ok(());
            }
            let r = run(precision.map(Into::into))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_eval(&input, &r);
            }
            if misses {
                for m in &r.misses {
                    eprintln!("{} {} {}: {}", m.kind, m.flag, m.id, m.text);
                }
            }
            if let Some(out) = predictions {
                let mut text = String::new();
                for p in &r.predictions {
                    text.push_str(&serde_json::to_string(p)?);
                    text.push('\n');
                }
                std::fs::write(&out, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
                let wrong = r
                    .predictions
                    .iter()
                    .filter(|p| !p.disagreements.is_empty())
                    .count();
                eprintln!(
                    "wrote {} rows to {} ({wrong} with a disagreement)",
                    r.predictions.len(),
                    out.display()
                );
            }
        }
        Command::EvalThemes {
            input,
            pipeline,
            precision,
            compare_precision,
            json,
        } => {
            let cfg = load(&pipeline)?;
            let mut nlp = cfg.nlp.clone().with_context(|| {
                format!(
                    "{}: no [nlp] section. Fix: pass a pipeline with one, e.g. pipelines/demo.toml",
                    pipeline.display()
                )
            })?;
            if compare_precision {
                nlp.precision = Precision::Int8;
                let int8 = verbatim::eval_themes::evaluate(&input, &nlp, &cfg.themes)?;
                nlp.precision = Precision::Fp32;
                let fp32 = verbatim::eval_themes::evaluate(&input, &nlp, &cfg.themes)?;
                let drop = (fp32.nmi - int8.nmi).max(fp32.ari - int8.ari);
                let ok = drop <= 0.01;
                if json {
                    let obj = serde_json::json!({
                        "int8": int8, "fp32": fp32, "max_drop": drop, "within_one_point": ok,
                    });
                    println!("{obj}");
                } else {
                    println!(
                        "{}: online themes, int8 NMI {:.3} ARI {:.3} ({} themes), fp32 NMI {:.3} ARI {:.3} ({} themes): int8 {} within 1 point",
                        input.display(),
                        int8.nmi,
                        int8.ari,
                        int8.themes,
                        fp32.nmi,
                        fp32.ari,
                        fp32.themes,
                        if ok { "is" } else { "is NOT" }
                    );
                }
                if !ok {
                    std::process::exit(3);
                }
                return Ok(());
            }
            if let Some(p) = precision {
                nlp.precision = p.into();
            }
            let r = verbatim::eval_themes::evaluate(&input, &nlp, &cfg.themes)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: {} rows, {} labels -> {} themes, outliers {:.1}%\n  online (one pass, input order): NMI {:.3}, ARI {:.3}\n  k-means, k = {}:               NMI {:.3}, ARI {:.3}",
                    input.display(),
                    r.n,
                    r.labels,
                    r.themes,
                    100.0 * r.outlier_share,
                    r.nmi,
                    r.ari,
                    r.labels,
                    r.batch_baseline.nmi,
                    r.batch_baseline.ari
                );
            }
        }
        Command::Check { pipeline } => {
            let cfg = load(&pipeline)?;
            println!("# {} is valid. Resolved settings:\n", pipeline.display());
            print!("{}", cfg.to_display_toml());
            println!("\n# pipeline_version = {:?}", cfg.version_tag());
        }
    }
    Ok(())
}

/// `verbatim themes ...`.
#[derive(Subcommand, Debug)]
enum ThemesAction {
    /// List every theme, largest first: id, comments, label.
    List {
        /// The job's output root.
        #[arg(long)]
        output_root: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one theme: label, comments, merged ids, top terms, exemplars.
    Show {
        /// Theme id (a merged-away id shows the theme that took it in).
        id: u32,
        /// The job's output root.
        #[arg(long)]
        output_root: PathBuf,
    },
    /// Give a theme a label of your own; refits and relabelling keep it.
    Rename {
        /// Theme id.
        id: u32,
        /// The new label.
        label: String,
        /// The job's output root.
        #[arg(long)]
        output_root: PathBuf,
    },
    /// Merge theme B into theme A; B's id then stands for A.
    Merge {
        /// The theme that stays.
        a: u32,
        /// The theme merged into it.
        b: u32,
        /// The job's output root.
        #[arg(long)]
        output_root: PathBuf,
    },
    /// Re-cluster the stored embeddings as a batch job, keep the ids that
    /// survive, mint new ones, record merges and splits, and write a new
    /// model version; running jobs take it over at their next commit.
    Refit {
        /// The job's output root (comments/ with embeddings, themes/).
        #[arg(long)]
        output_root: PathBuf,
        /// Pipeline whose [themes] settings to use when there is no model yet.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Cluster everything afresh (average linkage over all stored
        /// embeddings, in a fixed order) and match the clusters to the old
        /// ids, instead of starting from the current centroids: the result
        /// no longer depends on the order the stream arrived in.
        #[arg(long)]
        from_scratch: bool,
        /// k-means rounds from the current centroids: 1 keeps ids best
        /// (99% on 3,000 shuffled banking77 queries), 3 regroups more (83%).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild theme_daily/ (theme, day, counts, sentiment mix, complaint
    /// shares, spike flag) from comments/.
    Daily {
        /// The job's output root.
        #[arg(long)]
        output_root: PathBuf,
    },
}

fn run_themes(action: ThemesAction) -> anyhow::Result<()> {
    use verbatim::theme_admin;
    let print = |t: &theme_admin::ThemeInfo| {
        println!(
            "theme {}: {} ({} comments){}",
            t.id,
            t.label,
            t.comments,
            if t.curated { ", renamed" } else { "" }
        );
        if !t.merged.is_empty() {
            println!("  merged in: {:?}", t.merged);
        }
        let terms: Vec<String> = t
            .top_terms
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        println!("  top terms: {}", terms.join(", "));
        for e in &t.exemplars {
            println!("  - {e}");
        }
    };
    match action {
        ThemesAction::List { output_root, json } => {
            let all = theme_admin::list(&output_root)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:>6}  {:>8}  label", "id", "comments");
                for t in &all {
                    println!(
                        "{:>6}  {:>8}  {}{}",
                        t.id,
                        t.comments,
                        t.label,
                        if t.curated { " (renamed)" } else { "" }
                    );
                }
            }
        }
        ThemesAction::Show { id, output_root } => print(&theme_admin::show(&output_root, id)?),
        ThemesAction::Rename {
            id,
            label,
            output_root,
        } => {
            print(&theme_admin::rename(&output_root, id, &label)?);
        }
        ThemesAction::Merge { a, b, output_root } => {
            print(&theme_admin::merge(&output_root, a, b)?)
        }
        ThemesAction::Refit {
            output_root,
            pipeline,
            from_scratch,
            rounds,
            json,
        } => {
            let cfg = match &pipeline {
                Some(p) => load(p)?.themes,
                None => verbatim::config::ThemesConfig::default(),
            };
            let s = verbatim::theme_refit::refit(
                &output_root,
                &cfg,
                verbatim::theme_refit::RefitOptions {
                    from_scratch,
                    rounds,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "refit: {} comments, {} themes -> {} (kept {}, new {}, retired {}, merges {}, splits {}); {:.1}% of comments kept their theme id; outliers {:.1}%; wrote {}",
                    s.comments, s.themes_before, s.themes_after, s.kept, s.new.len(), s.retired.len(), s.merges.len(), s.splits.len(),
                    s.retention * 100.0, s.outlier_share * 100.0, s.path.display()
                );
            }
        }
        ThemesAction::Daily { output_root } => {
            let (path, rows) = verbatim::theme_daily::write_daily(&output_root)?;
            println!("wrote {} ({rows} rows)", path.display());
        }
    }
    Ok(())
}

/// `report --format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    /// One self-contained HTML page (inline SVG, no network).
    Html,
    /// Markdown.
    Md,
    /// One JSON object.
    Json,
}

/// Builds the report and renders it in `format`.
fn render_report(
    root: &Path,
    since: Option<chrono::NaiveDate>,
    until: Option<chrono::NaiveDate>,
    min_comments: u64,
    format: ReportFormat,
) -> anyhow::Result<String> {
    let report = verbatim::report::ReportBuilder::new(root)
        .since(since)
        .until(until)
        .min_comments(min_comments)
        .build()?;
    Ok(match format {
        ReportFormat::Html => verbatim::report::render::html(&report),
        ReportFormat::Md => verbatim::report::render::markdown(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)?,
    })
}

/// `--precision` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PrecisionArg {
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

fn print_eval(input: &Path, r: &verbatim::eval::EvalReport) {
    println!(
        "{}: {} rows{}",
        input.display(),
        r.n,
        r.encoder
            .as_deref()
            .map(|e| format!(", scored with {e}"))
            .unwrap_or_default()
    );
    let table = |title: &str, m: &std::collections::BTreeMap<String, verbatim::eval::Prf>| {
        println!(
            "{:<20} {:>9} {:>7} {:>6} {:>8}",
            title, "precision", "recall", "f1", "support"
        );
        for (f, p) in m {
            println!(
                "{f:<20} {:>9.3} {:>7.3} {:>6.3} {:>8}",
                p.precision, p.recall, p.f1, p.support
            );
        }
    };
    if let (Some(t), Some(c)) = (&r.targets, &r.complaints) {
        println!(
            "aspects over {} analysed rows ({} not analysed: language the model does not read)",
            r.analysed.unwrap_or(0),
            r.not_analysed.unwrap_or(0)
        );
        table("target", t);
        table("complaint", c);
    }
    if let Some(p) = r.polarity_accuracy {
        println!("polarity accuracy {p:.3}");
    }
    if let Some(s) = r.sentiment_accuracy {
        println!(
            "sentiment accuracy {s:.3} over {} rows",
            r.sentiment_support.unwrap_or(0)
        );
    }
    if let Some(f) = &r.flags {
        table("flag", f);
    }
}

fn print_demo(r: &verbatim::demo::DemoReport) {
    let o = &r.output;
    let root = r.root.display();
    println!("\nverbatim demo: produced {} messages to topic `feedback` (3 partitions) on the mock cluster", r.produced);
    println!("wrote {root}/");
    println!(
        "  comments/  {:>5} rows in {} files",
        o.comment_rows, o.comment_files
    );
    println!(
        "  rejected/  {:>5} rows in {} files",
        o.rejected_rows, o.rejected_files
    );
    for (reason, n) in &o.reasons {
        println!("             {n:>5} {reason}");
    }
    println!(
        "  (every message is in exactly one table: {} + {} = {})",
        o.comment_rows,
        o.rejected_rows,
        o.comment_rows + o.rejected_rows
    );
    if !o.languages.is_empty() {
        let langs: Vec<String> = o
            .languages
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        println!("\nwhat the comments say:");
        println!("  languages: {}", langs.join(", "));
        let flags: Vec<String> = o.flags.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("  follow-up flags: {}", flags.join(", "));
        println!("  PII redacted before writing: {} comments", o.redacted);
        for e in &o.follow_up_examples {
            println!("  asks for contact: \"{e}\"");
        }
        let join = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !o.sentiment.is_empty() {
            println!("  sentiment: {}", join(&o.sentiment));
            println!(
                "  not analysed (sentiment and aspects null): {}",
                if o.skipped.is_empty() {
                    "none".to_string()
                } else {
                    join(&o.skipped)
                }
            );
            println!("  complaints aimed at: {}", join(&o.blames));
            println!(
                "  mentions/  {:>5} rows in {} files: {}",
                o.mention_rows,
                o.mention_files,
                join(&o.mentions)
            );
            for (t, st, pr) in &o.split_examples {
                println!("  staff {st}, product {pr}: \"{t}\"");
            }
        }
        if !o.actions.is_empty() {
            println!(
                "  actions/  {:>5} rows (the follow-up queue, also produced to topic `feedback-actions` for a CRM): {}",
                o.actions.values().sum::<usize>(),
                join(&o.actions)
            );
        }
        if !o.themes.is_empty() {
            let mut top: Vec<(&i32, &(usize, String))> = o.themes.iter().collect();
            top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
            println!("  top themes ({} in all):", o.themes.len());
            for (id, (n, label)) in top.into_iter().take(6) {
                println!("    theme {id:>3} {n:>4} comments  {label}");
            }
        }
    }
    println!("\nquery it with DuckDB (pip install duckdb):");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT dt, count(*) AS comments, round(avg(score),1) AS avg_score FROM read_parquet('{root}/comments/**/*.parquet', hive_partitioning=true) GROUP BY dt ORDER BY dt\\\"))\""
    );
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT reason, count(*) FROM read_parquet('{root}/rejected/**/*.parquet', hive_partitioning=true) GROUP BY reason\\\"))\""
    );
}
