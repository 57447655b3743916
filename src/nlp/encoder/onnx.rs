//! ONNX Runtime backend (the default), through the `ort` crate with
//! `load-dynamic`: `libonnxruntime.so` comes from the pinned PyPI
//! `onnxruntime` wheel (`models/setup.sh`), never from a build-time download.
//!
//! Threads are planned, not left to chance: `nlp.threads` cores (one per
//! core by default) are split into `nlp.lanes` lanes. Each lane runs whole
//! sub-batches on the one session, side by side with the others, using
//! `threads / lanes` intra-op threads; one inter-op thread, and intra-op
//! spinning off so idle workers do not burn the cores the rest of the job
//! needs. Lanes beat intra-op threads on small sub-batches, where an op is
//! too short to split well: e5 int8, 2 cores, 1024/16 sub-batches gave
//! 272-361 sentences/s with 2 lanes of 1 thread against 238-279 with one
//! lane of 2 threads, at the same peak RSS (`models/probes/par.py`; README
//! "Speed and memory of the two models").
//!
//! Lanes share one session, so the weights are loaded once. The `ort` crate
//! only offers `Run` on `&mut Session`; ONNX Runtime's own `Run` may be
//! called from several threads on one session at once (its documented
//! contract, what its Python binding does when threads release the GIL), so
//! [`OnnxEncoder::run_session`] calls the C API's `Run` directly, with
//! inputs and outputs that each call owns.
//!
//! ORT's `SkipLayerNormFusion` is switched off: its fused
//! SkipLayerNormalization kernel cost 3.5x the plain Add + LayerNormalization
//! pair it replaces (ORT 1.31, Xeon, e5 int8 profile: 558 ms against 164 ms
//! of a 2.6 s run), so `models/build_onnx.py` emits the plain pair and the
//! session keeps it.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use ort::AsPointer;

use super::{mean_pool, pad, timed, unpad_tokens, Encoded, Encoder, EncoderError, Timed};

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
    /// Sub-batches run side by side on the session.
    lanes: usize,
    path: String,
    token_type_ids: bool,
    dim: usize,
    tag: String,
}

impl OnnxEncoder {
    /// Loads `model` with ONNX Runtime from `lib`. `tag` names it in the
    /// output (`model onnx precision`); `threads` 0 means one per core;
    /// `lanes` 0 means one per thread (see the module docs).
    pub fn new(
        lib: &Path,
        model: &Path,
        dim: usize,
        threads: usize,
        lanes: usize,
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
        let lanes = if lanes == 0 { threads } else { lanes };
        let intra = (threads / lanes).max(1);
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
            .with_intra_threads(intra)
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
            lanes,
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
        self.check_tokens(with_tokens)?;
        self.forward(rows, with_tokens)
    }

    fn run_groups(
        &mut self,
        groups: &[Vec<&[u32]>],
        with_tokens: bool,
    ) -> Result<Vec<Timed>, EncoderError> {
        self.check_tokens(with_tokens)?;
        let lanes = self.lanes.min(groups.len());
        if lanes <= 1 {
            return groups
                .iter()
                .map(|g| timed(|| self.forward(g, with_tokens)))
                .collect();
        }
        // Each lane takes the next sub-batch not yet taken, the costliest
        // (rows x longest) first: the last ones are then short, and a lane
        // that finishes early does not wait long for the other.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        let cost = |g: &[&[u32]]| g.len() * g.iter().map(|r| r.len()).max().unwrap_or(0);
        order.sort_by_key(|&i| std::cmp::Reverse(cost(&groups[i])));
        let next = AtomicUsize::new(0);
        let this = &*self;
        let work = || {
            let mut done = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else {
                    return done;
                };
                done.push((i, timed(|| this.forward(&groups[i], with_tokens))));
            }
        };
        let mut done = std::thread::scope(|s| {
            let others: Vec<_> = (1..lanes).map(|_| s.spawn(work)).collect();
            let mut done = work();
            for lane in others {
                match lane.join() {
                    Ok(d) => done.extend(d),
                    Err(_) => return Err(EncoderError::Run("an inference lane panicked".into())),
                }
            }
            Ok(done)
        })?;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }
}

impl OnnxEncoder {
    fn check_tokens(&self, with_tokens: bool) -> Result<(), EncoderError> {
        if with_tokens && self.token_output.is_none() {
            return Err(EncoderError::Signature {
                path: self.path.clone(),
                message: "has no `token_embeddings` or `last_hidden_state` output, which comment analysis reads. Fix: rebuild it with `bash models/setup.sh`, or export the model with its last hidden state".into(),
            });
        }
        Ok(())
    }

