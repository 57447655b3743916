//! `verbatim eval-themes`: streams labelled rows (`text`, ground-truth
//! `label`) through the online theme model in one pass, in input order, and
//! scores the assignment against the labels (NMI, ARI), beside k-means with
//! k = number of labels on the same embeddings in the same run (linfa).
//!
//! Rows in the project's aspect format (`aspects` with `source_category`)
//! need no `label`: a row with exactly one aspect is a one-clause comment
//! whose category (e.g. `BATTERY#OPERATION_PERFORMANCE`) is its label; the
//! others are skipped and counted. With a file of translations (line n
//! translates line n of the input, as M-ABSA's `ru` files do the `en`
//! ones) both sides go through one model, and the share of pairs that land
//! in one theme is scored as well.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use serde::Serialize;

use crate::config::{NlpConfig, ThemeUnit, ThemesConfig};
use crate::nlp::encoder::normalize;
use crate::themes::labels;
use crate::themes::online::{ThemeInput, ThemeModel};

/// Errors of `verbatim eval-themes`.
#[derive(Debug, thiserror::Error)]
pub enum EvalThemesError {
    /// The input could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a labelled row.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The model could not be loaded.
    #[error(transparent)]
    Nlp(#[from] crate::nlp::NlpError),
    /// Embedding failed.
    #[error(transparent)]
    Operator(#[from] crate::nlp::OperatorError),
    /// The baseline failed.
    #[error("k-means baseline: {0}")]
    Baseline(String),
}

/// NMI and ARI of a clustering.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Agreement {
    /// Normalised mutual information (arithmetic mean normalisation).
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
}

/// What `verbatim eval-themes --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ThemesReport {
    /// Rows.
    pub n: usize,
    /// Themes the stream made.
    pub themes: usize,
    /// Share of rows written with no theme.
    pub outlier_share: f64,
    /// Online assignment against the labels.
    pub nmi: f64,
    /// See `nmi`.
    pub ari: f64,
    /// k-means, k = number of labels, same embeddings.
    pub batch_baseline: Agreement,
    /// Distinct labels.
    pub labels: usize,
    /// Rows left out: no `label`, and not exactly one aspect with a
    /// `source_category`.
    pub skipped: usize,
    /// Translation pairs streamed (`--translations`), 0 without.
    pub pairs: usize,
    /// Share of those pairs whose two sides got one theme.
    pub pairs_same_theme: Option<f64>,
    /// Rows given their nearest theme of the final model (see
    /// [`StreamRun::settled`]).
    pub settled: Agreement,
    /// `pairs_same_theme` of the settled assignment.
    pub settled_pairs_same_theme: Option<f64>,
    /// How often labels occur in their themes' texts.
    pub label_coverage: LabelCoverage,
    /// The same over the texts that joined their theme.
    pub member_label_coverage: LabelCoverage,
    /// A warm refit of the model and rows the stream ended with.
    pub refit: WarmRefit,
}

/// NMI and ARI between two labelings (any hashable ids).
pub fn agreement(a: &[i64], b: &[i64]) -> Agreement {
    let n = a.len() as f64;
    let mut ca: HashMap<i64, f64> = HashMap::new();
    let mut cb: HashMap<i64, f64> = HashMap::new();
    let mut cab: HashMap<(i64, i64), f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *ca.entry(x).or_default() += 1.0;
        *cb.entry(y).or_default() += 1.0;
        *cab.entry((x, y)).or_default() += 1.0;
    }
    let h = |c: &HashMap<i64, f64>| -> f64 { c.values().map(|&k| -(k / n) * (k / n).ln()).sum() };
    let mi: f64 = cab
        .iter()
        .map(|(&(x, y), &k)| (k / n) * ((k * n) / (ca[&x] * cb[&y])).ln())
        .sum();
    let (ha, hb) = (h(&ca), h(&cb));
    let nmi = if ha + hb == 0.0 {
        1.0
    } else {
        2.0 * mi / (ha + hb)
    };
    let c2 = |k: f64| k * (k - 1.0) / 2.0;
    let sum_ab: f64 = cab.values().map(|&k| c2(k)).sum();
    let sum_a: f64 = ca.values().map(|&k| c2(k)).sum();
    let sum_b: f64 = cb.values().map(|&k| c2(k)).sum();
    let expected = sum_a * sum_b / c2(n);
    let max = (sum_a + sum_b) / 2.0;
    let ari = if max == expected {
        1.0
    } else {
        (sum_ab - expected) / (max - expected)
    };
    Agreement { nmi, ari }
}

