//! Learned flags: one logistic regression per flag over the comment's
//! vector (the model's own mean-pooled, L2-normalised sentence vector),
//! trained by `verbatim train-flags` on comments the team labelled in both
//! languages, hard negatives included.
//!
//! The patterns of [`super::flags`] catch the phrasings they were written
//! for; these heads catch the same request in other words ("the floor was
//! wet and an elderly man fell" is a safety risk no pattern names). Both
//! run: a flag is raised when its pattern matches or its head says so, and
//! the head's evidence is the clause that scores highest for the flag.
//! The weights sit beside the aspect heads
//! (`models/heads/<model>/flags.toml` and `flags.safetensors`), with the
//! data, its sha256 and the command that made them.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::heads::{sha256_hex, HeadsError, TrainingFile};

/// `flags.toml`: what the flag heads are and how they were made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlagHeadsManifest {
    /// The embedding model whose sentence vectors the heads read.
    pub model: String,
    /// `model backend precision` the training vectors came from.
    pub encoder: String,
    /// The flags, in the weights' row order.
    pub flags: Vec<String>,
    /// The weights file, beside the manifest.
    pub weights: String,
    /// Its sha256.
    pub weights_sha256: String,
    /// The command that made these weights.
    pub command: String,
    /// L2 penalty on the standardised features.
    pub l2: f64,
    /// Full-batch gradient steps.
    pub iterations: usize,
    /// How far positives are weighed up towards the negatives' total:
    /// each positive counts `(negatives / positives) ^ balance` (1: both
    /// classes count the same; 0: every row counts once).
    #[serde(default = "one")]
    pub balance: f64,
    /// Data the heads learnt from.
    pub data: Vec<TrainingFile>,
    /// Per flag, positives and negatives trained on.
    #[serde(default)]
    pub counts: BTreeMap<String, (usize, usize)>,
}

/// Trained flag heads: `logit = w · v + b` per flag, raised at `logit > 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagHeads {
    /// The flags, in row order.
    pub flags: Vec<String>,
    /// `[flag][dim]`.
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

impl FlagHeads {
    /// Heads from weights `[flag][dim]` and biases.
    pub fn new(flags: Vec<String>, weights: Vec<Vec<f32>>, bias: Vec<f32>) -> Self {
        Self {
            flags,
            weights,
            bias,
        }
    }

    /// Vector size the heads read.
    pub fn dim(&self) -> usize {
        self.weights.first().map_or(0, Vec::len)
    }

    /// One logit per flag for an L2-normalised vector `v`.
    pub fn logits(&self, v: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(v).map(|(a, x)| a * x).sum::<f32>() + b)
            .collect()
    }

    /// Fits one logistic regression per flag on vectors `x` with `labels`
    /// (`labels[row][flag]`): features standardised, each positive weighed
    /// `(negatives / positives) ^ balance` (1: both classes count the
    /// same), `l2` on the standardised weights,
    /// `iterations` full-batch gradient steps from zero (deterministic).
    /// The standardisation is folded into the returned weights.
    pub fn fit(
        flags: Vec<String>,
        x: &[Vec<f32>],
        labels: &[Vec<bool>],
        l2: f64,
        iterations: usize,
        balance: f64,
    ) -> Self {
        let n = x.len();
        let d = x.first().map_or(0, Vec::len);
        let mut mu = vec![0f64; d];
        let mut sd = vec![0f64; d];
        for v in x {
            for (m, &a) in mu.iter_mut().zip(v) {
                *m += f64::from(a) / n.max(1) as f64;
            }
        }
        for v in x {
            for ((s, &a), m) in sd.iter_mut().zip(v).zip(&mu) {
                *s += (f64::from(a) - m).powi(2) / n.max(1) as f64;
            }
        }
        for s in sd.iter_mut() {
            *s = s.sqrt() + 1e-6;
        }
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|v| {
                v.iter()
                    .zip(&mu)
                    .zip(&sd)
                    .map(|((&a, m), s)| (f64::from(a) - m) / s)
                    .collect()
            })
            .collect();
        let lr = 0.1;
        let mut weights = Vec::with_capacity(flags.len());
        let mut bias = Vec::with_capacity(flags.len());
        for f in 0..flags.len() {
            let y: Vec<f64> = labels
                .iter()
                .map(|l| f64::from(u8::from(l.get(f).copied().unwrap_or(false))))
                .collect();
            let pos = y.iter().sum::<f64>();
            let pos_weight = if pos > 0.0 {
                ((n as f64 - pos) / pos).powf(balance)
            } else {
                1.0
            };
            let mut w = vec![0f64; d];
            let mut b = 0f64;
            let mut grad = vec![0f64; d];
            for _ in 0..iterations {
                grad.iter_mut().for_each(|g| *g = 0.0);
                let mut gb = 0.0;
                for (row, &t) in z.iter().zip(&y) {
                    let logit = row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b;
                    let p = 1.0 / (1.0 + (-logit).exp());
                    let g = (p - t) * if t > 0.5 { pos_weight } else { 1.0 };
                    gb += g;
                    for (acc, a) in grad.iter_mut().zip(row) {
                        *acc += g * a;
                    }
                }
                for (wi, g) in w.iter_mut().zip(&grad) {
                    *wi -= lr * (g / n.max(1) as f64 + l2 * *wi);
                }
                b -= lr * gb / n.max(1) as f64;
            }
            // w·(v - mu)/sd + b  =  (w/sd)·v + (b - Σ w·mu/sd)
            let raw: Vec<f32> = w.iter().zip(&sd).map(|(a, s)| (a / s) as f32).collect();
            let shift: f64 = w
                .iter()
                .zip(&mu)
                .zip(&sd)
                .map(|((a, m), s)| a * m / s)
                .sum();
            weights.push(raw);
            bias.push((b - shift) as f32);
        }
        Self::new(flags, weights, bias)
    }

    /// Writes the weights to `dir/flags.safetensors`; returns their sha256.
    pub fn save(&self, dir: &Path) -> Result<String, HeadsError> {
        let rows = self.weights.len();
        let flat: Vec<f32> = self.weights.iter().flatten().copied().collect();
        let mut map = std::collections::HashMap::new();
        map.insert(
            "flags.weight".to_string(),
            Tensor::from_vec(flat, (rows, self.dim()), &Device::Cpu)?,
        );
        map.insert(
            "flags.bias".to_string(),
            Tensor::from_vec(self.bias.clone(), rows, &Device::Cpu)?,
        );
        let path = dir.join(WEIGHTS);
        candle_core::safetensors::save(&map, &path)?;
        let bytes = std::fs::read(&path).map_err(|source| HeadsError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Ok(sha256_hex(&bytes))
    }

    /// Loads `dir/flags.toml` and its weights, checked against the
    /// manifest's sha256 and model. `None` when the folder has no flag
    /// heads (the patterns alone raise flags then).
    pub fn load(dir: &Path, model: &str) -> Result<Option<(Self, FlagHeadsManifest)>, HeadsError> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let manifest_err = |message: String| HeadsError::Manifest {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| manifest_err(e.to_string()))?;
        let manifest: FlagHeadsManifest =
            toml::from_str(&text).map_err(|e| manifest_err(e.to_string()))?;
        if manifest.model != model {
            return Err(HeadsError::WrongModel {
                path: path.display().to_string(),
                trained: manifest.model,
                model: model.to_string(),
            });
        }
        let bytes = super::heads::read_verified(dir, &manifest.weights, &manifest.weights_sha256)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let get = |name: &str| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| manifest_err(format!("{} has no tensor {name}", manifest.weights)))
        };
        let weights: Vec<Vec<f32>> = get("flags.weight")?.to_vec2()?;
        let bias: Vec<f32> = get("flags.bias")?.to_vec1()?;
        if weights.len() != manifest.flags.len() || bias.len() != manifest.flags.len() {
            return Err(manifest_err(format!(
                "{} rows of weights for {} flags",
                weights.len(),
                manifest.flags.len()
            )));
        }
        Ok(Some((
            Self::new(manifest.flags.clone(), weights, bias),
            manifest,
        )))
    }
}

