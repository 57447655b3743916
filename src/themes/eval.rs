//! `verbatim eval-themes`: streams labelled rows (`text`, ground-truth
//! `label`) through the online theme model in one pass, in input order, and
//! scores the assignment against the labels (NMI, ARI), beside k-means with
//! k = number of labels on the same embeddings in the same run (linfa).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use serde::Serialize;

use crate::config::{NlpConfig, ThemesConfig};
use crate::themes::online::ThemeModel;

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

/// Reads `text` and `label` of every row.
fn read(path: &Path) -> Result<(Vec<String>, Vec<String>), EvalThemesError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalThemesError::Read {
        path: p.clone(),
        source,
    })?;
    let (mut texts, mut labels) = (Vec::new(), Vec::new());
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
        let (Some(t), Some(l)) = (v["text"].as_str(), v["label"].as_str()) else {
            return Err(row_err("needs `text` and `label` strings".into()));
        };
        texts.push(t.to_string());
        labels.push(l.to_string());
    }
    Ok((texts, labels))
}

/// Embeds the rows, streams them through a [`ThemeModel`] in order, and
/// scores it and the k-means baseline.
pub fn evaluate(
    path: &Path,
    nlp: &NlpConfig,
    themes: &ThemesConfig,
) -> Result<ThemesReport, EvalThemesError> {
    let data = Embedded::load(path, nlp)?;
    let run = data.stream(&data.calibrate(themes), None);
    Ok(ThemesReport {
        n: data.texts.len(),
        themes: run.themes,
        outlier_share: run.outlier_share,
        nmi: run.nmi,
        ari: run.ari,
        batch_baseline: data.baseline()?,
        labels: data.labels(),
    })
}

/// Labelled rows and their embeddings, computed once so that many theme
/// settings and stream orders can be scored on the same vectors.
pub struct Embedded {
    texts: Vec<String>,
    truth: Vec<i64>,
    vecs: Vec<Vec<f32>>,
    dim: usize,
    calibration: crate::config::Calibration,
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
}

impl Embedded {
    /// Reads the rows of `path` and embeds them with `nlp`'s model.
    pub fn load(path: &Path, nlp: &NlpConfig) -> Result<Self, EvalThemesError> {
        let (texts, labels) = read(path)?;
        let manifest = crate::nlp::model::ModelManifest::load(&nlp.models_dir, &nlp.model)
            .map_err(crate::nlp::NlpError::from)?;
        let mut embed = crate::nlp::embed_operator(nlp)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let pb = indicatif::ProgressBar::new(texts.len() as u64);
        let mut vecs = Vec::with_capacity(texts.len());
        for chunk in refs.chunks(512) {
            vecs.extend(embed.comment_vectors(chunk)?);
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
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
            dim: embed.embedding_dim(),
            calibration: manifest.calibration,
        })
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
    /// order or in the order a shuffle with `seed` gives, and scores the
    /// assignment against the labels.
    pub fn stream(&self, cfg: &ThemesConfig, shuffle: Option<u64>) -> StreamRun {
        let order = self.order(shuffle);
        let mut model = ThemeModel::new(cfg.clone(), self.dim);
        let mut online = vec![-1i64; self.texts.len()];
        for &i in &order {
            online[i] = model
                .assign(&self.vecs[i], &self.texts[i])
                .theme
                .map_or(-1, i64::from);
        }
        let outliers = online.iter().filter(|&&x| x < 0).count();
        let on = agreement(&self.truth, &online);
        StreamRun {
            join_similarity: cfg.join_similarity(),
            cluster_distance: cfg.cluster_distance(),
            shuffle,
            themes: model.themes().len(),
            outlier_share: outliers as f64 / self.texts.len().max(1) as f64,
            nmi: on.nmi,
            ari: on.ari,
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

use rand_xoshiro::rand_core::{RngCore, SeedableRng};

#[cfg(test)]
mod tests {
    use super::*;

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
