//! rust-bert backend over libtorch (cargo feature `torch`): PyTorch's own
//! kernels, so it reproduces sentence-transformers' numerics, and the path
//! to a GPU.
//!
//! The BERT encoder is rust-bert's `BertModel`, loaded straight from the
//! pinned `model.safetensors` (no `rust_model.ot` conversion); mean pooling
//! over the attention mask and L2 normalisation follow, as
//! sentence-transformers does. Runs on the CPU unless `nlp.device` asks for
//! `cuda` and one is available.

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use tch::{nn, Device, Kind, Tensor};

use super::{pad, unpad_tokens, Encoded, Encoder, EncoderError};
use crate::nlp::model::ModelFiles;

/// A sentence encoder on libtorch.
pub struct TorchEncoder {
    // Owns the weights the model's tensors point into.
    _vs: nn::VarStore,
    model: BertModel<BertEmbeddings>,
    device: Device,
    dim: usize,
    tag: String,
}

fn session_err(files: &ModelFiles, message: impl std::fmt::Display) -> EncoderError {
    EncoderError::Session {
        path: files.safetensors.display().to_string(),
        message: message.to_string(),
    }
}

impl TorchEncoder {
    /// Loads the model from verified files. `threads` 0 leaves libtorch's
    /// default (one per core); `device` is `cpu`, `cuda` or `cuda:N`.
    pub fn new(files: &ModelFiles, threads: usize, device: &str) -> Result<Self, EncoderError> {
        if threads > 0 {
            tch::set_num_threads(threads as i32);
        }
        let device = match device {
            "cpu" => Device::Cpu,
            d if d.starts_with("cuda") => {
                let idx = d
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if !tch::Cuda::is_available() {
                    return Err(session_err(
                        files,
                        format!("nlp.device = {d:?} but libtorch sees no CUDA device"),
                    ));
                }
                Device::Cuda(idx)
            }
            other => return Err(session_err(files, format!("unknown nlp.device {other:?}"))),
        };
        let text = std::fs::read_to_string(files.dir.join("config.json"))
            .map_err(|e| session_err(files, e))?;
        let config: BertConfig = serde_json::from_str(&text).map_err(|e| session_err(files, e))?;
        let mut vs = nn::VarStore::new(device);
        // No pooler: sentence vectors are the mean of the token vectors, and
        // not every checkpoint ships pooler weights (multilingual-e5-small's
        // 4-bit file does not).
        let model =
            BertModel::<BertEmbeddings>::new_with_optional_pooler(vs.root(), &config, false);
        vs.load(&files.safetensors)
            .map_err(|e| session_err(files, e))?;
        let m = &files.manifest;
        Ok(Self {
            _vs: vs,
            model,
            device,
            dim: m.embedding_dim,
            tag: format!("{} torch fp32", m.name),
        })
    }
}

impl Encoder for TorchEncoder {
    fn describe(&self) -> String {
        self.tag.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn run(&mut self, rows: &[&[u32]], with_tokens: bool) -> Result<Vec<Encoded>, EncoderError> {
        self.forward(rows, with_tokens)
    }
}

impl TorchEncoder {
    /// One forward pass; token vectors are copied out only when asked for.
    fn forward(
        &mut self,
        rows: &[&[u32]],
        with_tokens: bool,
    ) -> Result<Vec<Encoded>, EncoderError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, mask, seq) = pad(rows);
        let n = rows.len() as i64;
        let ids = Tensor::from_slice(&ids)
            .view([n, seq as i64])
            .to_device(self.device);
        let mask = Tensor::from_slice(&mask)
            .view([n, seq as i64])
            .to_device(self.device);
        let (pooled, hidden) = tch::no_grad(|| -> Result<(Tensor, Tensor), EncoderError> {
            let out = self
                .model
                .forward_t(Some(&ids), Some(&mask), None, None, None, None, None, false)
                .map_err(|e| EncoderError::Run(e.to_string()))?;
            let m = mask.unsqueeze(-1).to_kind(Kind::Float);
            let summed =
                (&out.hidden_state * &m).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            let count = m
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                .clamp_min(1e-9);
            let mean = summed / count;
            let norm = mean
                .norm_scalaropt_dim(2, [1i64].as_slice(), true)
                .clamp_min(1e-12);
            Ok((
                (mean / norm).to_device(Device::Cpu).contiguous(),
                out.hidden_state.to_device(Device::Cpu).contiguous(),
            ))
        })?;
        let to_vec = |t: &Tensor| -> Result<Vec<f32>, EncoderError> {
            Vec::<f32>::try_from(t.flatten(0, -1)).map_err(|e| EncoderError::Run(e.to_string()))
        };
        let flat = to_vec(&pooled)?;
        let tokens = if with_tokens {
            unpad_tokens(&to_vec(&hidden)?, rows, seq, self.dim)
        } else {
            vec![Vec::new(); rows.len()]
        };
        Ok(flat
            .chunks(self.dim)
            .map(<[f32]>::to_vec)
            .zip(tokens)
            .map(|(embedding, tokens)| Encoded { embedding, tokens })
            .collect())
    }
}
