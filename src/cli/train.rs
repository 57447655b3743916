//! `verbatim train`: trains the comment-analysis heads ([`crate::nlp::heads`])
//! from labelled files and writes them, with a manifest that records the
//! data (paths, sha256, rows, licence), the command and the seed, to
//! `models/heads/<model>/`.
//!
//! - Aspect files: JSONL in the project's labelled format
//!   (`../shared/data/README.md`): `text` and `aspects: [{target, polarity}]`.
//!   Every built-in target absent from a row is labelled `absent` for it.
//! - Sentiment files: the UCI "sentiment labelled sentences" format, one
//!   `sentence<TAB>0|1` a line.
//!
//! Token vectors come from the pipeline's own encoder (the same backend and
//! precision the stream job runs), so the heads learn what they will see.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};

use super::load_nlp;
use crate::comment::TARGETS;
use crate::config::NlpConfig;
use crate::nlp::heads::{self, Heads, HeadsError, HeadsManifest, TrainingFile, CLASSES};
use crate::nlp::NlpError;

/// Errors of `verbatim train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A training file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a training row.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing to learn from.
    #[error("no training rows in {0}. Fix: pass --aspects and --sentiment files")]
    Empty(String),
    /// The model could not be loaded.
    #[error(transparent)]
    Nlp(#[from] NlpError),
    /// Encoding the training texts failed.
    #[error(transparent)]
    Encode(#[from] crate::nlp::OperatorError),
    /// Training or writing the heads failed.
    #[error(transparent)]
    Heads(#[from] HeadsError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Heads(HeadsError::Tensor(e))
    }
}

/// What to train on and how (a builder, filled from the command line).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Labelled aspect files (JSONL).
    pub aspects: Vec<PathBuf>,
    /// Labelled aspect files of which every tenth row is held out for
    /// `verbatim eval --held-out` ([`heads::is_held_out`]).
    pub hold_out: Vec<PathBuf>,
    /// Only aspect rows whose `split` is this, or that have none.
    pub split: Option<String>,
    /// Recorded in the manifest: the stage reads every clause apart
    /// ([`HeadsManifest::read_clauses`]).
    pub read_clauses: bool,
    /// A three-class sentiment head (negative, neutral, positive), also
    /// taught by every aspect row whose aspects share one polarity.
    pub neutral: bool,
    /// Sentiment files (`sentence<TAB>0|1`).
    pub sentiment: Vec<PathBuf>,
    /// Where `heads.toml` and the weights go.
    pub out: PathBuf,
    /// Passes over the aspect data.
    pub epochs: usize,
    /// Passes over the sentiment data.
    pub sentiment_epochs: usize,
    /// Seed for initialisation, dropout and shuffling.
    pub seed: u64,
    /// Members trained (seeds `seed`, `seed + 1`, …) and averaged
    /// ([`HeadsManifest::members`]).
    pub members: usize,
    /// Per-target presence thresholds recorded in the manifest
    /// ([`HeadsManifest::presence`]).
    pub presence: std::collections::BTreeMap<String, f32>,
    /// [`HeadsManifest::clause_sentiment`], recorded in the manifest.
    pub clause_sentiment: f32,
    /// The command line, recorded in the manifest.
    pub command: String,
}

impl TrainOptions {
    /// Defaults: 12 aspect epochs, 20 sentiment epochs, seed 7, one member.
    pub fn new(out: PathBuf) -> Self {
        Self {
            aspects: Vec::new(),
            hold_out: Vec::new(),
            split: None,
            read_clauses: false,
            neutral: false,
            sentiment: Vec::new(),
            out,
            epochs: 12,
            sentiment_epochs: 20,
            seed: 7,
            members: 1,
            presence: Default::default(),
            clause_sentiment: 0.0,
            command: String::new(),
        }
    }
}

/// One labelled example: text and a class per target (or a sentiment).
struct Example {
    text: String,
    label: Vec<u32>,
    /// An aspect row's comment-level sentiment (0 negative, 1 neutral, 2
    /// positive): the polarity all its aspects share, if they share one.
    sentiment: Option<u32>,
    /// How much the row counts in the loss (see [`balance_languages`]).
    weight: f32,
}

