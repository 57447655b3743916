//! `[nlp]`, `[privacy]` and `[targets.<name>]`: the encoder and the stages built on it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// Inference backend.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// ONNX Runtime, loaded from `onnxruntime_library` (default).
    Onnx,
    /// rust-bert over libtorch (cargo feature `torch`).
    Torch,
}

/// Weight precision of the ONNX backend.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Dynamic per-channel int8 quantization (default).
    Int8,
    /// Full precision.
    Fp32,
}

impl Precision {
    /// `int8` or `fp32`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Fp32 => "fp32",
        }
    }
}

/// `[nlp]`: the sentence encoder and the stages built on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NlpConfig {
    /// Model name: a manifest `models/<model>.toml`.
    #[serde(default = "default_model")]
    pub model: String,
    /// `onnx` (default) or `torch`.
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// `int8` (default) or `fp32` (ONNX backend).
    #[serde(default = "default_precision")]
    pub precision: Precision,
    /// Use this ONNX file instead of the one built by `models/setup.sh` (a
    /// ready export of the same model; inputs `input_ids`, `attention_mask`,
    /// output `sentence_embedding` or token embeddings `last_hidden_state`).
    #[serde(default)]
    pub onnx_file: Option<PathBuf>,
    /// Folder of model manifests.
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
    /// Folder of fetched and built model files (`<cache_dir>/<model>/`).
    #[serde(default = "default_model_cache")]
    pub cache_dir: PathBuf,
    /// `libonnxruntime.so` to load; `ORT_DYLIB_PATH` overrides it.
    #[serde(default = "default_ort_lib")]
    pub onnxruntime_library: PathBuf,
    /// Write the `embedding` column (fixed-size list of f32).
    #[serde(default = "default_true")]
    pub store_embeddings: bool,
    /// Padded tokens per inference sub-batch (rows x longest row).
    #[serde(default = "default_token_budget")]
    pub token_budget: usize,
    /// Rows per inference sub-batch, at most.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Threads for inference; 0 = one per core.
    #[serde(default)]
    pub threads: usize,
    /// Sub-batches the ONNX backend runs side by side, each on
    /// `threads / lanes` threads; 0 = one per thread (fastest measured on
    /// small sub-batches), 1 = one sub-batch at a time on every thread.
    #[serde(default)]
    pub lanes: usize,
    /// `cpu` (default), or `cuda` / `cuda:N` with the torch backend.
    #[serde(default = "default_device")]
    pub device: String,
    /// Languages to expect (ISO 639-1); detection chooses among them. Empty:
    /// any of the 70 languages whatlang knows.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Run comment analysis (sentiment, aspects) with the trained heads.
    #[serde(default = "default_true")]
    pub analyze: bool,
    /// With analysis on: encode each clause of a sentence whose clauses a
    /// contrastive conjunction joins ("but", "но"…) as a sequence of its
    /// own too, so praise and complaint are read apart (more tokens for
    /// such comments; README, "Comment analysis").
    #[serde(default = "default_true")]
    pub encode_clauses: bool,
    /// With `encode_clauses`: a comment whose clauses are encoded apart is
    /// also encoded whole (`true`), or only as its pieces, each such clause
    /// and the text around them (`false`: about the comment's tokens once,
    /// and its vectors, embedding and sentiment come from the pieces).
    #[serde(default = "default_true")]
    pub encode_whole: bool,
    /// Folder of trained heads, one sub-folder per model
    /// (`<heads_dir>/<model>/heads.toml`).
    #[serde(default = "default_heads_dir")]
    pub heads_dir: PathBuf,
    /// Per-target presence thresholds (`1 - p(absent)`, 0-1) over the
    /// heads' own (their manifest's `presence`, else `min_presence`), e.g.
    /// `{ product = 0.8 }` to report product only when the heads are surer.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub presence: std::collections::BTreeMap<String, f32>,
    /// Weight (0-1) of the sentiment head over an aspect's clause in the
    /// aspect's polarity, over the heads' own (their manifest's
    /// `clause_sentiment`); 0 reads polarity from the aspect head alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause_sentiment: Option<f32>,
}

impl NlpConfig {
    /// `onnx` or `torch`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Onnx => "onnx",
            Backend::Torch => "torch",
        }
    }
}

fn default_heads_dir() -> PathBuf {
    PathBuf::from("models/heads")
}

fn default_languages() -> Vec<String> {
    vec!["en".into(), "ru".into()]
}

fn default_device() -> String {
    "cpu".into()
}