/// The labelled rows of one file.
#[derive(Debug, Default)]
struct Rows {
    texts: Vec<String>,
    labels: Vec<String>,
    /// Each row's 0-based line in the file.
    lines: Vec<usize>,
    skipped: usize,
}

/// A row's ground truth: its `label`, else the `source_category` of its
/// only aspect (a one-clause comment); `None` for any other row.
fn label_of(v: &serde_json::Value) -> Option<&str> {
    if let Some(l) = v["label"].as_str() {
        return Some(l);
    }
    match v["aspects"].as_array().map(Vec::as_slice) {
        Some([one]) => one["source_category"].as_str(),
        _ => None,
    }
}

/// Reads `text` and the label (see [`label_of`]) of every row.
fn read(path: &Path) -> Result<Rows, EvalThemesError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalThemesError::Read {
        path: p.clone(),
        source,
    })?;
    let mut rows = Rows::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row_err = |message: String| EvalThemesError::Row {
            path: p.clone(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| row_err(e.to_string()))?;
        let Some(t) = v["text"].as_str() else {
            return Err(row_err("needs a `text` string".into()));
        };
        let Some(l) = label_of(&v) else {
            rows.skipped += 1;
            continue;
        };
        rows.texts.push(t.to_string());
        rows.labels.push(l.to_string());
        rows.lines.push(i);
    }
    if rows.texts.is_empty() {
        return Err(EvalThemesError::Row {
            path: p,
            line: 0,
            message: "no labelled row: each needs a `label` string, or exactly one aspect with a `source_category`".into(),
        });
    }
    Ok(rows)
}

/// Embeds the rows, streams them through a [`ThemeModel`] in order, and
/// scores it and the k-means baseline.
pub fn evaluate(
    path: &Path,
    translations: Option<&Path>,
    nlp: &NlpConfig,
    themes: &ThemesConfig,
    batch: usize,
) -> Result<ThemesReport, EvalThemesError> {
    let data = Embedded::load(path, translations, nlp, themes.unit)?.with_batch(batch);
    let run = data.stream(&data.calibrate(themes), None);
    Ok(ThemesReport {
        n: data.texts.len(),
        themes: run.themes,
        outlier_share: run.outlier_share,
        nmi: run.nmi,
        ari: run.ari,
        batch_baseline: data.baseline()?,
        labels: data.labels(),
        skipped: data.skipped,
        pairs: data.pairs.len(),
        pairs_same_theme: run.pairs_same_theme,
        settled: run.settled,
        settled_pairs_same_theme: run.settled_pairs_same_theme,
        label_coverage: run.label_coverage,
        member_label_coverage: run.member_label_coverage,
        refit: run.refit,
    })
}

/// What a row hands the theme model: the whole comment, or with themes
/// per mention each mention the analysis read.
struct RowItem {
    target: Option<String>,
    v: Vec<f32>,
    text: String,
    /// For the primary theme: a negative mention wins, then confidence.
    rank: (bool, f32),
}

/// Labelled rows and their embeddings, computed once so that many theme
/// settings and stream orders can be scored on the same vectors.
pub struct Embedded {
    texts: Vec<String>,
    truth: Vec<i64>,
    /// Whole-comment vectors (the k-means baseline and `batch` read them).
    vecs: Vec<Vec<f32>>,
    /// What each row hands the model (see [`RowItem`]).
    items: Vec<Vec<RowItem>>,
    dim: usize,
    calibration: crate::config::Calibration,
    /// Rows read but left out (see [`ThemesReport::skipped`]).
    pub skipped: usize,
    /// `(row, its translation)` indices.
    pairs: Vec<(usize, usize)>,
    /// Rows the stream hands the model at once (the pipeline's
    /// `batch.max_records`).
    batch: usize,
}