    /// One forward pass; token vectors are copied out only when asked for.
    /// Takes `&self`: lanes call it at once on the one session.
    fn forward(&self, rows: &[&[u32]], with_tokens: bool) -> Result<Vec<Encoded>, EncoderError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, mask, seq) = pad(rows);
        let n = rows.len();
        let dim = self.dim;
        let run_err = |e: ort::Error| EncoderError::Run(e.to_string());
        let shape = [n as i64, seq as i64];
        let mut inputs: Vec<(&str, DynValue)> = vec![
            (
                "input_ids",
                Tensor::from_array((shape, ids))
                    .map_err(run_err)?
                    .into_dyn(),
            ),
            (
                "attention_mask",
                Tensor::from_array((shape, mask.clone()))
                    .map_err(run_err)?
                    .into_dyn(),
            ),
        ];
        if self.token_type_ids {
            let zeros = vec![0i64; n * seq];
            inputs.push((
                "token_type_ids",
                Tensor::from_array((shape, zeros))
                    .map_err(run_err)?
                    .into_dyn(),
            ));
        }
        // Outputs are allocated here, in the shapes the graph must return
        // (ONNX Runtime rejects a mismatch), so every call owns its own.
        let zeros = |shape: Vec<i64>, len: usize| -> Result<DynValue, EncoderError> {
            Ok(Tensor::from_array((shape, vec![0f32; len]))
                .map_err(run_err)?
                .into_dyn())
        };
        let pooled = matches!(self.output, OutputKind::Sentence(_));
        let main_shape = if pooled {
            vec![n as i64, dim as i64]
        } else {
            vec![n as i64, seq as i64, dim as i64]
        };
        let main_len = main_shape.iter().product::<i64>() as usize;
        let mut outputs: Vec<(&str, DynValue)> =
            vec![(self.output.name(), zeros(main_shape, main_len)?)];
        let tokens_name = match (&self.token_output, with_tokens) {
            (Some(name), true) if name != self.output.name() => {
                outputs.push((
                    name,
                    zeros(vec![n as i64, seq as i64, dim as i64], n * seq * dim)?,
                ));
                Some(1)
            }
            (Some(_), true) => Some(0),
            _ => None,
        };
        self.run_session(&inputs, &mut outputs)?;
        let data = |k: usize| -> Result<&[f32], EncoderError> {
            Ok(outputs[k].1.try_extract_tensor::<f32>().map_err(run_err)?.1)
        };
        let main = data(0)?;
        let embeddings = if pooled {
            main.chunks(dim).map(<[f32]>::to_vec).collect()
        } else {
            mean_pool(main, &mask, n, seq, dim)
        };
        let tokens = match tokens_name {
            Some(k) => unpad_tokens(data(k)?, rows, seq, dim),
            None => vec![Vec::new(); n],
        };
        Ok(embeddings
            .into_iter()
            .zip(tokens)
            .map(|(embedding, tokens)| Encoded { embedding, tokens })
            .collect())
    }

    /// ONNX Runtime's `Run` through its C API on `&self`, writing into the
    /// caller's `outputs` (see the module docs for why not `ort`'s `run`).
    fn run_session(
        &self,
        inputs: &[(&str, DynValue)],
        outputs: &mut [(&str, DynValue)],
    ) -> Result<(), EncoderError> {
        let cstr = |name: &str| {
            CString::new(name).map_err(|_| EncoderError::Run(format!("bad tensor name {name:?}")))
        };
        let in_names = inputs
            .iter()
            .map(|(n, _)| cstr(n))
            .collect::<Result<Vec<_>, _>>()?;
        let out_names = outputs
            .iter()
            .map(|(n, _)| cstr(n))
            .collect::<Result<Vec<_>, _>>()?;
        let in_name_ptrs: Vec<*const c_char> = in_names.iter().map(|n| n.as_ptr()).collect();
        let out_name_ptrs: Vec<*const c_char> = out_names.iter().map(|n| n.as_ptr()).collect();
        let in_values: Vec<*const ort::sys::OrtValue> =
            inputs.iter().map(|(_, v)| v.ptr()).collect();
        let mut out_values: Vec<*mut ort::sys::OrtValue> =
            outputs.iter_mut().map(|(_, v)| v.ptr_mut()).collect();
        // SAFETY: every pointer comes from a live value borrowed for this
        // call (the session, the names, the input and output tensors), and
        // the counts are those vectors' lengths. The outputs are tensors
        // this call allocated, which ONNX Runtime fills in place. ONNX
        // Runtime allows concurrent `Run` calls on one session; nothing
        // else here is shared between calls.
        let status = unsafe {
            (ort::api().Run)(
                self.session.ptr().cast_mut(),
                std::ptr::null(),
                in_name_ptrs.as_ptr(),
                in_values.as_ptr(),
                in_values.len(),
                out_name_ptrs.as_ptr(),
                out_name_ptrs.len(),
                out_values.as_mut_ptr(),
            )
        };
        // SAFETY: `status` is what `Run` just returned.
        unsafe { ort::Error::result_from_status(status) }
            .map_err(|e| EncoderError::Run(e.to_string()))
    }
}