/// The manifest's file name.
pub const MANIFEST: &str = "flags.toml";

/// `balance` of manifests written before it existed.
fn one() -> f64 {
    1.0
}

/// The weights' file name.
pub const WEIGHTS: &str = "flags.safetensors";

#[cfg(test)]
mod tests {
    use super::*;

    /// Two separable clusters: the head learns which side is the flag, and
    /// the folded standardisation scores raw vectors the same way.
    #[test]
    fn fit_separates_and_round_trips() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..40 {
            let t = i as f32 / 40.0;
            let pos = i % 4 == 0;
            let v = if pos {
                vec![0.9, 0.1 + t * 0.05, 0.3]
            } else {
                vec![0.1, 0.8 - t * 0.05, 0.3]
            };
            x.push(v);
            y.push(vec![pos, !pos]);
        }
        let h = FlagHeads::fit(vec!["a".into(), "b".into()], &x, &y, 0.01, 500, 1.0);
        for (v, l) in x.iter().zip(&y) {
            let g = h.logits(v);
            assert_eq!(g[0] > 0.0, l[0], "{v:?} {g:?}");
            assert_eq!(g[1] > 0.0, l[1], "{v:?} {g:?}");
        }
        // Deterministic.
        assert_eq!(
            h,
            FlagHeads::fit(vec!["a".into(), "b".into()], &x, &y, 0.01, 500, 1.0)
        );
        // Saved and loaded: the same heads, the sha256 checked.
        let dir = tempfile::tempdir().unwrap();
        let sha = h.save(dir.path()).unwrap();
        let manifest = FlagHeadsManifest {
            model: "m".into(),
            encoder: "m onnx int8".into(),
            flags: h.flags.clone(),
            weights: WEIGHTS.into(),
            weights_sha256: sha,
            command: "test".into(),
            l2: 0.01,
            iterations: 500,
            balance: 1.0,
            data: Vec::new(),
            counts: BTreeMap::new(),
        };
        std::fs::write(
            dir.path().join(MANIFEST),
            toml::to_string(&manifest).unwrap(),
        )
        .unwrap();
        let (back, m) = FlagHeads::load(dir.path(), "m").unwrap().unwrap();
        assert_eq!(back, h);
        assert_eq!(m, manifest);
        assert!(matches!(
            FlagHeads::load(dir.path(), "other"),
            Err(HeadsError::WrongModel { .. })
        ));
        std::fs::write(dir.path().join(WEIGHTS), b"tampered").unwrap();
        assert!(matches!(
            FlagHeads::load(dir.path(), "m"),
            Err(HeadsError::Checksum { .. })
        ));
        assert!(FlagHeads::load(&dir.path().join("none"), "m")
            .unwrap()
            .is_none());
    }
}