/// Where a file comes from and its licence, for the manifest.
pub(crate) fn licence_of(path: &Path) -> String {
    let p = path.display().to_string();
    if p.contains("mams") {
        "MAMS (Jiang et al., 2019), Apache-2.0".into()
    } else if p.contains("semeval16_ru") {
        "SemEval-2016 Task 5 Russian restaurants, no licence stated; research use".into()
    } else if p.contains("semeval16") {
        "SemEval-2016 Task 5, no licence stated; research use".into()
    } else if p.contains("semeval") {
        "SemEval-2014 Task 4, research use".into()
    } else if p.contains("mabsa") {
        "M-ABSA (English and machine-translated Russian), no licence stated; research use".into()
    } else if p.contains("sentiruEval15") || p.contains("sentiruEval2015") {
        "SentiRuEval-2015 restaurants, no licence stated; research use".into()
    } else if p.contains("acos") {
        "Laptop-ACOS (Cai et al., 2021), no licence stated; research use".into()
    } else if p.contains("uci_sentiment") {
        "UCI Sentiment Labelled Sentences (Kotzias et al., 2015), UCI terms".into()
    } else {
        "written by the verbatim team, Apache-2.0 (this repository)".into()
    }
}

pub(crate) fn read(path: &Path) -> Result<(String, String), TrainError> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let sha = heads::sha256_hex(&bytes);
    Ok((String::from_utf8_lossy(&bytes).into_owned(), sha))
}

fn target_index(t: &str) -> Option<usize> {
    TARGETS.iter().position(|x| *x == t)
}

/// The label of a target whose class a row does not tell: it adds nothing
/// to the loss.
const UNKNOWN: u32 = u32::MAX;

/// Reads an aspect file; with `hold_out`, its test rows are left out, and
/// with `split`, rows of another split ([`super::in_split`]). A
/// target whose label the file cannot give is masked, not taught:
/// - a file that labels service as `staff_or_process` (SemEval, SentiRuEval,
///   M-ABSA) and never names staff or process apart cannot say whether a
///   row is about staff, so none of its rows teaches staff or process (were
///   they taught absent, every row in such a file would say "never staff":
///   the Russian sets all are such files, and the heads learned that
///   Russian text is never about staff);
/// - in a file that does name them apart, a row with `staff_or_process`
///   teaches staff and process only where it names them itself;
/// - `conflict` (both polarities at once) masks its own target.
///
/// The row's other targets still teach what they say.
fn load_aspects(
    path: &Path,
    hold_out: bool,
    split: Option<&str>,
) -> Result<(Vec<Example>, TrainingFile), TrainError> {
    let (text, sha) = read(path)?;
    let mut rows = Vec::new();
    let mut row = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        row += 1;
        if hold_out && heads::is_held_out(row - 1) {
            continue;
        }
        let row_err = |message: String| TrainError::Row {
            path: path.display().to_string(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| row_err(e.to_string()))?;
        if !super::in_split(&v, split) {
            continue;
        }
        let Some(t) = v.get("text").and_then(|t| t.as_str()) else {
            return Err(row_err("no `text` string".into()));
        };
        let aspects: Vec<(String, String)> = v
            .get("aspects")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
            .map(|a| {
                let field = |k: &str| a.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                (field("target"), field("polarity"))
            })
            .collect();
        rows.push((t.to_string(), aspects));
    }
    let uses = |target: &str| rows.iter().flat_map(|r| &r.1).any(|a| a.0 == target);
    let service_only = uses("staff_or_process") && !uses("staff") && !uses("process");
    let mut out = Vec::new();
    for (text, aspects) in rows {
        let sentiment = aspects.first().and_then(|(_, first)| {
            let class = ["negative", "neutral", "positive"]
                .iter()
                .position(|c| c == first)?;
            aspects
                .iter()
                .all(|(_, p)| p == first)
                .then_some(class as u32)
        });
        let mut label = vec![0u32; TARGETS.len()];
        if service_only || aspects.iter().any(|a| a.0 == "staff_or_process") {
            for t in ["staff", "process"] {
                if let Some(ti) = target_index(t) {
                    label[ti] = UNKNOWN;
                }
            }
        }
        for (target, polarity) in aspects {
            let Some(ti) = target_index(&target) else {
                continue;
            };
            label[ti] = match CLASSES.iter().position(|c| *c == polarity) {
                Some(ci) => ci as u32,
                None if polarity == "conflict" => UNKNOWN,
                None => continue,
            };
        }
        out.push(Example {
            text,
            label,
            sentiment,
            weight: 1.0,
        });
    }
    let file = TrainingFile {
        path: path.display().to_string(),
        sha256: sha,
        rows: out.len(),
        task: "aspects".into(),
        licence: licence_of(path),
    };
    Ok((out, file))
}

