//! The comment-analysis heads: small trained layers over the encoder's
//! last-layer token vectors (the same forward pass that makes the comment
//! embedding, so analysis costs no second pass through the transformer).
//!
//! - **Aspects**: one learned query per target attends over a sentence's
//!   tokens (`softmax(q_t · tanh(W x_i + b))`); the attended vector goes
//!   through a per-target linear layer to four classes: absent, negative,
//!   neutral, positive. The attention weights say which clause the target
//!   was read from.
//! - **Sentiment**: a linear layer over the mean token vector of the whole
//!   comment, two classes (negative, positive); the score is
//!   `p(positive) - p(negative)` and scores inside the manifest's neutral
//!   band are labelled neutral.
//!
//! The same code trains (`verbatim train`, `cli::train`) and runs them
//! ([`crate::nlp::analyze`]); weights live in `models/heads/<model>/` as
//! safetensors next to a manifest that records how they were made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::comment::TARGETS;

/// One row in this many of a file given to `verbatim train --hold-out` is
/// never trained on, and `verbatim eval --held-out` scores only those rows.
pub const HOLD_OUT_EVERY: usize = 10;

/// Whether row `index` (0-based, counting non-empty lines) of a held-out
/// file is in its test part.
pub fn is_held_out(index: usize) -> bool {
    index.is_multiple_of(HOLD_OUT_EVERY)
}

/// Aspect classes, in the order the heads output them.
pub const CLASSES: [&str; 4] = ["absent", "negative", "neutral", "positive"];

/// Errors loading or running the heads.
#[derive(Debug, thiserror::Error)]
pub enum HeadsError {
    /// The manifest is missing or unreadable.
    #[error("reading heads manifest {path}: {message}. Fix: check out models/heads/ from the repository, or train heads with `verbatim train` (see README)")]
    Manifest {
        /// The manifest path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The weights file does not match the manifest's sha256.
    #[error("heads weights {path}: sha256 {found}, the manifest says {expected}. Fix: restore the file from git, or retrain with the command in the manifest")]
    Checksum {
        /// The weights file.
        path: String,
        /// What the manifest records.
        expected: String,
        /// What the file hashes to.
        found: String,
    },
    /// The heads were trained for another model.
    #[error("heads in {path} were trained on {trained} vectors, the pipeline's model is {model}. Fix: train heads for this model with `verbatim train`")]
    WrongModel {
        /// The manifest path.
        path: String,
        /// The model the heads were trained on.
        trained: String,
        /// The pipeline's model.
        model: String,
    },
    /// The weights could not be read or a tensor operation failed.
    #[error("heads: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Writing trained heads failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A training-data file the heads were trained on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingFile {
    /// Path as given to `verbatim train` (relative to the repository).
    pub path: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Rows used.
    pub rows: usize,
    /// What it taught: `aspects` or `sentiment`.
    pub task: String,
    /// Where it comes from and its licence.
    pub licence: String,
}

/// `heads.toml`: what the heads are and how they were made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadsManifest {
    /// The embedding model whose token vectors the heads read.
    pub model: String,
    /// `backend precision` the training vectors came from.
    pub encoder: String,
    /// Output order of the aspect head.
    pub targets: Vec<String>,
    /// With a two-class sentiment head, scores with `|score| <
    /// neutral_band` are labelled neutral (a three-class head labels by
    /// its likeliest class and ignores it).
    pub neutral_band: f32,
    /// An aspect is reported when `1 - p(absent)` reaches this.
    pub min_presence: f32,
    /// Per-target thresholds that replace `min_presence` for their target,
    /// chosen on dev sets (`verbatim train --presence product=0.65`;
    /// README, "Comment analysis"). Manifests written before the key
    /// existed have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub presence: BTreeMap<String, f32>,
    /// Weight `w` (0-1) of the sentiment head, read over an aspect's clause,
    /// in the aspect's polarity: `(1 - w) · the aspect head's polarity
    /// (absent left out) + w · the clause's sentiment`. Chosen on dev sets
    /// (`verbatim train --clause-sentiment 0.3`; README, "Comment
    /// analysis"); manifests written before the key existed have 0 (the
    /// aspect head alone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clause_sentiment: f32,
    /// Classes of the sentiment head: 2 (negative, positive; a score within
    /// `neutral_band` of 0 is neutral) or 3 (negative, neutral, positive:
    /// the likeliest class is the label). Manifests written before the key
    /// existed have 2; [`load`] checks it against the weights.
    #[serde(default = "two")]
    pub sentiment_classes: usize,
    /// Read every clause of a sentence apart: a target one clause names is
    /// reported even when the whole sentence's score misses it, and its
    /// polarity is always its clause's. When false (manifests written before
    /// the key existed), only clauses joined by a contrastive conjunction
    /// give the polarity, and presence is the sentence's. Chosen per model by
    /// measurement (`verbatim train --read-clauses`; README, "Comment
    /// analysis").
    #[serde(default)]
    pub read_clauses: bool,
    /// Members averaged: heads trained alike on the same vectors from seeds
    /// `seed`, `seed + 1`, …, whose probabilities are averaged. One member
    /// moves a lot with its seed alone (README.md, "Comment analysis");
    /// the average less. Manifests written before the key existed have 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub members: usize,
    /// The weights file, beside the manifest.
    pub weights: String,
    /// Its sha256.
    pub weights_sha256: String,
    /// The command that made these weights.
    pub command: String,
    /// Training settings.
    pub seed: u64,
    /// Passes over the aspect data.
    pub epochs: usize,
    /// Data the heads learnt from.
    pub data: Vec<TrainingFile>,
    /// Numbers measured right after training (held-out files), for the record.
    #[serde(default)]
    pub measured: BTreeMap<String, f64>,
}

