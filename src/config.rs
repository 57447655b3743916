//! Pipeline configuration: one TOML file under `pipelines/` per stream job.
//!
//! Every section has defaults except what only the operator can know (the
//! Kafka brokers, topics and group). Unknown keys are refused, and
//! [`PipelineConfig::load`] validates the whole file up front so a bad value
//! fails at start with a message naming the file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors from loading or validating a pipeline file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read pipeline file: {source}. Fix: check the path (pipelines live under pipelines/)")]
    Read {
        /// The pipeline file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The pipeline file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value parsed but is not usable.
    #[error("{path}: `{key}` {problem}. Fix: {fix}")]
    Invalid {
        /// The pipeline file (or `<defaults>`).
        path: PathBuf,
        /// Dotted key, e.g. `batch.max_records`.
        key: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
}

/// A whole pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name of the pipeline; written to the `pipeline` column and used in logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Where messages come from. Required by `verbatim run`; ignored by `ingest`.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// How a message's bytes become a comment.
    #[serde(default)]
    pub input: InputConfig,
    /// How many comments are processed together.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Where and how Parquet is written.
    #[serde(default)]
    pub output: OutputConfig,
    /// What happens to messages that cannot be decoded.
    #[serde(default)]
    pub rejected: RejectedConfig,
    /// Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Local models over each batch. Absent: no NLP stage (the spine alone).
    #[serde(default)]
    pub nlp: Option<NlpConfig>,
    /// What may reach disk.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// Extra patterns for the built-in flags, or new flags, by name
    /// (`[flags.billing_dispute] patterns = ["charged (me )?twice"]`).
    #[serde(default)]
    pub flags: BTreeMap<String, crate::nlp::flags::FlagPatterns>,
    /// Extra aspect targets defined by example phrases
    /// (`[targets.billing] examples = ["I was charged twice"]`).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetExamples>,
    /// `[themes]`: online clustering of the embeddings (with `[nlp]`).
    #[serde(default)]
    pub themes: ThemesConfig,
    /// `[actions]`: the follow-up queue (`actions/`, optional Kafka topic).
    #[serde(default)]
    pub actions: ActionsConfig,
}

/// `[actions]`: which flagged comments need a person, and where they go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Flags that put a comment in the queue (built-in or `[flags.<name>]`);
    /// empty: no queue.
    pub flags: Vec<String>,
    /// Also produce each action as JSON to this Kafka topic, keyed by comment
    /// id; delivery is confirmed before the input offset is committed.
    pub topic: Option<String>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            flags: crate::sink::actions::DEFAULT_FLAGS
                .iter()
                .map(|f| f.to_string())
                .collect(),
            topic: None,
        }
    }
}

/// `[themes]`: how comments are grouped into themes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThemesConfig {
    /// Assign themes (needs `[nlp]`).
    pub enabled: bool,
    /// A comment joins a theme at this cosine with its centroid.
    pub join_similarity: f32,
    /// Average-linkage cosine distance under which buffered comments cluster.
    pub cluster_distance: f32,
    /// Cluster the novelty buffer after this many new comments in it.
    pub cluster_every: usize,
    /// Smallest cluster that becomes a theme.
    pub min_theme_size: usize,
    /// Most comments the novelty buffer holds (oldest dropped first).
    pub buffer: usize,
    /// Average-linkage cosine distance at which `verbatim themes refit
    /// --from-scratch` cuts its clusters of all stored comments.
    pub refit_distance: f32,
}

impl Default for ThemesConfig {
    fn default() -> Self {
        // Chosen on banking77 (README, "Themes").
        Self {
            enabled: true,
            join_similarity: 0.8,
            cluster_distance: 0.65,
            cluster_every: 16,
            min_theme_size: 3,
            buffer: 256,
            refit_distance: 0.45,
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
    /// Lowest cosine similarity that counts (0-1).
    #[serde(default = "default_min_similarity")]
    pub min_similarity: f32,
}

fn default_min_similarity() -> f32 {
    // In tests/analysis.rs a clause about the target scores 0.57 against
    // its examples, an unrelated sentence 0.14.
    0.45
}

/// `[privacy]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Replace emails, card numbers and phone numbers in comment texts and in
    /// rejected messages' bytes before they are written (default on).
    #[serde(default = "default_true")]
    pub redact_pii: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self { redact_pii: true }
    }
}