fn load_sentiment(path: &Path) -> Result<(Vec<Example>, TrainingFile), TrainError> {
    let (text, sha) = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((t, l)) = line.rsplit_once('\t') else {
            continue;
        };
        let label = match l.trim() {
            "0" => 0,
            "1" => 1,
            other => {
                return Err(TrainError::Row {
                    path: path.display().to_string(),
                    line: i + 1,
                    message: format!("label `{other}`, expected 0 or 1"),
                })
            }
        };
        out.push(Example {
            text: t.trim().to_string(),
            label: vec![label],
            sentiment: None,
            weight: 1.0,
        });
    }
    let file = TrainingFile {
        path: path.display().to_string(),
        sha256: sha,
        rows: out.len(),
        task: "sentiment".into(),
        licence: licence_of(path),
    };
    Ok((out, file))
}

/// Per-class loss weights of the sentiment examples: all 1 with two classes
/// (as the heads were always trained); with three, each class weighs its
/// share inversely, so the rare neutral class is not drowned out.
fn class_weights(items: &[(usize, u32, f32)], classes: usize) -> Vec<f32> {
    if classes == 2 {
        return vec![1.0; 2];
    }
    let mut total = vec![0f32; classes];
    for &(_, c, w) in items {
        total[c as usize] += w;
    }
    let all: f32 = total.iter().sum();
    total
        .iter()
        .map(|&t| {
            if t > 0.0 {
                all / (classes as f32 * t)
            } else {
                0.0
            }
        })
        .collect()
}

/// A small deterministic generator (SplitMix64): training must be
/// byte-reproducible and candle's CPU generator cannot be seeded.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A dropout mask of `shape`: 0 with probability `p`, else `1 / (1 - p)`.
    fn dropout_mask(&mut self, shape: &[usize], p: f32) -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let keep = 1.0 / (1.0 - p);
        let v: Vec<f32> = (0..n)
            .map(|_| if self.unit() < p { 0.0 } else { keep })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} {bar:40} {pos}/{len} {elapsed}") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb
}

/// Token vectors of every text, from the pipeline's encoder (the embed
/// stage's own batching), with the vector size and the encoder's name.
pub fn encode_all(
    cfg: &NlpConfig,
    texts: &[&str],
) -> Result<(Vec<Vec<f32>>, usize, String), TrainError> {
    let mut embed = crate::nlp::embed_operator(cfg)?;
    let (dim, encoder) = (embed.dim(), embed.describe().to_string());
    let pb = bar(texts.len() as u64, "encoding");
    let tokens = if cfg.encode_clauses && !cfg.encode_whole {
        // The stage encodes a text with contrastive clauses as its pieces
        // only: the heads learn from the vectors they will read.
        embed
            .keep_tokens(true)
            .encode_clauses(true)
            .encode_whole(false)
            .comment_token_vectors(texts, &mut |n| pb.inc(n as u64))?
    } else {
        let encoded = embed.encode_texts(texts, true, &mut |n| pb.inc(n as u64))?;
        encoded.into_iter().map(|e| e.tokens).collect()
    };
    pb.finish_and_clear();
    Ok((tokens, dim, encoder))
}

/// Weighs the aspect files' rows so that every language carries the same
/// total weight: with English and Russian sets of different sizes, the
/// larger language would otherwise set the polarity boundary both share. A
/// file's language is the one most of its rows are detected in (among
/// `languages`); with one language every weight stays exactly 1.
fn balance_languages(files: Vec<Vec<Example>>, languages: &[String]) -> Vec<Example> {
    let detector = crate::nlp::language::LanguageDetector::new(languages);
    let mut per_language: std::collections::BTreeMap<&str, usize> = Default::default();
    let file_language: Vec<&str> = files
        .iter()
        .map(|rows| {
            let mut votes: std::collections::BTreeMap<&str, usize> = Default::default();
            for r in rows {
                let lang = detector.detect(&r.text).map_or("und", |d| d.0);
                *votes.entry(lang).or_default() += 1;
            }
            let lang = votes
                .into_iter()
                .max_by_key(|&(_, n)| n)
                .map_or("und", |(l, _)| l);
            *per_language.entry(lang).or_default() += rows.len();
            lang
        })
        .collect();
    let total: usize = per_language.values().sum();
    let summary: Vec<String> = per_language
        .iter()
        .map(|(l, n)| format!("{l} {n} rows"))
        .collect();
    tracing::info!(languages = %summary.join(", "), "aspect rows weighed so that every language counts the same");
    files
        .into_iter()
        .zip(file_language)
        .flat_map(|(rows, lang)| {
            let weight = total as f32 / (per_language.len() * per_language[lang]) as f32;
            rows.into_iter().map(move |r| Example { weight, ..r })
        })
        .collect()
}

