//! ONNX Runtime backend (the default), through the `ort` crate with
//! `load-dynamic`: `libonnxruntime.so` comes from the pinned PyPI
//! `onnxruntime` wheel (`models/setup.sh`), never from a build-time download.
//!
//! Threads are planned, not left to chance: one intra-op thread per core (or
//! `nlp.threads`), one inter-op thread, and intra-op spinning off so idle
//! workers do not burn the cores the rest of the job needs.
//!
//! ORT's `SkipLayerNormFusion` is switched off: its fused
//! SkipLayerNormalization kernel cost 3.5x the plain Add + LayerNormalization
//! pair it replaces (ORT 1.31, Xeon, e5 int8 profile: 558 ms against 164 ms
//! of a 2.6 s run), so `models/build_onnx.py` emits the plain pair and the
//! session keeps it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::{mean_pool, pad, unpad_tokens, Encoded, Encoder, EncoderError};

/// The process-wide ONNX Runtime environment, loaded once from one library.
static ENV: OnceLock<Mutex<Option<(PathBuf, Environment)>>> = OnceLock::new();

fn environment(lib: &Path) -> Result<Environment, EncoderError> {
    let lib = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| lib.to_path_buf());
    // Checked even when a runtime is already loaded: a config naming a
    // library that is not there is wrong, whatever this process loaded first.
    if !lib.is_file() {
        return Err(EncoderError::OrtLibraryMissing {
            path: lib.display().to_string(),
        });
    }
    let cell = ENV.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = guard.as_ref() {
        if loaded != &lib {
            tracing::warn!(requested = %lib.display(), loaded = %loaded.display(), "ONNX Runtime is loaded once per process; using the library loaded first");
        }
        return Ok(env.clone());
    }
    let load_err = |message: String| EncoderError::OrtLoad {
        path: lib.display().to_string(),
        message,
    };
    let env = ort::init_from(&lib)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("verbatim")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    *guard = Some((lib, env.clone()));
    Ok(env)
}

/// What the graph returns.
enum OutputKind {
    /// `[batch, dim]` sentence vectors, already pooled and normalised.
    Sentence(String),
    /// `[batch, seq, dim]` token vectors, pooled here.
    Tokens(String),
}

impl OutputKind {
    fn name(&self) -> &str {
        match self {
            OutputKind::Sentence(n) | OutputKind::Tokens(n) => n,
        }
    }
}

/// A sentence encoder running an ONNX graph.
pub struct OnnxEncoder {
    session: Session,
    output: OutputKind,
    /// The `[batch, seq, dim]` output, if the graph has one.
    token_output: Option<String>,
    path: String,
    token_type_ids: bool,
    dim: usize,
    tag: String,
}

impl OnnxEncoder {
    /// Loads `model` with ONNX Runtime from `lib`. `tag` names it in the
    /// output (`model onnx precision`); `threads` 0 means one per core.
    pub fn new(
        lib: &Path,
        model: &Path,
        dim: usize,
        threads: usize,
        tag: String,
    ) -> Result<Self, EncoderError> {
        let env = environment(lib)?;
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            threads
        };
        let path = model.display().to_string();
        let sess_err = |message: String| EncoderError::Session {
            path: path.clone(),
            message,
        };
        let builder = Session::builder(&env).map_err(|e| sess_err(e.to_string()))?;
        let builder = builder
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| sess_err(e.to_string()))?;
        let builder = builder
            .with_intra_threads(threads)
            .map_err(|e| sess_err(e.to_string()))?;
        let builder = builder
            .with_inter_threads(1)
            .map_err(|e| sess_err(e.to_string()))?;
        let builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| sess_err(e.to_string()))?;
        let mut builder = builder
            .with_disabled_optimizers("SkipLayerNormFusion")
            .map_err(|e| sess_err(e.to_string()))?;
        let session = builder
            .commit_from_file(model)
            .map_err(|e| sess_err(e.to_string()))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for needed in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|i| i == needed) {
                return Err(EncoderError::Signature {
                    path,
                    message: format!(
                        "has inputs {inputs:?}; it needs `input_ids` and `attention_mask`"
                    ),
                });
            }
        }
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let output = if outputs.iter().any(|o| o == "sentence_embedding") {
            OutputKind::Sentence("sentence_embedding".into())
        } else if let Some(o) = outputs
            .iter()
            .find(|o| *o == "last_hidden_state" || *o == "token_embeddings")
        {
            OutputKind::Tokens(o.clone())
        } else {
            return Err(EncoderError::Signature {
                path,
                message: format!(
                    "has outputs {outputs:?}; it needs `sentence_embedding` or `last_hidden_state`"
                ),
            });
        };
        let token_output = outputs
            .iter()
            .find(|o| *o == "token_embeddings" || *o == "last_hidden_state")
            .cloned();
        Ok(Self {
            token_type_ids: inputs.iter().any(|i| i == "token_type_ids"),
            session,
            output,
            token_output,
            path,
            dim,
            tag,
        })
    }
}

impl Encoder for OnnxEncoder {
    fn describe(&self) -> String {
        self.tag.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn run(&mut self, rows: &[&[u32]], with_tokens: bool) -> Result<Vec<Encoded>, EncoderError> {
        if with_tokens && self.token_output.is_none() {
            return Err(EncoderError::Signature {
                path: self.path.clone(),
                message: "has no `token_embeddings` or `last_hidden_state` output, which comment analysis reads. Fix: rebuild it with `bash models/setup.sh`, or export the model with its last hidden state".into(),
            });
        }
        self.forward(rows, with_tokens)
    }
}

impl OnnxEncoder {
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
        let n = rows.len();
        let run_err = |e: ort::Error| EncoderError::Run(e.to_string());
        let shape = [n as i64, seq as i64];
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(run_err)?,
            "attention_mask" => Tensor::from_array((shape, mask.clone())).map_err(run_err)?,
        ];
        if self.token_type_ids {
            let zeros = vec![0i64; n * seq];
            inputs.push((
                "token_type_ids".into(),
                Tensor::from_array((shape, zeros)).map_err(run_err)?.into(),
            ));
        }
        let want_dim = self.dim;
        let (output, token_output) = (self.output.name().to_string(), self.token_output.clone());
        let pooled = matches!(self.output, OutputKind::Sentence(_));
        let check_dim = |dim: usize| -> Result<(), EncoderError> {
            if dim != want_dim {
                return Err(EncoderError::Run(format!(
                    "model returned vectors of {dim}, the manifest says {want_dim}"
                )));
            }
            Ok(())
        };
        let outputs = self.session.run(inputs).map_err(run_err)?;
        let extract = |name: &str| -> Result<(usize, &[f32]), EncoderError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| EncoderError::Run(format!("no output `{name}`")))?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_err)?;
            Ok((*shape.last().unwrap_or(&0) as usize, data))
        };
        let (dim, data) = extract(&output)?;
        check_dim(dim)?;
        let embeddings = if pooled {
            data.chunks(dim).map(<[f32]>::to_vec).collect()
        } else {
            mean_pool(data, &mask, n, seq, dim)
        };
        let tokens = match (&token_output, with_tokens) {
            (Some(name), true) => {
                let (dim, data) = extract(name)?;
                check_dim(dim)?;
                unpad_tokens(data, rows, seq, dim)
            }
            _ => vec![Vec::new(); n],
        };
        Ok(embeddings
            .into_iter()
            .zip(tokens)
            .map(|(embedding, tokens)| Encoded { embedding, tokens })
            .collect())
    }
}