fn default_name() -> String {
    "verbatim".to_string()
}

/// `[kafka]`: the consumer group the job joins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id; every instance of one job uses the same one.
    pub group_id: String,
    /// Where a partition with no progress starts: `earliest` or `latest`.
    #[serde(default = "default_offset_reset")]
    pub auto_offset_reset: String,
    /// librdkafka properties passed through unchanged (SASL, SSL, timeouts...).
    /// `enable.auto.commit` and `enable.auto.offset.store` are owned by verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_offset_reset() -> String {
    "earliest".to_string()
}

/// Message format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// A JSON object per message; fields picked by `[input.fields]`.
    Json,
    /// The whole message value is the comment text (UTF-8).
    Text,
}

/// How event times are parsed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), `YYYY-MM-DD`, or a number of
    /// epoch seconds (< 10^11) or milliseconds.
    Auto,
    /// RFC 3339 only.
    Rfc3339,
    /// A number of seconds since the epoch.
    EpochSeconds,
    /// A number of milliseconds since the epoch.
    EpochMillis,
}

/// `[input]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `json` (default) or `text`.
    #[serde(default = "default_format")]
    pub format: InputFormat,
    /// Texts longer than this many bytes are rejected (`text_too_long`).
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: usize,
    /// How the event-time field is parsed.
    #[serde(default = "default_time_format")]
    pub time_format: TimeFormat,
    /// Which JSON fields hold what.
    #[serde(default)]
    pub fields: FieldMapping,
}

fn default_format() -> InputFormat {
    InputFormat::Json
}
fn default_max_text_bytes() -> usize {
    200_000
}
fn default_time_format() -> TimeFormat {
    TimeFormat::Auto
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            format: default_format(),
            max_text_bytes: default_max_text_bytes(),
            time_format: default_time_format(),
            fields: FieldMapping::default(),
        }
    }
}

/// `[input.fields]`: dotted paths into the JSON object (`customer.id`).
/// An optional field that is absent from a message is null in its row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Comment id; absent → `topic-partition-offset`.
    #[serde(default = "f_id")]
    pub id: Option<String>,
    /// The comment text (required in every message).
    #[serde(default = "f_text")]
    pub text: String,
    /// Event time; absent → Kafka timestamp, then ingest time.
    #[serde(default = "f_event_time")]
    pub event_time: Option<String>,
    /// Numeric score (number or numeric string).
    #[serde(default = "f_score")]
    pub score: Option<String>,
    /// Channel.
    #[serde(default = "f_channel")]
    pub channel: Option<String>,
    /// Staff member id.
    #[serde(default = "f_staff_id")]
    pub staff_id: Option<String>,
    /// Location.
    #[serde(default = "f_location")]
    pub location: Option<String>,
    /// Product.
    #[serde(default = "f_product")]
    pub product: Option<String>,
    /// Declared language code.
    #[serde(default = "f_language")]
    pub language: Option<String>,
    /// Extra fields copied into the `attributes` map.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Also copy every top-level field not mapped above into `attributes`.
    #[serde(default)]
    pub keep_unmapped: bool,
}

fn f_id() -> Option<String> {
    Some("id".into())
}
fn f_text() -> String {
    "text".into()
}
fn f_event_time() -> Option<String> {
    Some("created_at".into())
}
fn f_score() -> Option<String> {
    Some("score".into())
}
fn f_channel() -> Option<String> {
    Some("channel".into())
}
fn f_staff_id() -> Option<String> {
    Some("staff_id".into())
}
fn f_location() -> Option<String> {
    Some("location".into())
}
fn f_product() -> Option<String> {
    Some("product".into())
}
fn f_language() -> Option<String> {
    Some("language".into())
}