/// Weighted cross-entropy: `logits [N, K]`, `labels` (N classes, or
/// [`UNKNOWN`] for an entry that adds nothing), each entry's own weight
/// `scale [N]` times its class's weight `weights [K]`.
fn weighted_ce(
    logits: &Tensor,
    labels: &[u32],
    scale: &[f32],
    weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let known: Vec<f32> = labels
        .iter()
        .zip(scale)
        .map(|(&l, &s)| if l == UNKNOWN { 0.0 } else { s })
        .collect();
    let labels: Vec<u32> = labels
        .iter()
        .map(|&l| if l == UNKNOWN { 0 } else { l })
        .collect();
    let targets = Tensor::new(labels.as_slice(), logits.device())?;
    let known = Tensor::new(known.as_slice(), logits.device())?;
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let w = (weights.index_select(&targets, 0)? * known)?;
    // At least one known entry per step in practice; never divide by zero.
    let total = w.sum_all()?.to_scalar::<f32>()?.max(1e-6);
    (picked * &w)?.sum_all()?.neg()? / f64::from(total)
}

/// Trains heads and writes them to `opts.out`. Returns the manifest.
pub fn train(cfg: &NlpConfig, opts: &TrainOptions) -> Result<HeadsManifest, TrainError> {
    let mut data = Vec::new();
    let mut aspect_files = Vec::new();
    let files = opts.aspects.iter().map(|p| (p, false));
    for (p, hold_out) in files.chain(opts.hold_out.iter().map(|p| (p, true))) {
        let (rows, mut f) = load_aspects(p, hold_out, opts.split.as_deref())?;
        if hold_out {
            f.task = format!("aspects, every {}th row held out", heads::HOLD_OUT_EVERY);
        }
        aspect_files.push(rows);
        data.push(f);
    }
    let aspect_rows = balance_languages(aspect_files, &cfg.languages);
    let mut sentiment_rows = Vec::new();
    for p in &opts.sentiment {
        let (rows, f) = load_sentiment(p)?;
        sentiment_rows.extend(rows);
        data.push(f);
    }
    if aspect_rows.is_empty() || sentiment_rows.is_empty() {
        return Err(TrainError::Empty(
            data.iter()
                .map(|d| d.path.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let texts: Vec<&str> = aspect_rows
        .iter()
        .chain(&sentiment_rows)
        .map(|e| e.text.as_str())
        .collect();
    let (vectors, dim, encoder) = encode_all(cfg, &texts)?;

    // Sentiment examples: (row of `vectors`, class, weight). The sentiment
    // files say negative or positive; with a neutral class, aspect rows
    // whose aspects share one polarity say it too.
    let classes = if opts.neutral { 3 } else { 2 };
    let mut sentiment_items: Vec<(usize, u32, f32)> = sentiment_rows
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let class = if opts.neutral {
                r.label[0] * 2
            } else {
                r.label[0]
            };
            (aspect_rows.len() + j, class, 1.0)
        })
        .collect();
    if opts.neutral {
        sentiment_items.extend(
            aspect_rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.sentiment.map(|s| (i, s, r.weight))),
        );
    }
    let sent_w = Tensor::new(
        class_weights(&sentiment_items, classes).as_slice(),
        &Device::Cpu,
    )?;

    let shared = MemberData {
        aspect_rows: &aspect_rows,
        vectors: &vectors,
        sentiment_items: &sentiment_items,
        sent_w: &sent_w,
        dim,
        classes,
    };
    // Member m trains from seed + m: member 0 is what one member gives.
    let members = (0..opts.members.max(1))
        .map(|m| train_member(&shared, opts.seed + m as u64, opts))
        .collect::<Result<Vec<_>, _>>()?;
    write(&members, opts, data, &encoder, cfg)
}

/// What every member of the heads trains on.
struct MemberData<'a> {
    aspect_rows: &'a [Example],
    /// Token vectors: the aspect rows', then the sentiment files'.
    vectors: &'a [Vec<f32>],
    /// (row of `vectors`, class, weight).
    sentiment_items: &'a [(usize, u32, f32)],
    sent_w: &'a Tensor,
    dim: usize,
    classes: usize,
}