/// One stream of the rows through a [`ThemeModel`] (see [`Embedded::stream`]).
#[derive(Debug, Clone, Serialize)]
pub struct StreamRun {
    /// `join_similarity` of the run.
    pub join_similarity: f32,
    /// `cluster_distance` of the run.
    pub cluster_distance: f32,
    /// Shuffle seed of the order; `None`: input order.
    pub shuffle: Option<u64>,
    /// Themes the stream made.
    pub themes: usize,
    /// Share of rows written with no theme.
    pub outlier_share: f64,
    /// Online assignment against the labels.
    pub nmi: f64,
    /// See `nmi`.
    pub ari: f64,
    /// Share of translation pairs whose two sides got one theme.
    pub pairs_same_theme: Option<f64>,
    /// Every row given its nearest theme of the model the stream ended
    /// with, against the labels: the themes without the cost of arrival
    /// order (a row that arrived before its theme formed was written with
    /// the nearest theme at the time).
    pub settled: Agreement,
    /// `pairs_same_theme` of the settled assignment.
    pub settled_pairs_same_theme: Option<f64>,
    /// How often each theme's label occurs in the texts written with it.
    pub label_coverage: LabelCoverage,
    /// The same over the texts that joined their theme when written (their
    /// similarity passed `join_similarity`): the firm members an analyst
    /// keeps with `theme_similarity`.
    pub member_label_coverage: LabelCoverage,
    /// What `verbatim themes refit` (warm, one round, cut at the run's
    /// `refit_distance`) makes of the model and rows the stream ended with.
    pub refit: WarmRefit,
}

/// A warm refit at the end of a stream (see [`StreamRun::refit`]).
#[derive(Debug, Clone, Serialize)]
pub struct WarmRefit {
    /// `refit_distance` it merged at.
    pub refit_distance: f32,
    /// Themes after it.
    pub themes: usize,
    /// Every row under the refitted model (`themes/assignments/v<N>`),
    /// against the labels.
    pub assigned: Agreement,
    /// The ids the stream wrote, read through the refit's merges (what
    /// `comments.theme_id` joined to `themes.parquet`'s `merged_into`
    /// gives), against the labels.
    pub written: Agreement,
    /// Share of rows the refit leaves with no theme.
    pub outlier_share: f64,
    /// Share of translation pairs in one theme under the refitted model.
    pub pairs_same_theme: Option<f64>,
}

/// How well labels read against the texts written with their theme: the
/// share of a theme's texts (clauses, with themes per mention) that hold
/// its label phrase after stemming ([`labels::occurs`]; a text is held to
/// the label in its own language when the theme has one per language),
/// over themes with at least [`LabelCoverage::MIN_TEXTS`] texts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LabelCoverage {
    /// Themes scored.
    pub themes: usize,
    /// Of those, themes whose label at least [`labels::LABEL_COVERAGE`] of
    /// their texts hold.
    pub at_bar: usize,
    /// Median share over the themes scored.
    pub median: f64,
    /// Lowest share, and that theme's label.
    pub worst: Option<(f64, String)>,
}

impl LabelCoverage {
    /// Fewest texts a theme needs to be scored.
    pub const MIN_TEXTS: usize = 5;

    /// Scores `model`'s labels against `(theme, text, joined)` as written;
    /// with `joined_only`, against the texts that joined.
    pub fn of(model: &ThemeModel, written: &[(u32, &str, bool)], joined_only: bool) -> Self {
        let mut by: HashMap<u32, Vec<&str>> = HashMap::new();
        for &(t, text, joined) in written {
            if joined || !joined_only {
                by.entry(model.resolve(t)).or_default().push(text);
            }
        }
        let mut shares: Vec<(f64, String)> = by
            .into_iter()
            .filter(|(_, texts)| texts.len() >= Self::MIN_TEXTS)
            .filter_map(|(t, texts)| {
                let held = texts
                    .iter()
                    .filter(|x| {
                        model
                            .label_in(t, labels::script_language(x))
                            .is_some_and(|l| labels::occurs(l, &labels::stemmed(x)))
                    })
                    .count();
                let label = model.label(t)?;
                Some((held as f64 / texts.len() as f64, label.to_string()))
            })
            .collect();
        shares.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Self {
            themes: shares.len(),
            at_bar: shares
                .iter()
                .filter(|s| s.0 >= labels::LABEL_COVERAGE)
                .count(),
            median: shares.get(shares.len() / 2).map_or(0.0, |s| s.0),
            worst: shares.first().cloned(),
        }
    }
}