fn default_model() -> String {
    "multilingual-e5-small".into()
}
fn default_backend() -> Backend {
    Backend::Onnx
}
fn default_precision() -> Precision {
    Precision::Int8
}
fn default_models_dir() -> PathBuf {
    PathBuf::from("models")
}
fn default_model_cache() -> PathBuf {
    PathBuf::from(".cache/models")
}
fn default_ort_lib() -> PathBuf {
    PathBuf::from(".cache/onnxruntime/libonnxruntime.so")
}
fn default_true() -> bool {
    true
}
// Small sub-batches run faster on CPU: their activations stay in cache.
// Measured with e5 int8, 2 threads, 2,000 MAMS sentences: 4096/64 gave
// 156-178 sentences/s, 1024/16 gave 194-210 (README "Speed and memory").
fn default_token_budget() -> usize {
    1024
}
fn default_max_rows() -> usize {
    16
}

impl Default for NlpConfig {
    fn default() -> Self {
        Self {
            model: default_model(),
            backend: default_backend(),
            precision: default_precision(),
            onnx_file: None,
            models_dir: default_models_dir(),
            analyze: true,
            encode_clauses: true,
            encode_whole: true,
            heads_dir: default_heads_dir(),
            cache_dir: default_model_cache(),
            onnxruntime_library: default_ort_lib(),
            store_embeddings: true,
            token_budget: default_token_budget(),
            max_rows: default_max_rows(),
            threads: 0,
            lanes: 0,
            device: default_device(),
            languages: default_languages(),
            presence: Default::default(),
            clause_sentiment: None,
        }
    }
}

/// `[targets.<name>]`: an aspect target an analyst adds by examples. A clause
/// whose meaning is close enough to one of them (cosine of the clause's mean
/// token vector and the example's embedding) becomes an aspect with this
/// target; its polarity comes from the sentiment head over the clause.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetExamples {
    /// Short phrases that are about the target, in a language the model reads.
    pub examples: Vec<String>,
    /// Lowest cosine similarity that counts (0-1). Unset: the model
    /// manifest's `[calibration] target_min_similarity`, else 0.45.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_similarity: Option<f32>,
}

/// `[calibration]` of a manifest: the similarity thresholds tuned for one
/// model. Cosines of different models are not on one scale (two unrelated
/// comments score about 0.1 with MiniLM and 0.84 with e5), so a threshold
/// tuned on one model is wrong for another. A pipeline value wins over
/// these; a value absent from both takes the built-in default (tuned on
/// all-MiniLM-L6-v2).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// `themes.join_similarity` for this model.
    pub join_similarity: Option<f32>,
    /// `themes.cluster_distance` for this model.
    pub cluster_distance: Option<f32>,
    /// `themes.cluster_distance` for this model with themes per mention
    /// (clause vectors spread wider than whole comments'); unset: the
    /// `cluster_distance` above.
    #[serde(default)]
    pub mention_cluster_distance: Option<f32>,
    /// `themes.refit_distance` for this model.
    pub refit_distance: Option<f32>,
    /// `targets.<name>.min_similarity` for this model.
    pub target_min_similarity: Option<f32>,
}

impl TargetExamples {
    /// The threshold in force with a model's calibration.
    pub fn min_similarity_for(&self, cal: &Calibration) -> f32 {
        example_threshold(self.min_similarity, cal)
    }
}

/// The similarity an example-defined target or flag needs: its own
/// `min_similarity`, else the model's calibration, else 0.45.
pub fn example_threshold(min_similarity: Option<f32>, cal: &Calibration) -> f32 {
    // With MiniLM, in tests/analysis.rs a clause about the target scores
    // 0.57 against its examples, an unrelated sentence 0.14.
    min_similarity.or(cal.target_min_similarity).unwrap_or(0.45)
}

/// `[privacy]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Replace emails, card numbers and phone numbers in comment texts and in
    /// rejected messages' bytes before they are written (default on).
    #[serde(default = "default_true")]
    pub redact_pii: bool,
    /// Write `customer_id` as a keyed SHA-256 hash (32 hex characters)
    /// instead of the value sent (default on). Repeat detection works the
    /// same either way; only the hash reaches disk.
    #[serde(default = "default_true")]
    pub hash_customer_id: bool,
    /// Name of an environment variable holding a secret mixed into that
    /// hash, so that nobody can hash a list of known emails and match them
    /// (e.g. `"VERBATIM_CUSTOMER_SALT"`). Unset: an unsalted hash. Every
    /// instance of a pipeline must use the same secret.
    #[serde(default)]
    pub customer_id_salt_env: Option<String>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            redact_pii: true,
            hash_customer_id: true,
            customer_id_salt_env: None,
        }
    }
}