impl Default for FieldMapping {
    fn default() -> Self {
        Self {
            id: f_id(),
            text: f_text(),
            event_time: f_event_time(),
            score: f_score(),
            channel: f_channel(),
            staff_id: f_staff_id(),
            location: f_location(),
            product: f_product(),
            language: f_language(),
            attributes: Vec::new(),
            keep_unmapped: false,
        }
    }
}

impl FieldMapping {
    /// The mapped paths, with the key each one is configured under.
    pub fn mapped(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![("text", self.text.as_str())];
        for (k, p) in [
            ("id", &self.id),
            ("event_time", &self.event_time),
            ("score", &self.score),
            ("channel", &self.channel),
            ("staff_id", &self.staff_id),
            ("location", &self.location),
            ("product", &self.product),
            ("language", &self.language),
        ] {
            if let Some(p) = p {
                v.push((k, p.as_str()));
            }
        }
        v
    }
}

/// `[batch]`: how comments are grouped before the NLP stages and the sink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is processed once it holds this many messages...
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// ...or once its first message has waited this long.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

fn default_max_records() -> usize {
    256
}
fn default_max_wait_ms() -> u64 {
    500
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

/// `[output]`: the Parquet tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Root folder; `comments/`, `rejected/` live under it.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// A partition's open files are committed once they hold this many bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// ...or once they have been open this long (seconds).
    #[serde(default = "default_max_file_age_secs")]
    pub max_file_age_secs: u64,
    /// Rows per Parquet row group (at most).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// zstd level (1–22).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
}

fn default_root() -> PathBuf {
    PathBuf::from("out/verbatim")
}
fn default_max_file_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_max_file_age_secs() -> u64 {
    300
}
fn default_row_group_rows() -> usize {
    65_536
}
fn default_zstd_level() -> i32 {
    3
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            root: default_root(),
            max_file_bytes: default_max_file_bytes(),
            max_file_age_secs: default_max_file_age_secs(),
            row_group_rows: default_row_group_rows(),
            zstd_level: default_zstd_level(),
        }
    }
}

/// `[rejected]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RejectedConfig {
    /// Also send each rejected message to this Kafka topic (raw value, reason
    /// in headers). Delivery is confirmed before the input offset is committed.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus text format on `http://<listen>/metrics`, e.g. `127.0.0.1:9898`.
    #[serde(default)]
    pub listen: Option<String>,
}

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
    /// Folder of trained heads, one sub-folder per model
    /// (`<heads_dir>/<model>/heads.toml`).
    #[serde(default = "default_heads_dir")]
    pub heads_dir: PathBuf,
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
    "all-MiniLM-L6-v2".into()
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
fn default_token_budget() -> usize {
    4096
}
fn default_max_rows() -> usize {
    64
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
            heads_dir: default_heads_dir(),
            cache_dir: default_model_cache(),
            onnxruntime_library: default_ort_lib(),
            store_embeddings: true,
            token_budget: default_token_budget(),
            max_rows: default_max_rows(),
            threads: 0,
            device: default_device(),
            languages: default_languages(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            kafka: None,
            input: InputConfig::default(),
            batch: BatchConfig::default(),
            output: OutputConfig::default(),
            rejected: RejectedConfig::default(),
            metrics: MetricsConfig::default(),
            nlp: None,
            privacy: PrivacyConfig::default(),
            flags: BTreeMap::new(),
            targets: BTreeMap::new(),
            themes: ThemesConfig::default(),
            actions: ActionsConfig::default(),
        }
    }
}