fn two() -> usize {
    2
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

/// A comment's sentiment as the head reads it: probabilities of negative,
/// neutral (0 for a two-class head) and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentimentProbs(pub [f32; 3]);

impl SentimentProbs {
    /// `p(positive) - p(negative)`, in `[-1, 1]`.
    pub fn score(&self) -> f32 {
        self.0[2] - self.0[0]
    }

    /// From a softmax over 2 (negative, positive) or 3 classes.
    fn from_softmax(p: &[f32]) -> Self {
        match p {
            [n, q] => Self([*n, 0.0, *q]),
            [n, u, q, ..] => Self([*n, *u, *q]),
            _ => Self([0.0, 1.0, 0.0]),
        }
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One trained set of layers: the aspect head's attention and output, the
/// sentiment head.
struct Layers {
    key_w: Tensor,
    key_b: Tensor,
    queries: Tensor,
    out_w: Tensor,
    out_b: Tensor,
    sent_w: Tensor,
    sent_b: Tensor,
}

/// The trained layers: one member, or several trained alike from different
/// seeds whose probabilities are averaged ([`HeadsManifest::members`]).
pub struct Heads {
    members: Vec<Layers>,
    /// Vector size.
    pub dim: usize,
    /// Targets, in output order.
    pub targets: Vec<String>,
    /// Classes of the sentiment head (2 or 3).
    pub sentiment_classes: usize,
}

/// What the aspect head says about a batch of token sequences.
pub struct AspectOutput {
    /// `[rows][target][class]` probabilities.
    pub probs: Vec<Vec<[f32; 4]>>,
    /// `[rows][target][token]` attention weights (padding excluded).
    pub attention: Vec<Vec<Vec<f32>>>,
}

impl Heads {
    /// Fresh heads for training (`vb` from a [`VarMap`]), or loaded ones;
    /// `sentiment_classes` is 2 or 3.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        targets: Vec<String>,
        sentiment_classes: usize,
    ) -> Result<Self, HeadsError> {
        Ok(Self {
            members: vec![Layers::new(&vb, dim, targets.len(), sentiment_classes)?],
            dim,
            targets,
            sentiment_classes,
        })
    }

    /// Heads of `members` members, each under the prefix `member{i}.` of
    /// `vb` (one member: no prefix, as [`Heads::new`]).
    pub fn with_members(
        vb: VarBuilder,
        members: usize,
        dim: usize,
        targets: Vec<String>,
        sentiment_classes: usize,
    ) -> Result<Self, HeadsError> {
        if members <= 1 {
            return Self::new(vb, dim, targets, sentiment_classes);
        }
        let members = (0..members)
            .map(|i| {
                Layers::new(
                    &vb.pp(member_prefix(i)),
                    dim,
                    targets.len(),
                    sentiment_classes,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            members,
            dim,
            targets,
            sentiment_classes,
        })
    }

    /// How many members are averaged.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The one member that training updates (training builds heads of one
    /// member each, [`trainable`]).
    fn first(&self) -> &Layers {
        &self.members[0]
    }
}

/// The tensor-name prefix of member `i` in a weights file of several.
pub fn member_prefix(i: usize) -> String {
    format!("member{i}")
}

impl Layers {
    fn new(
        vb: &VarBuilder,
        dim: usize,
        t: usize,
        sentiment_classes: usize,
    ) -> Result<Self, HeadsError> {
        let k = CLASSES.len();
        let scale = (1.0 / dim as f64).sqrt();
        let uniform = Init::Uniform {
            lo: -scale,
            up: scale,
        };
        Ok(Self {
            key_w: vb.get_with_hints((dim, dim), "key.weight", uniform)?,
            key_b: vb.get_with_hints(dim, "key.bias", Init::Const(0.0))?,
            queries: vb.get_with_hints(
                (t, dim),
                "queries",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.05,
                },
            )?,
            out_w: vb.get_with_hints((t, dim, k), "out.weight", uniform)?,
            out_b: vb.get_with_hints((t, k), "out.bias", Init::Const(0.0))?,
            sent_w: vb.get_with_hints((dim, sentiment_classes), "sentiment.weight", uniform)?,
            sent_b: vb.get_with_hints(sentiment_classes, "sentiment.bias", Init::Const(0.0))?,
        })
    }
}

impl Layers {
    /// See [`Heads::aspect_logits`].
    fn aspect_logits(
        &self,
        x: &Tensor,
        mask: &Tensor,
        keep: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor), HeadsError> {
        let x = match keep {
            Some(k) => (x * k)?,
            None => x.clone(),
        };
        let keys = x
            .broadcast_matmul(&self.key_w)?
            .broadcast_add(&self.key_b)?
            .tanh()?;
        // [B, L, T] -> [B, T, L]
        let scores = keys
            .broadcast_matmul(&self.queries.t()?)?
            .transpose(1, 2)?
            .contiguous()?;
        let bias = ((mask.unsqueeze(1)? - 1.0)? * 1e9)?;
        let attn = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&bias)?)?;
        // [B, T, L] x [B, L, D] -> [B, T, D] -> [T, B, D]
        let pooled = attn.matmul(&x)?.transpose(0, 1)?.contiguous()?;
        // [T, B, D] x [T, D, 4] -> [T, B, 4] -> [B, T, 4]
        let logits = pooled
            .matmul(&self.out_w)?
            .broadcast_add(&self.out_b.unsqueeze(1)?)?
            .transpose(0, 1)?
            .contiguous()?;
        Ok((logits, attn))
    }

    /// See [`Heads::sentiment_logits`].
    fn sentiment_logits(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor, HeadsError> {
        let m = mask.unsqueeze(2)?;
        let sum = x.broadcast_mul(&m)?.sum(1)?;
        let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = sum.broadcast_div(&count)?;
        Ok(mean.matmul(&self.sent_w)?.broadcast_add(&self.sent_b)?)
    }
}

/// Element-wise mean of equally long vectors (the members' outputs).
fn mean_of(parts: &[Vec<f32>]) -> Vec<f32> {
    let n = parts.len().max(1) as f32;
    let mut out = vec![0f32; parts.first().map_or(0, Vec::len)];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v / n;
        }
    }
    out
}