impl PrivacyConfig {
    /// Checks `[privacy]`: a named salt variable must be set.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if let Some(var) = &self.customer_id_salt_env {
            if !self.hash_customer_id {
                return Err(bad.err(
                    "privacy.customer_id_salt_env",
                    "is set but privacy.hash_customer_id is false".into(),
                    "remove the salt, or set hash_customer_id = true",
                ));
            }
            if std::env::var(var).map_or(true, |v| v.is_empty()) {
                return Err(bad.err(
                    "privacy.customer_id_salt_env",
                    format!("names the environment variable {var:?}, which is not set or empty"),
                    "export it with the pipeline's secret before starting, or remove the key",
                ));
            }
        }
        Ok(())
    }

    /// The key customer ids are hashed with (`None`: written as sent).
    /// Call after [`PrivacyConfig::validate`].
    pub fn customer_hasher(&self) -> Option<crate::comment::CustomerHasher> {
        self.hash_customer_id.then(|| {
            let salt = self
                .customer_id_salt_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .unwrap_or_default();
            crate::comment::CustomerHasher::new(&salt)
        })
    }
}

impl NlpConfig {
    /// Checks every `[nlp]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if self.model.is_empty() || self.model.contains('/') || self.model.contains("..") {
            return Err(bad.err(
                "nlp.model",
                format!("is {:?}", self.model),
                "name a manifest in nlp.models_dir, e.g. \"all-MiniLM-L6-v2\"",
            ));
        }
        if !(16..=1_000_000).contains(&self.token_budget) {
            return Err(bad.err(
                "nlp.token_budget",
                format!("is {}", self.token_budget),
                "use 16 to 1000000 padded tokens per sub-batch, e.g. 1024",
            ));
        }
        if !(1..=4096).contains(&self.max_rows) {
            return Err(bad.err(
                "nlp.max_rows",
                format!("is {}", self.max_rows),
                "use 1 to 4096 rows per sub-batch, e.g. 16",
            ));
        }
        let cuda = self.device == "cuda"
            || self
                .device
                .strip_prefix("cuda:")
                .is_some_and(|i| i.parse::<u32>().is_ok());
        if self.device != "cpu" && !cuda {
            return Err(bad.err(
                "nlp.device",
                format!("is {:?}", self.device),
                "use \"cpu\", \"cuda\" or \"cuda:N\"",
            ));
        }
        if cuda && self.backend != Backend::Torch {
            return Err(bad.err(
                "nlp.device",
                format!("is {:?} with backend onnx", self.device),
                "use device = \"cpu\", or backend = \"torch\" for the GPU path",
            ));
        }
        for l in &self.languages {
            if crate::comment::language::from_iso_639_1(l).is_none() {
                return Err(bad.err(
                    "nlp.languages",
                    format!("contains {l:?}, which the language detector does not know"),
                    "use ISO 639-1 codes such as \"en\", \"ru\", \"de\"; [] allows every language",
                ));
            }
        }
        if let Some(problem) = presence_problem(&self.presence, &crate::comment::TARGETS) {
            return Err(bad.err(
                "nlp.presence",
                problem,
                "name built-in targets (staff, product, process, price, delivery, environment, other) with thresholds between 0 and 1, e.g. { product = 0.8 }",
            ));
        }
        if let Some(w) = self.clause_sentiment.filter(|w| !(0.0..=1.0).contains(w)) {
            return Err(bad.err(
                "nlp.clause_sentiment",
                format!("is {w}"),
                "use a weight from 0 (the aspect head alone) to 1 (the sentiment head alone), e.g. 0.3, or remove the key to keep the heads' own",
            ));
        }
        if self.threads > 1024 {
            return Err(bad.err(
                "nlp.threads",
                format!("is {}", self.threads),
                "use 0 (one per core) or a thread count",
            ));
        }
        if self.threads > 0 && self.lanes > self.threads {
            return Err(bad.err(
                "nlp.lanes",
                format!(
                    "is {}, more than nlp.threads = {}",
                    self.lanes, self.threads
                ),
                "use at most one lane per thread, or 0 (one per thread)",
            ));
        }
        Ok(())
    }
}

/// What is wrong with per-target presence thresholds, if anything: a name
/// that is not one of `targets`, or a threshold outside (0, 1].
pub fn presence_problem<T: AsRef<str>>(
    presence: &std::collections::BTreeMap<String, f32>,
    targets: &[T],
) -> Option<String> {
    presence.iter().find_map(|(t, p)| {
        if !targets.iter().any(|x| x.as_ref() == t) {
            Some(format!("names {t:?}, which is no target"))
        } else if !(*p > 0.0 && *p <= 1.0) {
            Some(format!("sets {t} to {p}, outside 0-1"))
        } else {
            None
        }
    })
}
