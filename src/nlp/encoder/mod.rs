//! Sentence encoders: one trait, one file per backend.
//!
//! - [`onnx`]: ONNX Runtime (default), fp32 or int8.
//! - `torch` (cargo feature `torch`): rust-bert over libtorch.

pub mod onnx;
#[cfg(feature = "torch")]
pub mod torch;

/// Errors from an encoder backend.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The ONNX Runtime shared library is not where the config says.
    #[error("ONNX Runtime library {path} not found. Fix: run `bash models/setup.sh` (it links .cache/onnxruntime/libonnxruntime.so from the pinned onnxruntime wheel), or set nlp.onnxruntime_library / ORT_DYLIB_PATH")]
    OrtLibraryMissing {
        /// The path tried.
        path: String,
    },
    /// The library exists but could not be loaded.
    #[error("loading ONNX Runtime from {path}: {message}. Fix: point nlp.onnxruntime_library at libonnxruntime.so 1.31 (models/setup.sh provides it)")]
    OrtLoad {
        /// The path tried.
        path: String,
        /// The loader's message.
        message: String,
    },
    /// The model could not be loaded into a session.
    #[error("loading model {path}: {message}")]
    Session {
        /// The model file.
        path: String,
        /// The runtime's message.
        message: String,
    },
    /// The model's inputs or outputs are not what verbatim can use.
    #[error("model {path}: {message}")]
    Signature {
        /// The model file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Inference failed.
    #[error("inference: {0}")]
    Run(String),
    /// The requested backend is not compiled in.
    #[error("backend `{0}` is not built into this binary. Fix: rebuild with `cargo build --release --features torch`, or set nlp.backend = \"onnx\"")]
    NotBuilt(&'static str),
}

/// Turns token ids into L2-normalised sentence vectors.
pub trait Encoder: Send {
    /// `model backend precision`, written to the `embedding_model` column.
    fn describe(&self) -> String;

    /// Vector size.
    fn dim(&self) -> usize;

    /// One forward pass over rows of token ids (unpadded; the encoder pads
    /// to the longest row): one [`Encoded`] per row, in order, with token
    /// vectors only when `with_tokens` (else they are empty).
    fn run(&mut self, rows: &[&[u32]], with_tokens: bool) -> Result<Vec<Encoded>, EncoderError>;

    /// [`Self::run`] over several sub-batches, one result per sub-batch, in
    /// order, each with how long its forward pass took. A backend that can
    /// run sub-batches side by side (ONNX with `nlp.lanes` > 1) does; by
    /// default they run one after another.
    fn run_groups(
        &mut self,
        groups: &[Vec<&[u32]>],
        with_tokens: bool,
    ) -> Result<Vec<Timed>, EncoderError> {
        groups
            .iter()
            .map(|g| timed(|| self.run(g, with_tokens)))
            .collect()
    }

    /// Sentence vectors, one per row, in order.
    fn encode(&mut self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self
            .run(rows, false)?
            .into_iter()
            .map(|e| e.embedding)
            .collect())
    }

    /// Sentence vectors and each row's last-layer token vectors (`len x
    /// dim`, row-major, padding dropped) from the same forward pass: the
    /// comment-analysis heads read them.
    fn encode_tokens(&mut self, rows: &[&[u32]]) -> Result<Vec<Encoded>, EncoderError> {
        self.run(rows, true)
    }
}

/// One sub-batch's output and the time its forward pass took.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    /// One [`Encoded`] per row, in order.
    pub encoded: Vec<Encoded>,
    /// Seconds the forward pass took (the `verbatim_inference_seconds`
    /// histogram).
    pub seconds: f64,
}