/// librdkafka properties that verbatim sets itself; a pipeline may not override them.
pub const OWNED_KAFKA_PROPERTIES: [&str; 4] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
];

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every value; `path` names the file in messages.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String, fix: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        };
        if self.name.trim().is_empty() {
            return Err(bad(
                "name",
                "is empty".into(),
                "give the pipeline a name, e.g. name = \"feedback\"",
            ));
        }
        if let Some(k) = &self.kafka {
            if k.brokers.trim().is_empty() {
                return Err(bad(
                    "kafka.brokers",
                    "is empty".into(),
                    "set it to host:port[,host:port], e.g. brokers = \"localhost:9092\"",
                ));
            }
            if k.topics.is_empty() {
                return Err(bad(
                    "kafka.topics",
                    "is empty".into(),
                    "list at least one topic, e.g. topics = [\"feedback\"]",
                ));
            }
            for t in &k.topics {
                if t.is_empty()
                    || t.len() > 249
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return Err(bad(
                        "kafka.topics",
                        format!("contains {t:?}, which is not a legal Kafka topic name"),
                        "use 1-249 characters from [a-zA-Z0-9._-]",
                    ));
                }
            }
            if k.group_id.trim().is_empty() {
                return Err(bad(
                    "kafka.group_id",
                    "is empty".into(),
                    "set a consumer group id shared by every instance of this job",
                ));
            }
            if !matches!(k.auto_offset_reset.as_str(), "earliest" | "latest") {
                return Err(bad(
                    "kafka.auto_offset_reset",
                    format!("is {:?}", k.auto_offset_reset),
                    "use \"earliest\" or \"latest\"",
                ));
            }
            for key in k.properties.keys() {
                if OWNED_KAFKA_PROPERTIES.contains(&key.as_str()) {
                    return Err(bad(&format!("kafka.properties.\"{key}\""), "is set by verbatim itself".into(), "remove it (use kafka.brokers / kafka.group_id; offsets are committed only after Parquet is durable)"));
                }
            }
            if let Some(dlq) = &self.rejected.dead_letter_topic {
                if k.topics.contains(dlq) {
                    return Err(bad(
                        "rejected.dead_letter_topic",
                        format!("is {dlq:?}, which is also an input topic"),
                        "use a separate topic, e.g. \"<input>-rejected\"",
                    ));
                }
            }
        }
        if self.input.max_text_bytes == 0 {
            return Err(bad(
                "input.max_text_bytes",
                "is 0".into(),
                "set a positive byte limit, e.g. 200000",
            ));
        }
        let mapped = self.input.fields.mapped();
        for (k, p) in &mapped {
            if p.is_empty() || p.split('.').any(str::is_empty) {
                return Err(bad(
                    &format!("input.fields.{k}"),
                    format!("is {p:?}, not a field path"),
                    "use a field name or a dotted path such as \"customer.id\"",
                ));
            }
        }
        for a in &self.input.fields.attributes {
            if a.is_empty() || a.split('.').any(str::is_empty) {
                return Err(bad(
                    "input.fields.attributes",
                    format!("contains {a:?}, not a field path"),
                    "use field names or dotted paths",
                ));
            }
        }
        if !(1..=100_000).contains(&self.batch.max_records) {
            return Err(bad(
                "batch.max_records",
                format!("is {}", self.batch.max_records),
                "use a value from 1 to 100000, e.g. 256",
            ));
        }
        if self.batch.max_wait_ms == 0 || self.batch.max_wait_ms > 600_000 {
            return Err(bad(
                "batch.max_wait_ms",
                format!("is {}", self.batch.max_wait_ms),
                "use a value from 1 to 600000 milliseconds, e.g. 500",
            ));
        }
        if self.output.root.as_os_str().is_empty() {
            return Err(bad(
                "output.root",
                "is empty".into(),
                "set a folder, e.g. root = \"out/feedback\"",
            ));
        }
        if self.output.max_file_bytes < 1024 {
            return Err(bad(
                "output.max_file_bytes",
                format!("is {}", self.output.max_file_bytes),
                "use at least 1024 bytes; 134217728 (128 MiB) suits most query engines",
            ));
        }
        if self.output.max_file_age_secs == 0 {
            return Err(bad(
                "output.max_file_age_secs",
                "is 0".into(),
                "use a positive number of seconds, e.g. 300",
            ));
        }
        if self.output.row_group_rows == 0 {
            return Err(bad(
                "output.row_group_rows",
                "is 0".into(),
                "use a positive row count, e.g. 65536",
            ));
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            return Err(bad(
                "output.zstd_level",
                format!("is {}", self.output.zstd_level),
                "use a zstd level from 1 to 22, e.g. 3",
            ));
        }
        if let Some(l) = &self.metrics.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(
                    "metrics.listen",
                    format!("is {l:?}, not an address"),
                    "use ip:port, e.g. \"127.0.0.1:9898\"",
                ));
            }
        }
        if let Some(n) = &self.nlp {
            if n.model.is_empty() || n.model.contains('/') || n.model.contains("..") {
                return Err(bad(
                    "nlp.model",
                    format!("is {:?}", n.model),
                    "name a manifest in nlp.models_dir, e.g. \"all-MiniLM-L6-v2\"",
                ));
            }
            if !(16..=1_000_000).contains(&n.token_budget) {
                return Err(bad(
                    "nlp.token_budget",
                    format!("is {}", n.token_budget),
                    "use 16 to 1000000 padded tokens per sub-batch, e.g. 4096",
                ));
            }
            if !(1..=4096).contains(&n.max_rows) {
                return Err(bad(
                    "nlp.max_rows",
                    format!("is {}", n.max_rows),
                    "use 1 to 4096 rows per sub-batch, e.g. 64",
                ));
            }
            let cuda = n.device == "cuda"
                || n.device
                    .strip_prefix("cuda:")
                    .is_some_and(|i| i.parse::<u32>().is_ok());
            if n.device != "cpu" && !cuda {
                return Err(bad(
                    "nlp.device",
                    format!("is {:?}", n.device),
                    "use \"cpu\", \"cuda\" or \"cuda:N\"",
                ));
            }
            if cuda && n.backend != Backend::Torch {
                return Err(bad(
                    "nlp.device",
                    format!("is {:?} with backend onnx", n.device),
                    "use device = \"cpu\", or backend = \"torch\" for the GPU path",
                ));
            }
            for l in &n.languages {
                if crate::nlp::language::from_iso_639_1(l).is_none() {
                    return Err(bad("nlp.languages", format!("contains {l:?}, which the language detector does not know"), "use ISO 639-1 codes such as \"en\", \"ru\", \"de\"; [] allows every language"));
                }
            }
            if n.threads > 1024 {
                return Err(bad(
                    "nlp.threads",
                    format!("is {}", n.threads),
                    "use 0 (one per core) or a thread count",
                ));
            }
        }
        for name in self.flags.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(bad(
                    &format!("flags.{name}"),
                    "is not a flag name".into(),
                    "use lower_snake_case, e.g. [flags.billing_dispute]",
                ));
            }
        }
        if let Err(e) = crate::nlp::flags::FlagMatcher::new(&self.flags) {
            return Err(bad(
                &format!("flags.{}", e.flag),
                format!(
                    "has pattern {:?}, which does not compile ({})",
                    e.pattern,
                    e.message.lines().last().unwrap_or("")
                ),
                "fix the regular expression (Rust regex syntax, case-insensitive)",
            ));
        }
        for (name, t) in &self.targets {
            let key = format!("targets.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(bad(
                    &key,
                    "is not a target name".into(),
                    "use lower_snake_case, e.g. [targets.billing]",
                ));
            }
            if crate::nlp::heads::TARGETS.contains(&name.as_str()) {
                return Err(bad(
                    &key,
                    "is a built-in target, found by the trained heads".into(),
                    "pick another name; built-in targets are not defined by examples",
                ));
            }
            if t.examples.iter().all(|e| e.trim().is_empty()) {
                return Err(bad(
                    &format!("{key}.examples"),
                    "is empty".into(),
                    "give a few short phrases about the target, e.g. [\"I was charged twice\"]",
                ));
            }
            if !(t.min_similarity > 0.0 && t.min_similarity < 1.0) {
                return Err(bad(
                    &format!("{key}.min_similarity"),
                    format!("is {}", t.min_similarity),
                    "use a cosine between 0 and 1, e.g. 0.45",
                ));
            }
            if self.nlp.is_none() {
                return Err(bad(
                    &key,
                    "needs the [nlp] section".into(),
                    "add [nlp], or remove the [targets] tables",
                ));
            }
        }
        let t = &self.themes;
        let checks: [(&str, bool, String, &str); 6] = [
            ("themes.join_similarity", t.join_similarity > 0.0 && t.join_similarity <= 1.0, format!("is {}", t.join_similarity), "use a cosine in (0, 1], e.g. 0.8"),
            ("themes.cluster_distance", t.cluster_distance > 0.0 && t.cluster_distance < 2.0, format!("is {}", t.cluster_distance), "use a cosine distance in (0, 2), e.g. 0.65"),
            ("themes.refit_distance", t.refit_distance > 0.0 && t.refit_distance < 2.0, format!("is {}", t.refit_distance), "use a cosine distance in (0, 2), e.g. 0.45"),
            ("themes.cluster_every", t.cluster_every >= 1, format!("is {}", t.cluster_every), "use 1 or more, e.g. 16"),
            ("themes.min_theme_size", t.min_theme_size >= 2, format!("is {}", t.min_theme_size), "use 2 or more, e.g. 3"),
            ("themes.buffer", t.buffer >= t.min_theme_size.max(2) && t.buffer <= 5000, format!("is {} (min_theme_size {})", t.buffer, t.min_theme_size), "use at least themes.min_theme_size and at most 5000 (clustering is quadratic in it), e.g. 256"),
        ];
        for (key, ok, problem, fix) in checks {
            if !ok {
                return Err(bad(key, problem, fix));
            }
        }
        for f in &self.actions.flags {
            if !crate::nlp::flags::BUILT_IN.contains(&f.as_str()) && !self.flags.contains_key(f) {
                return Err(bad(
                    "actions.flags",
                    format!(
                        "lists {f:?}, which is neither a built-in flag nor a [flags.{f}] table"
                    ),
                    &format!(
                        "use one of {} or define [flags.{f}]",
                        crate::nlp::flags::BUILT_IN.join(", ")
                    ),
                ));
            }
        }
        if let Some(t) = &self.actions.topic {
            let inputs = self
                .kafka
                .as_ref()
                .map(|k| k.topics.as_slice())
                .unwrap_or(&[]);
            if t.is_empty()
                || inputs.contains(t)
                || self.rejected.dead_letter_topic.as_ref() == Some(t)
            {
                return Err(bad(
                    "actions.topic",
                    format!("is {t:?}, which is empty, an input topic or the dead-letter topic"),
                    "name a topic of its own, e.g. \"feedback-actions\"",
                ));
            }
            if self.nlp.is_none() {
                return Err(bad(
                    "actions.topic",
                    "needs the [nlp] section (flags are raised there)".into(),
                    "add [nlp], or remove actions.topic",
                ));
            }
        }
        if self.rejected.dead_letter_topic.as_deref() == Some("") {
            return Err(bad(
                "rejected.dead_letter_topic",
                "is empty".into(),
                "remove the key or name a topic",
            ));
        }
        Ok(())
    }

    /// The `[kafka]` section, or an error naming the fix when it is absent.
    pub fn kafka_or_err(&self, path: &Path) -> Result<&KafkaConfig, ConfigError> {
        self.kafka.as_ref().ok_or_else(|| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "kafka".into(),
            problem: "is missing, and `verbatim run` consumes from Kafka".into(),
            fix: "add a [kafka] section with brokers, topics and group_id".into(),
        })
    }

    /// The resolved configuration as TOML, secrets masked (for `verbatim check`).
    pub fn to_display_toml(&self) -> String {
        let mut shown = self.clone();
        if let Some(k) = &mut shown.kafka {
            for (key, v) in k.properties.iter_mut() {
                let lk = key.to_ascii_lowercase();
                if lk.contains("password")
                    || lk.contains("secret")
                    || lk.contains("jaas")
                    || lk.contains("key.pem")
                {
                    *v = "***".into();
                }
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// `pipeline_version` column value: verbatim's version plus a short hash of
    /// the resolved configuration, so rows record which settings made them.
    pub fn version_tag(&self) -> String {
        let toml = toml::to_string(self).unwrap_or_default();
        let digest = Sha256::digest(toml.as_bytes());
        let h: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("verbatim {} cfg:{h}", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("pipelines/test.toml")
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = PipelineConfig::from_toml("", p()).unwrap();
        assert_eq!(c, PipelineConfig::default());
    }

    #[test]
    fn unknown_key_is_refused_with_file_and_key() {
        let e = PipelineConfig::from_toml("[batch]\nmax_recods = 5\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pipelines/test.toml"), "{e}");
        assert!(e.contains("max_recods"), "{e}");
    }

    #[test]
    fn invalid_value_names_key_and_fix() {
        let e = PipelineConfig::from_toml("[batch]\nmax_records = 0\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch.max_records"), "{e}");
        assert!(e.contains("Fix:"), "{e}");
    }

    #[test]
    fn owned_kafka_property_is_refused() {
        let t = "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[kafka.properties]\n'enable.auto.commit'='true'\n";
        let e = PipelineConfig::from_toml(t, p()).unwrap_err().to_string();
        assert!(e.contains("enable.auto.commit"), "{e}");
    }

    #[test]
    fn example_targets_are_checked() {
        let ok = "[nlp]\n[targets.billing]\nexamples = ['charged twice']\n";
        let c = PipelineConfig::from_toml(ok, p()).unwrap();
        assert_eq!(c.targets["billing"].min_similarity, 0.45);
        for (bad, key) in [
            (
                "[nlp]\n[targets.staff]\nexamples = ['x']\n",
                "targets.staff",
            ),
            (
                "[nlp]\n[targets.billing]\nexamples = []\n",
                "targets.billing.examples",
            ),
            (
                "[nlp]\n[targets.billing]\nexamples = ['x']\nmin_similarity = 1.5\n",
                "targets.billing.min_similarity",
            ),
            ("[targets.billing]\nexamples = ['x']\n", "targets.billing"),
        ] {
            let e = PipelineConfig::from_toml(bad, p()).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("Fix:"), "{e}");
        }
    }

    #[test]
    fn dlq_must_differ_from_input() {
        let t = "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[rejected]\ndead_letter_topic='t'\n";
        assert!(PipelineConfig::from_toml(t, p()).is_err());
    }

    #[test]
    fn actions_name_known_flags_and_a_topic_of_their_own() {
        let base = "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[nlp]\n";
        let ok = format!("{base}[actions]\nflags=['safety_risk','billing']\ntopic='acts'\n[flags.billing]\npatterns=['charged twice']\n");
        assert!(PipelineConfig::from_toml(&ok, p()).is_ok());
        let unknown = format!("{base}[actions]\nflags=['nope']\n");
        let e = PipelineConfig::from_toml(&unknown, p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("actions.flags") && e.contains("nope"), "{e}");
        let input = format!("{base}[actions]\ntopic='t'\n");
        let e = PipelineConfig::from_toml(&input, p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("actions.topic"), "{e}");
        assert_eq!(PipelineConfig::default().actions.flags.len(), 4);
    }

    #[test]
    fn theme_settings_are_checked() {
        let e = PipelineConfig::from_toml("[themes]\njoin_similarity = 1.5\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("themes.join_similarity"), "{e}");
        let e = PipelineConfig::from_toml("[themes]\nbuffer = 1\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("themes.buffer"), "{e}");
        assert!(PipelineConfig::from_toml("[themes]\nrefit_distance = 0.5\n", p()).is_ok());
    }

    #[test]
    fn secrets_are_masked_in_display() {
        let t = "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[kafka.properties]\n'sasl.password'='hunter2'\n";
        let c = PipelineConfig::from_toml(t, p()).unwrap();
        let shown = c.to_display_toml();
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("***"));
    }

    #[test]
    fn version_tag_changes_with_config() {
        let a = PipelineConfig::default();
        let mut b = a.clone();
        b.batch.max_records = 7;
        assert_ne!(a.version_tag(), b.version_tag());
    }

    #[test]
    fn shipped_pipelines_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                PipelineConfig::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n > 0, "no pipeline files found in {}", dir.display());
    }
}