/// Trains one member of the heads from `seed`: the aspect head, then the
/// sentiment head, on the same vectors as every other member.
fn train_member(
    d: &MemberData,
    seed: u64,
    opts: &TrainOptions,
) -> Result<(Heads, candle_nn::VarMap), TrainError> {
    let MemberData {
        aspect_rows,
        vectors,
        sentiment_items,
        sent_w,
        dim,
        classes,
    } = *d;
    let aspect_vecs = &vectors[..aspect_rows.len()];
    let mut rng = Rng(seed);
    let (model, varmap) = heads::trainable(dim, classes, || rng.unit())?;
    if classes != 2 {
        // The aspect head trains on the same random stream whatever the
        // sentiment head's size (its weights are drawn last): carry on from
        // where a two-class initialisation leaves the generator.
        rng = Rng(seed);
        heads::trainable(dim, 2, || rng.unit())?;
    }
    let params = ParamsAdamW {
        lr: 2e-3,
        weight_decay: 1e-2,
        ..ParamsAdamW::default()
    };
    // Negatives are what verbatim exists to find; weigh them up.
    let class_w = Tensor::new(&[1.0f32, 2.0, 1.0, 1.5], &Device::Cpu)?;

    let mut opt = AdamW::new(varmap.all_vars(), params.clone())?;
    let pb = bar(
        (opts.epochs * aspect_rows.len().div_ceil(32)) as u64,
        "aspects",
    );
    for _ in 0..opts.epochs {
        let mut order: Vec<usize> = (0..aspect_rows.len()).collect();
        rng.shuffle(&mut order);
        for idx in order.chunks(32) {
            let seqs: Vec<&[f32]> = idx.iter().map(|&i| aspect_vecs[i].as_slice()).collect();
            let (x, mask, _) = heads::pad_seqs(&seqs, dim)?;
            let keep = rng.dropout_mask(x.dims(), 0.1)?;
            let (logits, _) = model.aspect_logits(&x, &mask, Some(&keep))?;
            let labels: Vec<u32> = idx
                .iter()
                .flat_map(|&i| aspect_rows[i].label.iter().copied())
                .collect();
            let scale: Vec<f32> = idx
                .iter()
                .flat_map(|&i| std::iter::repeat_n(aspect_rows[i].weight, TARGETS.len()))
                .collect();
            let loss = weighted_ce(
                &logits.reshape(((), CLASSES.len()))?,
                &labels,
                &scale,
                &class_w,
            )?;
            opt.backward_step(&loss)?;
            pb.inc(1);
        }
    }
    pb.finish_and_clear();

    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let pb = bar(
        (opts.sentiment_epochs * sentiment_items.len().div_ceil(64)) as u64,
        "sentiment",
    );
    for _ in 0..opts.sentiment_epochs {
        let mut order: Vec<usize> = (0..sentiment_items.len()).collect();
        rng.shuffle(&mut order);
        for idx in order.chunks(64) {
            let items: Vec<&(usize, u32, f32)> = idx.iter().map(|&i| &sentiment_items[i]).collect();
            let seqs: Vec<&[f32]> = items.iter().map(|it| vectors[it.0].as_slice()).collect();
            let (x, mask, _) = heads::pad_seqs(&seqs, dim)?;
            let logits = model.sentiment_logits(&x, &mask)?;
            let labels: Vec<u32> = items.iter().map(|it| it.1).collect();
            let scale: Vec<f32> = items.iter().map(|it| it.2).collect();
            let loss = weighted_ce(&logits, &labels, &scale, sent_w)?;
            opt.backward_step(&loss)?;
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok((model, varmap))
}

fn write(
    members: &[(Heads, candle_nn::VarMap)],
    opts: &TrainOptions,
    data: Vec<TrainingFile>,
    encoder: &str,
    cfg: &NlpConfig,
) -> Result<HeadsManifest, TrainError> {
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| HeadsError::Write { path, source }
    };
    std::fs::create_dir_all(&opts.out).map_err(write_err(&opts.out))?;
    let weights = "heads.safetensors";
    let wpath = opts.out.join(weights);
    // Sorted names, so the same weights give the same bytes; with several
    // members each under its prefix (`heads::member_prefix`).
    let mut names: Vec<(String, Tensor)> = Vec::new();
    for (m, (_, varmap)) in members.iter().enumerate() {
        let prefix = if members.len() > 1 {
            format!("{}.", heads::member_prefix(m))
        } else {
            String::new()
        };
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned var map".into()))?;
        for (k, v) in data.iter() {
            names.push((format!("{prefix}{k}"), v.as_tensor().to_dtype(DType::F32)?));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let Some((model, _)) = members.first() else {
        return Err(TrainError::Empty("no member was trained".into()));
    };
    candle_core::safetensors::save(&names.into_iter().collect(), &wpath)?;
    let bytes = std::fs::read(&wpath).map_err(write_err(&wpath))?;
    let manifest = HeadsManifest {
        model: cfg.model.clone(),
        encoder: encoder.to_string(),
        targets: model.targets.clone(),
        neutral_band: 0.5,
        min_presence: 0.5,
        presence: opts.presence.clone(),
        clause_sentiment: opts.clause_sentiment,
        sentiment_classes: model.sentiment_classes,
        read_clauses: opts.read_clauses,
        members: members.len(),
        weights: weights.into(),
        weights_sha256: heads::sha256_hex(&bytes),
        command: opts.command.clone(),
        seed: opts.seed,
        epochs: opts.epochs,
        data,
        measured: Default::default(),
    };
    let mpath = opts.out.join("heads.toml");
    let text = format!(
        "# Comment-analysis heads: made by `verbatim train` (src/cli/train.rs); do not edit by hand.\n{}",
        toml::to_string_pretty(&manifest)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
    );
    std::fs::write(&mpath, text).map_err(write_err(&mpath))?;
    Ok(manifest)
}

/// Train the comment-analysis heads (aspects, sentiment) on labelled
/// files with the pipeline's encoder, and write them with a manifest
/// (data, sha256, command) to --out. The committed heads are made by the
/// command in models/heads/README.md.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Pipeline whose `[nlp]` encoder makes the training vectors.
    #[arg(long, default_value = "pipelines/demo.toml")]
    pub pipeline: PathBuf,
    /// Aspect-labelled JSONL (the project's format); repeat for more files.
    #[arg(long, required = true)]
    pub aspects: Vec<PathBuf>,
    /// Override the pipeline's nlp.model (a manifest in models/, e.g.
    /// multilingual-e5-small).
    #[arg(long)]
    pub model: Option<String>,
    /// Aspect-labelled JSONL of which every tenth row is held out (never
    /// trained on) for `verbatim eval --held-out`; repeat for more files.
    #[arg(long)]
    pub hold_out: Vec<PathBuf>,
    /// Only aspect rows whose `split` is this, or that have no `split`
    /// (e.g. `train`, to keep the team's fresh test part unseen).
    #[arg(long)]
    pub split: Option<String>,
    /// Record in the manifest that the analysis stage reads every clause
    /// of a sentence apart (presence from the sentence or any clause,
    /// polarity from the target's clause); measured per model, see README
    /// "Comment analysis". The weights do not depend on it.
    #[arg(long)]
    pub read_clauses: bool,
    /// Train a three-class sentiment head (negative, neutral, positive)
    /// instead of negative/positive with a neutral band: the --sentiment
    /// files still teach negative and positive, and every aspect row whose
    /// aspects all share one polarity teaches that polarity for the comment.
    #[arg(long)]
    pub neutral: bool,
    /// Sentiment file, `sentence<TAB>0|1` a line; repeat for more files.
    #[arg(long, required = true)]
    pub sentiment: Vec<PathBuf>,
    /// Output folder, e.g. models/heads/all-MiniLM-L6-v2.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the aspect data.
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Seed for initialisation, dropout and shuffling.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Heads to train alike from seeds seed, seed+1, … on the same vectors
    /// and average at inference (one member moves with its seed alone).
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// A target's presence threshold, `target=p` (0-1), recorded in the
    /// manifest in place of 0.5 for that target; repeat for more targets.
    /// Choose it on dev sets with `verbatim eval --presence` (the weights do
    /// not depend on it).
    #[arg(long, value_parser = parse_presence)]
    pub presence: Vec<(String, f32)>,
    /// Weight (0-1) of the sentiment head over an aspect's clause in the
    /// aspect's polarity, recorded in the manifest (0: the aspect head
    /// alone). Choose it with `verbatim eval --clause-sentiment`; the
    /// weights do not depend on it.
    #[arg(long, default_value_t = 0.0, value_parser = parse_weight)]
    pub clause_sentiment: f32,
}

/// A weight from 0 to 1.
pub fn parse_weight(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(w) if (0.0..=1.0).contains(&w) => Ok(w),
        _ => Err(format!("{s:?} is not a weight from 0 to 1, e.g. 0.3")),
    }
}

/// `target=p`, a built-in target and a threshold in (0, 1].
pub fn parse_presence(s: &str) -> Result<(String, f32), String> {
    let (t, p) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not target=threshold, e.g. product=0.65"))?;
    let p: f32 = p
        .trim()
        .parse()
        .map_err(|_| format!("{p:?} is not a number, e.g. product=0.65"))?;
    let one = std::collections::BTreeMap::from([(t.trim().to_string(), p)]);
    match crate::config::presence_problem(&one, &crate::comment::TARGETS) {
        Some(problem) => Err(format!("{s:?} {problem}")),
        None => Ok((t.trim().to_string(), p)),
    }
}

/// Trains the heads and prints where they were written.
pub fn execute(args: TrainArgs) -> anyhow::Result<()> {
    let TrainArgs {
        pipeline,
        aspects,
        model,
        hold_out,
        split,
        read_clauses,
        neutral,
        sentiment,
        out,
        epochs,
        seed,
        members,
        presence,
        clause_sentiment,
    } = args;
    let nlp = load_nlp(&pipeline, model)?;
    let mut opts = TrainOptions::new(out.clone());
    opts.aspects = aspects;
    opts.hold_out = hold_out;
    opts.split = split;
    opts.read_clauses = read_clauses;
    opts.neutral = neutral;
    opts.sentiment = sentiment;
    opts.epochs = epochs;
    opts.seed = seed;
    opts.members = members;
    opts.presence = presence.into_iter().collect();
    opts.clause_sentiment = clause_sentiment;
    opts.command = std::env::args()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
        .replace(&*std::env::var("HOME").unwrap_or_default(), "~");
    let t = std::time::Instant::now();
    let m = train(&nlp, &opts).context("training failed")?;
    println!(
        "trained heads on {} files in {:.0} s ({}); wrote {}/heads.toml and {} (sha256 {})",
        m.data.len(),
        t.elapsed().as_secs_f64(),
        m.encoder,
        out.display(),
        m.weights,
        m.weights_sha256
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_target_equals_threshold() {
        assert_eq!(
            parse_presence("product=0.65"),
            Ok(("product".to_string(), 0.65))
        );
        for bad in ["product", "product=high", "produce=0.6", "product=2"] {
            assert!(parse_presence(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        Rng(3).shuffle(&mut a);
        Rng(3).shuffle(&mut b);
        assert_eq!(a, b);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_ne!(a, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn weighted_loss_prefers_the_right_class() {
        let w = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let right = Tensor::new(&[[3.0f32, -3.0]], &Device::Cpu).unwrap();
        let wrong = Tensor::new(&[[-3.0f32, 3.0]], &Device::Cpu).unwrap();
        let a = weighted_ce(&right, &[0], &[1.0], &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let b = weighted_ce(&wrong, &[0], &[1.0], &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(a < 0.01 && b > 5.0, "{a} {b}");
        // An unknown entry adds nothing: the wrong row masked leaves the
        // right row's loss.
        let both = Tensor::new(&[[3.0f32, -3.0], [-3.0, 3.0]], &Device::Cpu).unwrap();
        let masked = weighted_ce(&both, &[0, UNKNOWN], &[1.0, 1.0], &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((masked - a).abs() < 1e-6, "{masked} {a}");
    }

    #[test]
    fn aspect_rows_parse_and_ambiguous_targets_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let x = "{\"text\":\"x\",\"aspects\":[{\"target\":\"product\",\"polarity\":\"negative\"},{\"target\":\"nonsense\",\"polarity\":\"positive\"}]}\n\n";
        let y = "{\"text\":\"y\",\"aspects\":[{\"target\":\"product\",\"polarity\":\"negative\"},{\"target\":\"staff_or_process\",\"polarity\":\"positive\"}]}\n";
        let z = "{\"text\":\"z\",\"aspects\":[{\"target\":\"price\",\"polarity\":\"conflict\"}]}\n";
        let w = "{\"text\":\"w\",\"aspects\":[{\"target\":\"staff\",\"polarity\":\"positive\"}]}\n";
        let u = UNKNOWN;
        // A file that only knows `staff_or_process` teaches no row staff or
        // process; unknown targets are ignored; conflict masks its target.
        std::fs::write(&p, [x, y, z].concat()).unwrap();
        let (rows, f) = load_aspects(&p, false, None).unwrap();
        assert_eq!(f.rows, 3);
        assert_eq!(rows[0].label, vec![u, 1, u, 0, 0, 0, 0]);
        assert_eq!(rows[1].label, vec![u, 1, u, 0, 0, 0, 0]);
        assert_eq!(rows[2].label, vec![u, 0, u, u, 0, 0, 0]);
        // A file that names staff apart teaches staff absent where a row
        // does not name it.
        std::fs::write(&p, [x, w, z].concat()).unwrap();
        let (rows, _) = load_aspects(&p, false, None).unwrap();
        assert_eq!(rows[0].label, vec![0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(rows[1].label, vec![3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rows[2].label, vec![0, 0, 0, u, 0, 0, 0]);
        let both = "{\"text\":\"v\",\"aspects\":[{\"target\":\"staff\",\"polarity\":\"negative\"},{\"target\":\"staff_or_process\",\"polarity\":\"positive\"}]}\n";
        std::fs::write(&p, [w, y, both].concat()).unwrap();
        let (rows, _) = load_aspects(&p, false, None).unwrap();
        assert_eq!(rows[0].label, vec![3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rows[1].label, vec![u, 1, u, 0, 0, 0, 0]);
        assert_eq!(rows[2].label, vec![1, 0, u, 0, 0, 0, 0]);
        std::fs::write(&p, "{\"aspects\":[]}\n").unwrap();
        assert!(matches!(
            load_aspects(&p, false, None),
            Err(TrainError::Row { line: 1, .. })
        ));
    }

    #[test]
    fn comment_sentiment_is_the_polarity_every_aspect_shares() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let row = |pols: &[&str], split: &str| {
            let a: Vec<String> = pols
                .iter()
                .map(|p| format!("{{\"target\":\"product\",\"polarity\":\"{p}\"}}"))
                .collect();
            format!(
                "{{\"text\":\"t\",\"split\":\"{split}\",\"aspects\":[{}]}}\n",
                a.join(",")
            )
        };
        let text = [
            row(&["negative", "negative"], "train"),
            row(&["neutral"], "train"),
            row(&["positive"], "train"),
            row(&["positive", "negative"], "train"),
            row(&["conflict"], "train"),
            row(&[], "train"),
            row(&["positive"], "test"),
        ]
        .concat();
        std::fs::write(&p, text).unwrap();
        let (rows, _) = load_aspects(&p, false, Some("train")).unwrap();
        let s: Vec<Option<u32>> = rows.iter().map(|r| r.sentiment).collect();
        assert_eq!(s, vec![Some(0), Some(1), Some(2), None, None, None]);
        // With three classes each class weighs inversely to its share.
        let items = [
            (0, 0, 1.0),
            (1, 0, 1.0),
            (2, 0, 1.0),
            (3, 1, 1.0),
            (4, 2, 2.0),
        ];
        let w = class_weights(&items, 3);
        assert!((w[0] * 3.0 - w[1]).abs() < 1e-6 && (w[1] - w[2] * 2.0).abs() < 1e-6);
        assert!((w[0] * 3.0 + w[1] + w[2] * 2.0 - 6.0).abs() < 1e-5);
        assert_eq!(class_weights(&items, 2), vec![1.0, 1.0]);
    }

    #[test]
    fn held_out_rows_are_never_trained_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let lines: String = (0..25)
            .map(|i| format!("{{\"text\":\"t{i}\",\"aspects\":[]}}\n\n"))
            .collect();
        std::fs::write(&p, lines).unwrap();
        let (all, _) = load_aspects(&p, false, None).unwrap();
        let (train, _) = load_aspects(&p, true, None).unwrap();
        assert_eq!(all.len(), 25);
        let kept: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(kept.len(), 22);
        for held in ["t0", "t10", "t20"] {
            assert!(!kept.contains(&held), "{held} was trained on");
        }
    }
}