/// Runs one forward pass and times it.
pub fn timed(
    pass: impl FnOnce() -> Result<Vec<Encoded>, EncoderError>,
) -> Result<Timed, EncoderError> {
    let t = std::time::Instant::now();
    let encoded = pass()?;
    Ok(Timed {
        encoded,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// One row's encoder output with its token vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The L2-normalised sentence vector.
    pub embedding: Vec<f32>,
    /// Last-layer token vectors, `tokens.len() / dim` rows of `dim`.
    pub tokens: Vec<f32>,
}

/// Splits padded `[rows, seq, dim]` token vectors into per-row vectors
/// without the padding.
pub fn unpad_tokens(hidden: &[f32], rows: &[&[u32]], seq: usize, dim: usize) -> Vec<Vec<f32>> {
    rows.iter()
        .enumerate()
        .map(|(r, ids)| {
            let start = r * seq * dim;
            hidden[start..start + ids.len() * dim].to_vec()
        })
        .collect()
}

/// Pads rows to the longest one: `(ids, mask, longest)`, row-major.
pub fn pad(rows: &[&[u32]]) -> (Vec<i64>, Vec<i64>, usize) {
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![0i64; rows.len() * longest];
    let mut mask = vec![0i64; rows.len() * longest];
    for (i, r) in rows.iter().enumerate() {
        for (j, &t) in r.iter().enumerate() {
            ids[i * longest + j] = i64::from(t);
            mask[i * longest + j] = 1;
        }
    }
    (ids, mask, longest)
}

/// Mean-pools token vectors `[rows, seq, dim]` over the mask, then L2-normalises.
pub fn mean_pool(
    hidden: &[f32],
    mask: &[i64],
    rows: usize,
    seq: usize,
    dim: usize,
) -> Vec<Vec<f32>> {
    (0..rows)
        .map(|r| {
            let mut v = vec![0f32; dim];
            let mut n = 0f32;
            for s in 0..seq {
                if mask[r * seq + s] != 0 {
                    n += 1.0;
                    let base = (r * seq + s) * dim;
                    for (d, x) in v.iter_mut().enumerate() {
                        *x += hidden[base + d];
                    }
                }
            }
            let n = n.max(1e-9);
            v.iter_mut().for_each(|x| *x /= n);
            normalize(&mut v);
            v
        })
        .collect()
}

/// The L2-normalised mean of token `rows` of `vectors` (`dim` wide,
/// row-major), as the model pools a sentence; rows past the end are
/// skipped.
pub fn pooled(vectors: &[f32], dim: usize, rows: impl Iterator<Item = usize>) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    for t in rows {
        if let Some(row) = vectors.get(t * dim..(t + 1) * dim) {
            for (x, y) in v.iter_mut().zip(row) {
                *x += y;
            }
        }
    }
    normalize(&mut v);
    v
}

/// L2-normalises in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Dot product over the shorter of the two slices. Eight running sums, so
/// the compiler vectorises it (a plain `zip().sum()` must add in order and
/// stays scalar): theme assignment and clustering call it for every pair.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let na = dot(a, a).sqrt();
    let nb = dot(b, b).sqrt();
    dot(a, b) / (na * nb).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum() {
        for n in [0usize, 1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "n {n}");
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0]), 1.0);
    }

    #[test]
    fn pad_and_pool() {
        let a = [5u32, 6, 7];
        let b = [8u32];
        let (ids, mask, l) = pad(&[&a, &b]);
        assert_eq!(l, 3);
        assert_eq!(ids, vec![5, 6, 7, 8, 0, 0]);
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0]);
        // hidden: row 0 tokens [1,0],[3,0],[5,0]; row 1 [0,2] then padding garbage
        let hidden = [1., 0., 3., 0., 5., 0., 0., 2., 9., 9., 9., 9.];
        let v = mean_pool(&hidden, &mask, 2, 3, 2);
        assert_eq!(v[0], vec![1.0, 0.0]);
        assert_eq!(v[1], vec![0.0, 1.0]);
        assert!((cosine(&[1., 1.], &[2., 2.]) - 1.0).abs() < 1e-6);
    }
}