impl Heads {
    /// Aspect logits `[B, T, 4]` and attention `[B, T, L]` for token vectors
    /// `x` `[B, L, D]` with `mask` `[B, L]` (1 for a real token, 0 for padding),
    /// of the first member: what training updates. `keep`, in training, is
    /// a dropout mask over `x` (already scaled by `1 / (1 - p)`).
    pub fn aspect_logits(
        &self,
        x: &Tensor,
        mask: &Tensor,
        keep: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor), HeadsError> {
        self.first().aspect_logits(x, mask, keep)
    }

    /// Sentiment logits `[B, C]` (negative, positive; or negative, neutral,
    /// positive) from the masked mean of token vectors, of the first member.
    pub fn sentiment_logits(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor, HeadsError> {
        self.first().sentiment_logits(x, mask)
    }

    /// Runs the aspect head over token sequences (each `len x dim`,
    /// row-major): every member's probabilities and attention, averaged.
    pub fn aspects(&self, seqs: &[&[f32]]) -> Result<AspectOutput, HeadsError> {
        if seqs.is_empty() {
            return Ok(AspectOutput {
                probs: Vec::new(),
                attention: Vec::new(),
            });
        }
        let (x, mask, lens) = pad_seqs(seqs, self.dim)?;
        let mut probs = Vec::new();
        let mut attn = Vec::new();
        for l in &self.members {
            let (logits, a) = l.aspect_logits(&x, &mask, None)?;
            probs.push(
                candle_nn::ops::softmax_last_dim(&logits)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
            attn.push(a.flatten_all()?.to_vec1::<f32>()?);
        }
        let (probs, attn) = (mean_of(&probs), mean_of(&attn));
        // The padded length pad_seqs chose.
        let (t_n, longest) = (self.targets.len(), x.dim(1)?);
        Ok(AspectOutput {
            probs: probs
                .chunks(t_n * 4)
                .map(|row| row.chunks(4).map(|p| [p[0], p[1], p[2], p[3]]).collect())
                .collect(),
            attention: attn
                .chunks(t_n * longest)
                .zip(&lens)
                .map(|(row, &n)| row.chunks(longest).map(|a| a[..n].to_vec()).collect())
                .collect(),
        })
    }

    /// The sentiment of each token sequence, averaged over the members.
    pub fn sentiment(&self, seqs: &[&[f32]]) -> Result<Vec<SentimentProbs>, HeadsError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let (x, mask, _) = pad_seqs(seqs, self.dim)?;
        let mut parts = Vec::new();
        for l in &self.members {
            parts.push(
                candle_nn::ops::softmax_last_dim(&l.sentiment_logits(&x, &mask)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(mean_of(&parts)
            .chunks(self.sentiment_classes)
            .map(SentimentProbs::from_softmax)
            .collect())
    }
}

/// Per-token projections of a run of token vectors, from which the aspect
/// and sentiment outputs of any span of those tokens follow without another
/// matrix product: the heads are linear after the attention weights, so
/// `W · Σ aᵢ xᵢ = Σ aᵢ (W xᵢ)`. One pass over a batch's tokens serves every
/// sentence and clause of it. With several members, each member's outputs
/// are averaged, as [`Heads::aspects`] does.
pub struct TokenProjections {
    members: Vec<MemberProjections>,
}

/// One member's projections.
struct MemberProjections {
    targets: usize,
    /// `[n, T]` attention scores `q_t · tanh(W x_i + b)`.
    scores: Vec<f32>,
    /// `[n, T * 4 + C]`: each token through every target's output layer,
    /// then through the sentiment layer (`C` classes).
    proj: Vec<f32>,
    out_b: Vec<f32>,
    sent_b: Vec<f32>,
}

fn softmax_in_place(v: &mut [f32]) {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

impl TokenProjections {
    /// `[target][class]` probabilities for the tokens `rows` (indices into
    /// the projected run), exactly as [`Heads::aspects`] on those tokens.
    pub fn aspect_probs(&self, rows: &[usize]) -> Vec<[f32; 4]> {
        if let [one] = self.members.as_slice() {
            return one.aspect_probs(rows);
        }
        let parts: Vec<Vec<f32>> = self
            .members
            .iter()
            .map(|m| m.aspect_probs(rows).into_iter().flatten().collect())
            .collect();
        mean_of(&parts)
            .chunks(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect()
    }

    /// The sentiment over the tokens `rows`, exactly as
    /// [`Heads::sentiment`] on those tokens.
    pub fn sentiment(&self, rows: &[usize]) -> SentimentProbs {
        if let [one] = self.members.as_slice() {
            return one.sentiment(rows);
        }
        let parts: Vec<Vec<f32>> = self
            .members
            .iter()
            .map(|m| m.sentiment(rows).0.to_vec())
            .collect();
        let p = mean_of(&parts);
        SentimentProbs([p[0], p[1], p[2]])
    }
}

impl MemberProjections {
    fn width(&self) -> usize {
        self.targets * 4 + self.sent_b.len()
    }

    fn aspect_probs(&self, rows: &[usize]) -> Vec<[f32; 4]> {
        let t_n = self.targets;
        let w = self.width();
        (0..t_n)
            .map(|t| {
                let mut a: Vec<f32> = rows.iter().map(|&i| self.scores[i * t_n + t]).collect();
                softmax_in_place(&mut a);
                let mut logits = [0f32; 4];
                for (&i, ai) in rows.iter().zip(&a) {
                    let p = &self.proj[i * w + t * 4..i * w + t * 4 + 4];
                    for (l, pk) in logits.iter_mut().zip(p) {
                        *l += ai * pk;
                    }
                }
                for (l, b) in logits.iter_mut().zip(&self.out_b[t * 4..t * 4 + 4]) {
                    *l += b;
                }
                softmax_in_place(&mut logits);
                logits
            })
            .collect()
    }

    fn sentiment(&self, rows: &[usize]) -> SentimentProbs {
        let w = self.width();
        let off = self.targets * 4;
        let mut l = vec![0f32; self.sent_b.len()];
        for &i in rows {
            for (k, lk) in l.iter_mut().enumerate() {
                *lk += self.proj[i * w + off + k];
            }
        }
        let n = rows.len().max(1) as f32;
        for (lk, b) in l.iter_mut().zip(&self.sent_b) {
            *lk = *lk / n + b;
        }
        softmax_in_place(&mut l);
        SentimentProbs::from_softmax(&l)
    }
}

impl Heads {
    /// Projects a run of `n` token vectors (`n x dim`, row-major): three
    /// matrix products for the whole run.
    pub fn project(&self, x: &[f32]) -> Result<TokenProjections, HeadsError> {
        self.project_parts(&[x])
    }

    /// [`Heads::project`] over the runs `parts` one after another (token
    /// `i` of the result is the `i`-th row of their concatenation), in
    /// chunks of [`PROJECT_ROWS`] tokens: a batch's token vectors are tens
    /// of MB, and copying them into one tensor, with the keys beside it,
    /// made fresh pages the kernel had to fault in and zero every batch.
    pub fn project_parts(&self, parts: &[&[f32]]) -> Result<TokenProjections, HeadsError> {
        let dim = self.dim.max(1);
        let t = self.targets.len();
        let mut members: Vec<Option<MemberProjections>> =
            self.members.iter().map(|_| None).collect();
        let mut chunk: Vec<f32> = Vec::with_capacity(PROJECT_ROWS * dim);
        let rows = parts
            .iter()
            .flat_map(|p| p[..p.len() / dim * dim].chunks_exact(dim));
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            chunk.clear();
            for r in rows.by_ref().take(PROJECT_ROWS) {
                chunk.extend_from_slice(r);
            }
            let xt = Tensor::from_slice(&chunk, (chunk.len() / dim, dim), &Device::Cpu)?;
            for (l, m) in self.members.iter().zip(members.iter_mut()) {
                let p = l.project(&xt, dim, t)?;
                match m {
                    Some(m) => {
                        m.scores.extend_from_slice(&p.scores);
                        m.proj.extend_from_slice(&p.proj);
                    }
                    None => *m = Some(p),
                }
            }
        }
        Ok(TokenProjections {
            members: self
                .members
                .iter()
                .zip(members)
                .map(|(l, m)| match m {
                    Some(m) => Ok(m),
                    // No token at all.
                    None => Ok(MemberProjections {
                        targets: t,
                        scores: Vec::new(),
                        proj: Vec::new(),
                        out_b: l.out_b.flatten_all()?.to_vec1()?,
                        sent_b: l.sent_b.to_vec1()?,
                    }),
                })
                .collect::<Result<_, HeadsError>>()?,
        })
    }
}

/// Tokens per matrix product in [`Heads::project_parts`]: enough for the
/// products to run at full speed, small enough that the chunk and its keys
/// (3 MB with 384-wide vectors) stay in reused memory.
const PROJECT_ROWS: usize = 1024;

impl Layers {
    /// One member's [`Heads::project`] over `xt` `[n, dim]`.
    fn project(&self, xt: &Tensor, dim: usize, t: usize) -> Result<MemberProjections, HeadsError> {
        // tanh in a loop the compiler vectorises: candle's calls libm's
        // `tanhf` per element, a sixth of the analysis stage's time.
        let pre = xt.matmul(&self.key_w)?.broadcast_add(&self.key_b)?;
        let shape = pre.dims2()?;
        let mut keys = pre.flatten_all()?.to_vec1::<f32>()?;
        keys.iter_mut().for_each(|v| *v = tanh(*v));
        let keys = Tensor::from_vec(keys, shape, &Device::Cpu)?;
        let scores = keys.matmul(&self.queries.t()?.contiguous()?)?;
        // [T, D, 4] -> [D, T * 4], then the sentiment layer beside it.
        let w = Tensor::cat(
            &[
                self.out_w
                    .permute((1, 0, 2))?
                    .contiguous()?
                    .reshape((dim, t * 4))?,
                self.sent_w.clone(),
            ],
            1,
        )?;
        let proj = xt.matmul(&w)?;
        Ok(MemberProjections {
            targets: t,
            scores: scores.flatten_all()?.to_vec1()?,
            proj: proj.flatten_all()?.to_vec1()?,
            out_b: self.out_b.flatten_all()?.to_vec1()?,
            sent_b: self.sent_b.to_vec1()?,
        })
    }
}

/// `tanh(x)` to within a few units in the last place of f32 (Eigen's
/// rational approximation, as its vectorised `ptanh`): the same formula for
/// every element, so a loop over a slice becomes SIMD code.
fn tanh(x: f32) -> f32 {
    // Past this, tanh rounds to ±1 in f32.
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = x
        * (4.893_524_6e-3
            + x2 * (6.372_619_3e-4
                + x2 * (1.485_722_4e-5
                    + x2 * (5.122_297e-8
                        + x2 * (-8.604_672e-11 + x2 * (2.000_188e-13 + x2 * -2.760_768_5e-16))))));
    let q = 4.893_525e-3 + x2 * (2.268_434_6e-3 + x2 * (1.185_347_1e-4 + x2 * 1.198_258_4e-6));
    p / q
}

/// Pads token sequences into `x [B, L, D]` and `mask [B, L]`.
pub fn pad_seqs(seqs: &[&[f32]], dim: usize) -> Result<(Tensor, Tensor, Vec<usize>), HeadsError> {
    let lens: Vec<usize> = seqs.iter().map(|s| s.len() / dim.max(1)).collect();
    let longest = lens.iter().copied().max().unwrap_or(0).max(1);
    let mut x = vec![0f32; seqs.len() * longest * dim];
    let mut mask = vec![0f32; seqs.len() * longest];
    for (i, s) in seqs.iter().enumerate() {
        x[i * longest * dim..i * longest * dim + lens[i] * dim]
            .copy_from_slice(&s[..lens[i] * dim]);
        mask[i * longest..i * longest + lens[i]].fill(1.0);
    }
    Ok((
        Tensor::from_vec(x, (seqs.len(), longest, dim), &Device::Cpu)?,
        Tensor::from_vec(mask, (seqs.len(), longest), &Device::Cpu)?,
        lens,
    ))
}

/// Heads loaded from disk with their manifest.
pub struct LoadedHeads {
    /// The layers.
    pub heads: Heads,
    /// How they were made.
    pub manifest: HeadsManifest,
    /// The manifest's path.
    pub path: PathBuf,
}

/// Loads `heads.toml` and its weights from `dir`, checking the sha256 and
/// that they were trained for `model`.
pub fn load(dir: &Path, model: &str) -> Result<LoadedHeads, HeadsError> {
    let path = dir.join("heads.toml");
    let manifest_err = |message: String| HeadsError::Manifest {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| manifest_err(e.to_string()))?;
    let manifest: HeadsManifest = toml::from_str(&text).map_err(|e| manifest_err(e.to_string()))?;
    if manifest.model != model {
        return Err(HeadsError::WrongModel {
            path: path.display().to_string(),
            trained: manifest.model,
            model: model.to_string(),
        });
    }
    if let Some(problem) = crate::config::presence_problem(&manifest.presence, &manifest.targets) {
        return Err(manifest_err(format!(
            "`presence` {problem}: thresholds must name one of the heads' targets ({}) and lie in (0, 1]. Fix: retrain with `verbatim train --presence target=p` (models/heads/README.md)",
            manifest.targets.join(", ")
        )));
    }
    if !(0.0..=1.0).contains(&manifest.clause_sentiment) {
        return Err(manifest_err(format!(
            "`clause_sentiment = {}` is outside 0-1. Fix: retrain with `verbatim train --clause-sentiment w` (models/heads/README.md)",
            manifest.clause_sentiment
        )));
    }
    let bytes = read_verified(dir, &manifest.weights, &manifest.weights_sha256)?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
    let first = if manifest.members > 1 {
        vb.pp(member_prefix(0))
    } else {
        vb.clone()
    };
    let dim = first.get_unchecked("key.bias")?.dim(D::Minus1)?;
    let classes = first.get_unchecked("sentiment.bias")?.dim(D::Minus1)?;
    if classes != manifest.sentiment_classes {
        return Err(manifest_err(format!(
            "`sentiment_classes = {}` but the weights have {classes}. Fix: retrain with `verbatim train` (models/heads/README.md)",
            manifest.sentiment_classes
        )));
    }
    let heads = Heads::with_members(vb, manifest.members, dim, manifest.targets.clone(), classes)?;
    Ok(LoadedHeads {
        heads,
        manifest,
        path,
    })
}

/// The bytes of `dir/weights`, checked against the manifest's `sha256`.
pub fn read_verified(dir: &Path, weights: &str, sha256: &str) -> Result<Vec<u8>, HeadsError> {
    let wpath = dir.join(weights);
    let bytes = std::fs::read(&wpath).map_err(|e| HeadsError::Manifest {
        path: wpath.display().to_string(),
        message: e.to_string(),
    })?;
    let found = sha256_hex(&bytes);
    if found != sha256 {
        return Err(HeadsError::Checksum {
            path: wpath.display().to_string(),
            expected: sha256.to_string(),
            found,
        });
    }
    Ok(bytes)
}

/// Fresh, trainable heads and the [`VarMap`] that owns their weights,
/// initialised from `uniform(seed)` (candle's CPU generator cannot be
/// seeded): weights uniform in `±1/sqrt(dim)`, queries in `±0.05`, biases 0.
pub fn trainable(
    dim: usize,
    sentiment_classes: usize,
    mut uniform: impl FnMut() -> f32,
) -> Result<(Heads, VarMap), HeadsError> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let heads = Heads::new(
        vb,
        dim,
        TARGETS.iter().map(|t| t.to_string()).collect(),
        sentiment_classes,
    )?;
    let scale = (1.0 / dim as f32).sqrt();
    let data = vm
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned var map".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let s = if name.ends_with("bias") {
            0.0
        } else if name == "queries" {
            0.05
        } else {
            scale
        };
        let values: Vec<f32> = (0..n).map(|_| (uniform() * 2.0 - 1.0) * s).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu)?)?;
    }
    drop(data);
    Ok((heads, vm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifests_thresholds_are_checked_before_the_weights() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/heads/all-MiniLM-L6-v2");
        let toml = std::fs::read_to_string(committed.join("heads.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (extra, want) in [
            ("[presence]\nprodcut = 0.6\n", "\"prodcut\""),
            ("[presence]\nproduct = 0\n", "outside 0-1"),
        ] {
            std::fs::write(dir.path().join("heads.toml"), format!("{toml}\n{extra}")).unwrap();
            let err = load(dir.path(), "all-MiniLM-L6-v2")
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(want) && err.contains("Fix:"), "{err}");
        }
    }

    #[test]
    fn shapes_and_probabilities() {
        let mut x = 0.1f32;
        let (h, _vm) = trainable(8, 2, || {
            x = (x * 7.3).fract();
            x
        })
        .unwrap();
        let a = vec![0.1f32; 3 * 8];
        let b = vec![-0.2f32; 5 * 8];
        let out = h.aspects(&[&a, &b]).unwrap();
        assert_eq!(out.probs.len(), 2);
        assert_eq!(out.probs[0].len(), TARGETS.len());
        for row in &out.probs {
            for p in row {
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
        // Attention covers only real tokens and sums to one.
        assert_eq!(out.attention[0][0].len(), 3);
        assert_eq!(out.attention[1][0].len(), 5);
        assert!((out.attention[0][2].iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let s = h.sentiment(&[&a]).unwrap()[0];
        assert!(s.score() > -1.0 && s.score() < 1.0);
        assert_eq!(s.0[1], 0.0, "a two-class head has no neutral");
        assert!((s.0.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let (h3, _vm) = trainable(8, 3, || {
            x = (x * 7.3).fract();
            x
        })
        .unwrap();
        let s = h3.sentiment(&[&a]).unwrap()[0];
        assert!(s.0.iter().all(|&p| p > 0.0));
        assert!((s.0.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn projections_match_the_full_forward() {
        for classes in [2, 3] {
            projections_match_with(classes);
        }
    }

    fn projections_match_with(classes: usize) {
        let mut x = 0.3f32;
        let (h, _vm) = trainable(8, classes, || {
            x = (x * 7.3 + 0.1).fract();
            x
        })
        .unwrap();
        let tokens: Vec<f32> = (0..6 * 8).map(|i| (i as f32 * 0.71).sin()).collect();
        let tp = h.project(&tokens).unwrap();
        for rows in [vec![0, 1, 2, 3, 4, 5], vec![0, 2, 5], vec![4]] {
            let sub: Vec<f32> = rows
                .iter()
                .flat_map(|&i| tokens[i * 8..(i + 1) * 8].to_vec())
                .collect();
            let full = h.aspects(&[&sub]).unwrap();
            let fast = tp.aspect_probs(&rows);
            for (a, b) in full.probs[0].iter().zip(&fast) {
                for k in 0..4 {
                    assert!((a[k] - b[k]).abs() < 1e-5, "{a:?} {b:?}");
                }
            }
            let s_full = h.sentiment(&[&sub]).unwrap()[0];
            let s_fast = tp.sentiment(&rows);
            for k in 0..3 {
                assert!(
                    (s_full.0[k] - s_fast.0[k]).abs() < 1e-5,
                    "{s_full:?} {s_fast:?}"
                );
            }
        }
    }

    #[test]
    fn tanh_is_libms_to_within_a_few_ulps() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (a, b) = (tanh(x), x.tanh());
            worst = worst.max((a - b).abs() / b.abs().max(f32::MIN_POSITIVE));
        }
        assert!(worst < 1e-6, "relative error {worst}");
        assert_eq!(tanh(30.0), 1.0);
        assert_eq!(tanh(-30.0), -1.0);
        assert_eq!(tanh(0.0), 0.0);
    }

    /// Several members: the fast projections still equal the full
    /// forward, and both are the mean of the members read one by one.
    #[test]
    fn members_are_averaged() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let targets: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
        let both = Heads::with_members(vb.clone(), 2, 8, targets.clone(), 3).unwrap();
        assert_eq!(both.members(), 2);
        let one: Vec<Heads> = (0..2)
            .map(|i| Heads::new(vb.pp(member_prefix(i)), 8, targets.clone(), 3).unwrap())
            .collect();
        let tokens: Vec<f32> = (0..5 * 8).map(|i| (i as f32 * 0.53).cos()).collect();
        let full = both.aspects(&[&tokens]).unwrap();
        let fast = both
            .project(&tokens)
            .unwrap()
            .aspect_probs(&[0, 1, 2, 3, 4]);
        let parts: Vec<AspectOutput> = one.iter().map(|h| h.aspects(&[&tokens]).unwrap()).collect();
        for (t, fast_t) in fast.iter().enumerate() {
            for (k, fast_tk) in fast_t.iter().enumerate() {
                let mean = (parts[0].probs[0][t][k] + parts[1].probs[0][t][k]) / 2.0;
                assert!((full.probs[0][t][k] - mean).abs() < 1e-5);
                assert!((fast_tk - mean).abs() < 1e-5);
            }
            assert_eq!(full.attention[0][t].len(), 5);
        }
        assert!(
            (parts[0].probs[0][0][0] - parts[1].probs[0][0][0]).abs() > 1e-6,
            "the members differ"
        );
        let s = both.sentiment(&[&tokens]).unwrap()[0];
        let s_fast = both.project(&tokens).unwrap().sentiment(&[0, 1, 2, 3, 4]);
        let s_parts: Vec<SentimentProbs> = one
            .iter()
            .map(|h| h.sentiment(&[&tokens]).unwrap()[0])
            .collect();
        for k in 0..3 {
            let mean = (s_parts[0].0[k] + s_parts[1].0[k]) / 2.0;
            assert!((s.0[k] - mean).abs() < 1e-5);
            assert!((s_fast.0[k] - mean).abs() < 1e-5);
        }
    }

    #[test]
    fn padding_does_not_change_a_row() {
        let mut x = 0.2f32;
        let (h, _vm) = trainable(8, 2, || {
            x = (x * 7.3).fract();
            x
        })
        .unwrap();
        let a: Vec<f32> = (0..3 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let long = vec![0.5f32; 9 * 8];
        let alone = h.aspects(&[&a]).unwrap();
        let padded = h.aspects(&[&a, &long]).unwrap();
        for (x, y) in alone.probs[0].iter().zip(&padded.probs[0]) {
            for k in 0..4 {
                assert!((x[k] - y[k]).abs() < 1e-5);
            }
        }
        let s1 = h.sentiment(&[&a]).unwrap()[0];
        let s2 = h.sentiment(&[&a, &long]).unwrap()[0];
        assert!((s1.score() - s2.score()).abs() < 1e-5);
    }
}
