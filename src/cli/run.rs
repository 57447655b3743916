//! `verbatim run`: the stream job.

use std::path::PathBuf;

use anyhow::Context;

use super::{load_or_default, with_model_hint};
use crate::metrics::Metrics;
use crate::pipeline::PipelineBuilder;

/// Run the stream job: join the consumer group and write Parquet until
/// SIGINT/SIGTERM, then drain, commit and exit 0.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The pipeline file, e.g. pipelines/feedback.toml. Default: the
    /// built-in pipelines/feedback.toml (brokers localhost:9092, topic
    /// feedback, the full analysis with the set-up models).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Leave out the analysis ([nlp]): only the spine's columns are written.
    #[arg(long)]
    pub no_nlp: bool,
}

/// Runs the job until a shutdown signal, then drains and commits.
pub async fn execute(args: RunArgs) -> anyhow::Result<()> {
    let cfg = load_or_default(args.pipeline.as_deref(), args.no_nlp, None)?;
    let pipeline = args
        .pipeline
        .unwrap_or_else(|| PathBuf::from("pipelines/feedback.toml (built in)"));
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
    let nlp = cfg.nlp.clone();
    let summary = PipelineBuilder::new(cfg)
        .metrics(metrics)
        .run_kafka(shutdown_signal())
        .await
        .map_err(|e| with_model_hint(e, nlp.as_ref(), "the stream job stopped".to_string()))?;
    tracing::info!(?summary, "stopped cleanly");
    Ok(())
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
