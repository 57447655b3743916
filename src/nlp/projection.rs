//! The theme projection: a linear map a model's manifest may put between its
//! sentence vectors and everything that compares comments with each other
//! (the `embedding` column, themes, refits, `eval-themes`).
//!
//! multilingual-e5-small's cosines are compressed (two unrelated comments sit
//! near 0.84) and its vectors cluster customer intents worse than
//! all-MiniLM-L6-v2's. `models/train_theme_projection.py` fits a map from
//! centred e5 vectors into MiniLM's space, on English texts (e5 → MiniLM of
//! the same text) and Russian ones (e5 of the Russian → MiniLM of its English
//! original). Through it, one multilingual forward pass gives vectors that
//! MiniLM's theme thresholds fit, and a Russian comment lands next to its
//! English original. Token vectors, and so the analysis heads and targets by
//! example, never go through it.
//!
//! File: safetensors with f32 `mean` `[in]` and `weight` `[in, out]`;
//! `v ↦ normalise((v − mean) · weight)`.

use std::path::Path;

use super::model::{verify, ModelError, ModelManifest};

/// A loaded projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    mean: Vec<f32>,
    /// Row-major `[dim_in, dim_out]`.
    weight: Vec<f32>,
    dim_out: usize,
    /// First 8 hex digits of the file's sha256, for the `embedding_model` tag.
    short_sha: String,
}

impl Projection {
    /// The projection `manifest` names (`[theme_projection]`, a path relative
    /// to `models_dir`), verified against its sha256; `None` when the
    /// manifest names none.
    pub fn for_model(
        models_dir: &Path,
        manifest: &ModelManifest,
    ) -> Result<Option<Self>, ModelError> {
        let Some(p) = &manifest.theme_projection else {
            return Ok(None);
        };
        let path = models_dir.join(&p.file);
        verify(&path, &p.sha256)?;
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let mut out =
            Self::from_safetensors(&bytes, manifest.embedding_dim).map_err(|message| {
                ModelError::Manifest {
                    path: path.clone(),
                    message,
                }
            })?;
        out.short_sha = p.sha256.chars().take(8).collect();
        Ok(Some(out))
    }

    /// Parses the tensors; `dim_in` must match the model's vectors.
    fn from_safetensors(bytes: &[u8], dim_in: usize) -> Result<Self, String> {
        let t = candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        let get = |name: &str| {
            t.get(name)
                .ok_or_else(|| format!("no tensor `{name}`"))
                .and_then(|x| {
                    let dims = x.dims().to_vec();
                    x.flatten_all()
                        .and_then(|f| f.to_vec1::<f32>())
                        .map(|v| (dims, v))
                        .map_err(|e| format!("tensor `{name}`: {e}"))
                })
        };
        let (mdims, mean) = get("mean")?;
        let (wdims, weight) = get("weight")?;
        match (mdims.as_slice(), wdims.as_slice()) {
            ([m], [i, o]) if *m == dim_in && *i == dim_in && *o > 0 => Ok(Self {
                mean,
                weight,
                dim_out: *o,
                short_sha: String::new(),
            }),
            _ => Err(format!(
                "theme projection has mean {mdims:?} and weight {wdims:?}; the model's vectors have {dim_in} values (expected mean [{dim_in}], weight [{dim_in}, n])"
            )),
        }
    }

    /// Size of the projected vectors.
    pub fn dim(&self) -> usize {
        self.dim_out
    }

    /// `theme projection <first 8 hex digits of the file's sha256>`.
    pub fn id(&self) -> String {
        format!("theme projection {}", self.short_sha)
    }

    /// Maps one vector: `normalise((v − mean) · weight)`.
    pub fn apply(&self, v: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.dim_out];
        for ((x, m), row) in v
            .iter()
            .zip(&self.mean)
            .zip(self.weight.chunks_exact(self.dim_out))
        {
            let c = x - m;
            out.iter_mut().zip(row).for_each(|(o, w)| *o += c * w);
        }
        super::encoder::normalize(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tensors(mean: &[f32], weight: &[f32], rows: usize, cols: usize) -> Vec<u8> {
        let dev = candle_core::Device::Cpu;
        let m = candle_core::Tensor::from_slice(mean, (mean.len(),), &dev).unwrap();
        let w = candle_core::Tensor::from_slice(weight, (rows, cols), &dev).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.safetensors");
        candle_core::safetensors::save(
            &[("mean".to_string(), m), ("weight".to_string(), w)]
                .into_iter()
                .collect(),
            &p,
        )
        .unwrap();
        std::fs::read(&p).unwrap()
    }

    #[test]
    fn centres_maps_and_normalises() {
        // mean (1, 0), weight swaps the axes and doubles the second.
        let b = tensors(&[1.0, 0.0], &[0.0, 2.0, 1.0, 0.0], 2, 2);
        let p = Projection::from_safetensors(&b, 2).unwrap();
        assert_eq!(p.dim(), 2);
        let v = p.apply(&[4.0, 3.0]); // centred (3, 3) -> (3, 6)
        let n = (9.0f32 + 36.0).sqrt();
        assert!((v[0] - 3.0 / n).abs() < 1e-6 && (v[1] - 6.0 / n).abs() < 1e-6);
    }

    #[test]
    fn a_projection_for_other_vectors_is_refused() {
        let b = tensors(&[0.0; 3], &[0.0; 6], 3, 2);
        let e = Projection::from_safetensors(&b, 384).unwrap_err();
        assert!(e.contains("384"), "{e}");
        assert!(Projection::from_safetensors(b"not safetensors", 3).is_err());
    }

    #[test]
    fn the_shipped_e5_projection_verifies_and_loads() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        let m = ModelManifest::load(&dir, "multilingual-e5-small").unwrap();
        let p = Projection::for_model(&dir, &m).unwrap().unwrap();
        assert_eq!(p.dim(), 384);
        let mini = ModelManifest::load(&dir, "all-MiniLM-L6-v2").unwrap();
        assert!(Projection::for_model(&dir, &mini).unwrap().is_none());
    }
}
