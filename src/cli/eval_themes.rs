//! `verbatim eval-themes`: score the online themes on labelled rows.

use std::path::PathBuf;

use anyhow::Context;

use super::{load, PrecisionArg};
use crate::config::Precision;

/// Score the online themes on JSONL rows with `text` and a ground-truth
/// `label`: one pass in input order, NMI and ARI against the labels, beside
/// k-means with k = number of labels on the same embeddings.
#[derive(clap::Args, Debug)]
pub struct EvalThemesArgs {
    /// Labelled rows, e.g. ../shared/data/labelled/banking77_train.jsonl.
    #[arg(long)]
    pub input: PathBuf,
    /// Pipeline whose `[nlp]` and `[themes]` to use.
    #[arg(long, default_value = "pipelines/demo.toml")]
    pub pipeline: PathBuf,
    /// Override the pipeline's nlp.precision.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Run int8 and fp32 and compare; exit 3 when int8's NMI or ARI is
    /// more than 1 point below fp32's.
    #[arg(long)]
    pub compare_precision: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Scores the themes and prints NMI and ARI (exit 3 when
/// `--compare-precision` finds int8 more than a point below fp32).
pub fn execute(args: EvalThemesArgs) -> anyhow::Result<()> {
    let EvalThemesArgs {
        input,
        pipeline,
        precision,
        compare_precision,
        json,
    } = args;
    let cfg = load(&pipeline)?;
    let mut nlp = cfg.nlp.clone().with_context(|| {
        format!(
            "{}: no [nlp] section. Fix: pass a pipeline with one, e.g. pipelines/demo.toml",
            pipeline.display()
        )
    })?;
    if compare_precision {
        nlp.precision = Precision::Int8;
        let int8 = crate::themes::eval::evaluate(&input, &nlp, &cfg.themes)?;
        nlp.precision = Precision::Fp32;
        let fp32 = crate::themes::eval::evaluate(&input, &nlp, &cfg.themes)?;
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
    let r = crate::themes::eval::evaluate(&input, &nlp, &cfg.themes)?;
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
    Ok(())
}
