//! The `verbatim` command line. Errors meet `anyhow` here and nowhere else.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use verbatim::config::PipelineConfig;
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
    /// format, see ../shared/data/README.md). Today: the follow-up flags.
    Eval {
        /// Labelled rows, one JSON object per line.
        #[arg(long)]
        input: PathBuf,
        /// Pipeline whose `[flags]` additions to use.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Also list every miss (false positives and negatives).
        #[arg(long)]
        misses: bool,
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
        Command::Eval {
            input,
            pipeline,
            json,
            misses,
        } => {
            let flags = match &pipeline {
                Some(p) => load(p)?.flags,
                None => Default::default(),
            };
            let r = verbatim::eval::evaluate(&input, &flags)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}: {} rows", input.display(), r.n);
                println!(
                    "{:<20} {:>9} {:>7} {:>6} {:>8}",
                    "flag", "precision", "recall", "f1", "support"
                );
                for (f, p) in &r.flags {
                    println!(
                        "{f:<20} {:>9.3} {:>7.3} {:>6.3} {:>8}",
                        p.precision, p.recall, p.f1, p.support
                    );
                }
                println!("(aspect targets, complaints, polarity and sentiment are scored once their stage exists)");
            }
            if misses {
                for m in &r.misses {
                    eprintln!("{} {} {}: {}", m.kind, m.flag, m.id, m.text);
                }
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
    }
    println!("\nquery it with DuckDB (pip install duckdb):");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT dt, count(*) AS comments, round(avg(score),1) AS avg_score FROM read_parquet('{root}/comments/**/*.parquet', hive_partitioning=true) GROUP BY dt ORDER BY dt\\\"))\""
    );
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT reason, count(*) FROM read_parquet('{root}/rejected/**/*.parquet', hive_partitioning=true) GROUP BY reason\\\"))\""
    );
}