impl Embedded {
    /// Reads the rows of `path` (and of `translations`, whose line n
    /// translates line n of `path`) and embeds them with `nlp`'s model;
    /// with themes per mention (`unit`) and `nlp.analyze`, analyses them as
    /// the job does, and each mention is an item of its target.
    pub fn load(
        path: &Path,
        translations: Option<&Path>,
        nlp: &NlpConfig,
        unit: ThemeUnit,
    ) -> Result<Self, EvalThemesError> {
        let mut rows = read(path)?;
        let mut pairs = Vec::new();
        if let Some(t) = translations {
            let other = read(t)?;
            let at: HashMap<usize, usize> = rows
                .lines
                .iter()
                .enumerate()
                .map(|(i, &l)| (l, i))
                .collect();
            let base = rows.texts.len();
            for (k, l) in other.lines.iter().enumerate() {
                if let Some(&i) = at.get(l) {
                    pairs.push((i, base + k));
                }
            }
            rows.texts.extend(other.texts);
            rows.labels.extend(other.labels);
            rows.skipped += other.skipped;
        }
        let Rows {
            texts,
            labels,
            skipped,
            ..
        } = rows;
        let manifest = crate::nlp::model::ModelManifest::load(&nlp.models_dir, &nlp.model)
            .map_err(crate::nlp::NlpError::from)?;
        let (vecs, items, dim) = if unit == ThemeUnit::Mention && nlp.analyze {
            analysed(&texts, nlp)?
        } else {
            let mut embed = crate::nlp::embed_operator(nlp)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let pb = indicatif::ProgressBar::new(texts.len() as u64);
            let mut vecs = Vec::with_capacity(texts.len());
            for chunk in refs.chunks(512) {
                vecs.extend(embed.comment_vectors(chunk)?);
                pb.inc(chunk.len() as u64);
            }
            pb.finish_and_clear();
            let items = vecs
                .iter()
                .zip(&texts)
                .map(|(v, t)| {
                    vec![RowItem {
                        target: None,
                        v: v.clone(),
                        text: t.clone(),
                        rank: (false, 0.0),
                    }]
                })
                .collect();
            (vecs, items, embed.embedding_dim())
        };
        let mut ids: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &labels {
            let next = ids.len() as i64;
            ids.entry(l.as_str()).or_insert(next);
        }
        let truth: Vec<i64> = labels.iter().map(|l| ids[l.as_str()]).collect();
        Ok(Self {
            texts,
            truth,
            vecs,
            items,
            dim,
            calibration: manifest.calibration,
            skipped,
            pairs,
            batch: 1,
        })
    }

    /// Streams the rows in batches of `n`, as a job with
    /// `batch.max_records = n` hands them to the theme stage.
    pub fn with_batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Translation pairs.
    pub fn pairs(&self) -> usize {
        self.pairs.len()
    }

    /// `themes` with what it leaves unset taken from the model's
    /// `[calibration]`.
    pub fn calibrate(&self, themes: &ThemesConfig) -> ThemesConfig {
        themes.calibrated(&self.calibration)
    }

