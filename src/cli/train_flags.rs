//! `verbatim train-flags`: the learned flags ([`crate::nlp::flag_heads`]).

use std::path::PathBuf;

use anyhow::Context;

use super::load_nlp;
use super::train::{bar, licence_of, read};
use crate::comment::BUILT_IN_FLAGS;
use crate::nlp::flag_heads::{FlagHeads, FlagHeadsManifest, MANIFEST, WEIGHTS};
use crate::nlp::heads::TrainingFile;

/// Train the learned flags: one logistic regression per built-in flag over
/// the model's sentence vector, from labelled JSONL rows that carry a
/// `flags` object (hard negatives included), written beside the aspect
/// heads as `flags.toml` and `flags.safetensors`. Deterministic: the same
/// files and settings give the same bytes.
#[derive(clap::Args, Debug)]
pub struct TrainFlagsArgs {
    /// Labelled JSONL (the project's format) whose rows carry `flags`;
    /// repeat for more files. Rows without `flags` are skipped.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Only rows whose `split` is this, or that have no `split` (e.g.
    /// `train`, to keep the team's fresh test part unseen).
    #[arg(long)]
    pub split: Option<String>,
    /// Pipeline whose `[nlp]` encoder makes the training vectors.
    #[arg(long, default_value = "pipelines/demo.toml")]
    pub pipeline: PathBuf,
    /// Override the pipeline's nlp.model (a manifest in models/).
    #[arg(long)]
    pub model: Option<String>,
    /// Output folder: the model's heads folder, e.g.
    /// models/heads/multilingual-e5-small.
    #[arg(long)]
    pub out: PathBuf,
    /// L2 penalty on the standardised features.
    #[arg(long, default_value_t = 0.1)]
    pub l2: f64,
    /// Full-batch gradient steps.
    #[arg(long, default_value_t = 3000)]
    pub iterations: usize,
    /// How far positives are weighed up: each counts `(negatives /
    /// positives) ^ balance`. 1 makes both classes count the same (more
    /// recall), 0 counts every row once (more precision).
    #[arg(long, default_value_t = 1.0)]
    pub balance: f64,
}

/// Trains the flag heads and prints where they were written.
pub fn execute(args: TrainFlagsArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let nlp = load_nlp(&args.pipeline, args.model.clone())?;
    let mut texts = Vec::new();
    let mut labels: Vec<Vec<bool>> = Vec::new();
    let mut data = Vec::new();
    for path in &args.input {
        let (text, sha) = read(path)?;
        let mut rows = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a JSON row", path.display(), i + 1))?;
            if !super::in_split(&v, args.split.as_deref()) {
                continue;
            }
            let (Some(t), Some(flags)) = (v["text"].as_str(), v["flags"].as_object()) else {
                continue;
            };
            texts.push(t.to_string());
            labels.push(
                BUILT_IN_FLAGS
                    .iter()
                    .map(|f| flags.get(*f).and_then(|x| x.as_bool()).unwrap_or(false))
                    .collect(),
            );
            rows += 1;
        }
        data.push(TrainingFile {
            path: path.display().to_string(),
            sha256: sha,
            rows,
            task: match &args.split {
                Some(s) => format!("flags, rows of split {s:?} or none"),
                None => "flags".into(),
            },
            licence: licence_of(path),
        });
    }
    anyhow::ensure!(
        !texts.is_empty(),
        "no rows with `flags` in {:?}. Fix: pass labelled JSONL whose rows carry a flags object",
        args.input
    );
    let mut embed = crate::nlp::embed_operator(&nlp)?;
    let encoder = embed.describe().to_string();
    let pb = bar(texts.len() as u64, "encoding");
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(embed.embed_texts(&refs)?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let flags: Vec<String> = BUILT_IN_FLAGS.iter().map(|f| f.to_string()).collect();
    let heads = FlagHeads::fit(
        flags.clone(),
        &vectors,
        &labels,
        args.l2,
        args.iterations,
        args.balance,
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let sha = heads.save(&args.out)?;
    let counts = flags
        .iter()
        .enumerate()
        .map(|(f, name)| {
            let pos = labels.iter().filter(|l| l[f]).count();
            (name.clone(), (pos, labels.len() - pos))
        })
        .collect();
    let manifest = FlagHeadsManifest {
        model: nlp.model.clone(),
        encoder,
        flags,
        weights: WEIGHTS.into(),
        weights_sha256: sha.clone(),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        l2: args.l2,
        iterations: args.iterations,
        balance: args.balance,
        data,
        counts,
    };
    let path = args.out.join(MANIFEST);
    std::fs::write(&path, toml::to_string(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "trained flag heads on {} rows in {:.0} s ({}); wrote {} and {WEIGHTS} (sha256 {sha})",
        texts.len(),
        started.elapsed().as_secs_f64(),
        manifest.encoder,
        path.display()
    );
    Ok(())
}