    /// Distinct labels.
    pub fn labels(&self) -> usize {
        self.truth
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Streams every row once through a fresh model with `cfg`, in input
    /// order or in the order a shuffle with `seed` gives, in batches (see
    /// [`Embedded::with_batch`]), and scores the assignment against the
    /// labels.
    pub fn stream(&self, cfg: &ThemesConfig, shuffle: Option<u64>) -> StreamRun {
        let order = self.order(shuffle);
        let mut model = ThemeModel::new(cfg.clone(), self.dim);
        let mut online = vec![-1i64; self.texts.len()];
        let mut written: Vec<(u32, &str, bool)> = Vec::new();
        // Each row's items' themes as written.
        let mut wrote: Vec<Vec<Option<u32>>> = vec![Vec::new(); self.items.len()];
        for chunk in order.chunks(self.batch.max(1)) {
            let (rows, items): (Vec<usize>, Vec<ThemeInput<'_>>) = chunk
                .iter()
                .flat_map(|&i| {
                    self.items[i].iter().map(move |x| {
                        (
                            i,
                            ThemeInput {
                                target: x.target.as_deref(),
                                vector: &x.v,
                                text: &x.text,
                                source: Some(i as u64),
                            },
                        )
                    })
                })
                .unzip();
            let assigned = model.assign_batch(&items);
            written.extend(
                assigned
                    .iter()
                    .zip(&items)
                    .filter_map(|(a, x)| a.theme.map(|t| (t, x.text, a.joined))),
            );
            let got: Vec<Option<u32>> = assigned.into_iter().map(|a| a.theme).collect();
            for (&r, &g) in rows.iter().zip(&got) {
                wrote[r].push(g);
            }
            self.primaries(&rows, &got, &mut online);
        }
        let outliers = online.iter().filter(|&&x| x < 0).count();
        let on = agreement(&self.truth, &online);
        let together = self
            .pairs
            .iter()
            .filter(|&&(a, b)| online[a] >= 0 && online[a] == online[b])
            .count();
        // Each row's nearest theme in the model the stream ended with: what
        // a row's theme would be had its theme existed when it arrived.
        let cents: Vec<(u32, Option<&str>, Vec<f32>)> = model
            .themes()
            .iter()
            .map(|t| {
                let mut c = t.sum.clone();
                normalize(&mut c);
                (t.id, t.target.as_deref(), c)
            })
            .collect();
        let (rows, near): (Vec<usize>, Vec<Option<u32>>) = (0..self.items.len())
            .flat_map(|i| {
                let cents = &cents;
                self.items[i].iter().map(move |x| {
                    let best = cents
                        .iter()
                        .filter(|(_, t, _)| *t == x.target.as_deref())
                        .map(|(id, _, c)| (crate::nlp::encoder::dot(c, &x.v), *id))
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|b| b.1);
                    (i, best)
                })
            })
            .unzip();
        let mut settled = vec![-1i64; self.texts.len()];
        self.primaries(&rows, &near, &mut settled);
        let settled_together = self
            .pairs
            .iter()
            .filter(|&&(a, b)| settled[a] >= 0 && settled[a] == settled[b])
            .count();
        let share = |k: usize| (!self.pairs.is_empty()).then(|| k as f64 / self.pairs.len() as f64);
        StreamRun {
            join_similarity: cfg.join_similarity(),
            cluster_distance: cfg.cluster_distance(),
            shuffle,
            themes: model.themes().len(),
            outlier_share: outliers as f64 / self.texts.len().max(1) as f64,
            nmi: on.nmi,
            ari: on.ari,
            pairs_same_theme: share(together),
            settled: agreement(&self.truth, &settled),
            settled_pairs_same_theme: share(settled_together),
            label_coverage: LabelCoverage::of(&model, &written, false),
            member_label_coverage: LabelCoverage::of(&model, &written, true),
            refit: self.warm_refit(&model, &wrote),
        }
    }

    /// [`StreamRun::refit`]: the rows as `themes refit` reads them (each
    /// item with the theme it was written with), refitted against `model`.
    fn warm_refit(&self, model: &ThemeModel, wrote: &[Vec<Option<u32>>]) -> WarmRefit {
        // The refit reads each target's items together.
        let mut at: Vec<(usize, usize)> = (0..self.items.len())
            .flat_map(|i| (0..self.items[i].len()).map(move |j| (i, j)))
            .collect();
        at.sort_by(|a, b| {
            let t = |&(i, j): &(usize, usize)| self.items[i][j].target.as_deref();
            t(a).cmp(&t(b)).then(a.cmp(b))
        });
        let items: Vec<crate::themes::refit::Item> = at
            .iter()
            .map(|&(i, j)| {
                let x = &self.items[i][j];
                crate::themes::refit::Item {
                    id: i.to_string(),
                    mention: x.target.clone().map(|t| (t, j as i32)),
                    v: x.v.clone(),
                    text: x.text.clone(),
                    old: wrote[i].get(j).copied().flatten().unwrap_or(0),
                }
            })
            .collect();
        let fit = crate::themes::refit::fit(
            model,
            &items,
            crate::themes::refit::RefitOptions::default(),
            model.version() + 1,
        );
        let mut now: Vec<Vec<Option<u32>>> =
            self.items.iter().map(|x| vec![None; x.len()]).collect();
        for (&(i, j), a) in at.iter().zip(&fit.assign) {
            now[i][j] = *a;
        }
        let score = |per: &[Vec<Option<u32>>]| {
            let rows: Vec<usize> = (0..per.len())
                .flat_map(|i| std::iter::repeat_n(i, per[i].len()))
                .collect();
            let flat: Vec<Option<u32>> = per.iter().flatten().copied().collect();
            let mut out = vec![-1i64; self.texts.len()];
            self.primaries(&rows, &flat, &mut out);
            out
        };
        let assigned = score(&now);
        let through: Vec<Vec<Option<u32>>> = wrote
            .iter()
            .map(|w| w.iter().map(|t| t.map(|t| fit.model.resolve(t))).collect())
            .collect();
        let written = score(&through);
        let together = self
            .pairs
            .iter()
            .filter(|&&(a, b)| assigned[a] >= 0 && assigned[a] == assigned[b])
            .count();
        WarmRefit {
            refit_distance: model.config().refit_distance(),
            themes: fit.model.themes().len(),
            assigned: agreement(&self.truth, &assigned),
            written: agreement(&self.truth, &written),
            outlier_share: assigned.iter().filter(|&&x| x < 0).count() as f64
                / self.texts.len().max(1) as f64,
            pairs_same_theme: (!self.pairs.is_empty())
                .then(|| together as f64 / self.pairs.len() as f64),
        }
    }

    /// What `verbatim themes refit --from-scratch` does to one block: average
    /// linkage over the first block of rows (in the order `shuffle` gives),
    /// cut at `cut`; groups smaller than `min_size` are outliers, each its
    /// own cluster. Scored against the labels of those rows.
    pub fn batch(&self, cut: f32, min_size: usize, shuffle: Option<u64>) -> (usize, Agreement) {
        let order = self.order(shuffle);
        let block = &order[..order.len().min(crate::themes::refit::SCRATCH_BLOCK)];
        let vs: Vec<&[f32]> = block.iter().map(|&i| self.vecs[i].as_slice()).collect();
        let mut got = vec![0i64; block.len()];
        let mut groups = 0;
        let mut lone = -1i64;
        for g in crate::themes::online::clusters_below(&vs, cut) {
            let big = g.len() >= min_size.max(2);
            groups += usize::from(big);
            for k in g {
                got[k] = if big { groups as i64 } else { lone };
                lone -= i64::from(!big);
            }
        }
        let truth: Vec<i64> = block.iter().map(|&i| self.truth[i]).collect();
        (groups, agreement(&truth, &got))
    }

    /// Each row's primary theme from its items' themes (`rows[k]` is the
    /// row of item k, items of one row in order): the negative item with
    /// the highest confidence, else the most confident one, as the job
    /// picks a comment's `theme_id`.
    fn primaries(&self, rows: &[usize], themes: &[Option<u32>], out: &mut [i64]) {
        let mut k = 0;
        while k < rows.len() {
            let row = rows[k];
            let n = self.items[row].len();
            out[row] = (0..n)
                .filter_map(|j| themes[k + j].map(|t| (self.items[row][j].rank, t)))
                .max_by(|a, b| a.0 .0.cmp(&b.0 .0).then(a.0 .1.total_cmp(&b.0 .1)))
                .map_or(-1, |(_, t)| i64::from(t));
            k += n;
        }
    }

    /// Row indices in input order, or shuffled with `seed`.
    fn order(&self, shuffle: Option<u64>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.texts.len()).collect();
        if let Some(seed) = shuffle {
            // Fisher-Yates over Xoshiro256+: the same seed, the same order.
            let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// k-means (linfa, k = number of labels, 3 runs, seed 7) on the same
    /// embeddings, scored against the labels.
    pub fn baseline(&self) -> Result<Agreement, EvalThemesError> {
        let data = Array2::from_shape_vec(
            (self.vecs.len(), self.dim),
            self.vecs.iter().flatten().map(|&x| f64::from(x)).collect(),
        )
        .map_err(|e| EvalThemesError::Baseline(e.to_string()))?;
        let ds = DatasetBase::from(data);
        let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
        let km = KMeans::params_with_rng(self.labels(), rng)
            .n_runs(3)
            .max_n_iterations(100)
            .tolerance(1e-4)
            .fit(&ds)
            .map_err(|e| EvalThemesError::Baseline(e.to_string()))?;
        let pred = km.predict(&ds);
        let base: Vec<i64> = pred.iter().map(|&c| c as i64).collect();
        Ok(agreement(&self.truth, &base))
    }
}

/// Analyses the rows as the job does (pipeline-sized batches of 256):
/// whole-comment vectors, and each row's items, its mentions with a vector
/// or else the whole comment.
#[allow(clippy::type_complexity)]
fn analysed(
    texts: &[String],
    nlp: &NlpConfig,
) -> Result<(Vec<Vec<f32>>, Vec<Vec<RowItem>>, usize), EvalThemesError> {
    let mut stages = crate::nlp::operators_for(nlp, &BTreeMap::new(), &BTreeMap::new())?;
    let metrics = crate::metrics::Metrics::new();
    let now = chrono::Utc::now();
    let pb = indicatif::ProgressBar::new(texts.len() as u64);
    let (mut vecs, mut items) = (Vec::with_capacity(texts.len()), Vec::new());
    for chunk in texts.chunks(256) {
        let mut batch = crate::batch::CommentBatch::default();
        for (i, t) in chunk.iter().enumerate() {
            let coords = crate::comment::SourceCoords {
                topic: "eval-themes".into(),
                partition: 0,
                offset: i as i64,
                kafka_timestamp: None,
            };
            batch.comments.push(crate::comment::Comment::new(
                coords,
                i.to_string(),
                t.clone(),
                now,
                now,
            ));
        }
        crate::nlp::run_operators(&mut stages.operators, &mut batch, &metrics)?;
        for c in batch.comments {
            let v = c.nlp.embedding.unwrap_or_else(|| vec![0.0; stages.dim]);
            let mut own: Vec<RowItem> = c
                .nlp
                .aspects
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some(RowItem {
                        target: Some(a.target.to_string()),
                        rank: (
                            a.polarity == crate::comment::Polarity::Negative,
                            a.confidence,
                        ),
                        v: a.vector?,
                        text: a.text,
                    })
                })
                .collect();
            if own.is_empty() {
                own.push(RowItem {
                    target: None,
                    v: v.clone(),
                    text: c.text,
                    rank: (false, 0.0),
                });
            }
            vecs.push(v);
            items.push(own);
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok((vecs, items, stages.dim))
}

use rand_xoshiro::rand_core::{RngCore, SeedableRng};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_aspect_row_is_labelled_by_its_category_and_translations_pair_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let en = dir.path().join("en.jsonl");
        let ru = dir.path().join("ru.jsonl");
        let one = |t: &str, c: &str| {
            serde_json::json!({"text": t, "aspects": [{"target": "product", "source_category": c}]})
                .to_string()
        };
        let two = serde_json::json!({"text": "x and y", "aspects": [
            {"target": "product", "source_category": "A"}, {"target": "price", "source_category": "B"}]});
        std::fs::write(
            &en,
            [
                one("battery dies", "BATTERY#OPERATION_PERFORMANCE"),
                two.to_string(),
                serde_json::json!({"text": "where is my card", "label": "card_arrival"})
                    .to_string(),
                one("screen is dim", "DISPLAY#QUALITY"),
            ]
            .join("\n"),
        )
        .unwrap();
        let r = read(&en).unwrap();
        assert_eq!(
            r.labels,
            [
                "BATTERY#OPERATION_PERFORMANCE",
                "card_arrival",
                "DISPLAY#QUALITY"
            ]
        );
        assert_eq!((r.lines, r.skipped), (vec![0, 2, 3], 1));
        std::fs::write(&ru, [two.to_string(), two.to_string()].join("\n")).unwrap();
        assert!(matches!(read(&ru), Err(EvalThemesError::Row { .. })));
    }

    #[test]
    fn identical_and_independent_labelings() {
        let a = [0, 0, 1, 1, 2, 2];
        let same = agreement(&a, &[5, 5, 7, 7, 9, 9]);
        assert!((same.nmi - 1.0).abs() < 1e-9 && (same.ari - 1.0).abs() < 1e-9);
        let one = agreement(&a, &[0, 0, 0, 0, 0, 0]);
        assert!(one.nmi.abs() < 1e-9 && one.ari.abs() < 1e-9);
    }

    #[test]
    fn matches_sklearn_on_a_small_case() {
        // sklearn: normalized_mutual_info_score([0,0,0,1,1,1],[0,0,1,1,2,2]) = 0.5158037429793889
        //          adjusted_rand_score(...) = 0.24242424242424246
        let a = [0, 0, 0, 1, 1, 1];
        let b = [0, 0, 1, 1, 2, 2];
        let g = agreement(&a, &b);
        assert!((g.nmi - 0.515_803_742_979_388_9).abs() < 1e-9, "{g:?}");
        assert!((g.ari - 0.242_424_242_424_242_46).abs() < 1e-9, "{g:?}");
    }
}
