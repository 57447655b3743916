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

mod actions;
mod batch;
mod flags;
mod input;
mod kafka;
mod metrics;
mod nlp;
mod output;
mod responses;
mod themes;

pub use actions::{parse_duration, ActionsConfig, SlaConfig, DEFAULT_ACTION_FLAGS};
pub use batch::BatchConfig;
pub use flags::{
    check_patterns, compile_pattern, complaint_flags, FlagPatternError, FlagPatterns,
    COMPLAINT_FLAGS,
};
pub use input::{FieldMapping, InputConfig, InputFormat, TimeFormat};
pub use kafka::{KafkaConfig, OffsetReset, OWNED_KAFKA_PROPERTIES};
pub use metrics::MetricsConfig;
pub use nlp::{
    example_threshold, presence_problem, Backend, Calibration, NlpConfig, Precision, PrivacyConfig,
    TargetExamples,
};
pub use output::{parse_local_root, parse_output_root, OutputConfig, RejectedConfig, RootError};
pub use responses::{ResponseFields, ResponsesConfig};
pub use themes::{ThemeUnit, ThemesConfig};

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

/// Builds the [`ConfigError::Invalid`] for one key of the file being checked;
/// each section's `validate` takes one.
pub(crate) struct Invalid<'a>(&'a Path);

impl Invalid<'_> {
    /// `key` has `problem`; `fix` says what to write instead.
    pub(crate) fn err(&self, key: &str, problem: String, fix: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.0.to_path_buf(),
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        }
    }
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
    pub flags: BTreeMap<String, FlagPatterns>,
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
    /// `[responses]`: follow-up events answering the queue (`responses/`).
    #[serde(default)]
    pub responses: ResponsesConfig,
}

fn default_name() -> String {
    "verbatim".to_string()
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
            responses: ResponsesConfig::default(),
        }
    }
}

/// The parser's type names in the words a pipeline's author uses:
/// `expected usize` becomes `expected a whole number`, `a sequence` a list.
fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 12] = [
        ("usize", "a whole number (0 or more)"),
        ("u64", "a whole number (0 or more)"),
        ("u32", "a whole number (0 or more)"),
        ("u16", "a whole number (0 or more)"),
        ("u8", "a whole number (0 or more)"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
        ("a sequence", "a list, e.g. [\"a\", \"b\"]"),
        ("a map", "a table (a [section] or { key = value })"),
        ("a boolean", "true or false"),
    ];
    let mut out = message.to_string();
    for (from, to) in WORDS {
        for lead in ["expected ", "expected a value of type "] {
            out = out.replace(&format!("{lead}{from}"), &format!("expected {to}"));
        }
    }
    out.replace("invalid type: sequence", "invalid type: a list")
        .replace("invalid type: map", "invalid type: a table")
}

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_at(path, None)
    }

    /// Loads a pipeline file with `output.root` replaced by `root` (a
    /// command's `--output-root`) before the checks.
    pub fn load_at(path: &Path, root: Option<&Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_at(&text, path, root)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml_at(text, path, None)
    }

    /// Like [`PipelineConfig::from_toml`], with `output.root` replaced by
    /// `root` (a command's `--output-root`) before the checks, so the
    /// checks see the root the command will write.
    pub fn from_toml_at(text: &str, path: &Path, root: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg: PipelineConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: plain_words(e.to_string().trim_end()),
        })?;
        if let Some(r) = root {
            cfg.output.root = r.to_path_buf();
        }
        cfg.output.normalize();
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every value; `path` names the file in messages.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let checker = Invalid(path);
        let bad = |key: &str, problem: String, fix: &str| checker.err(key, problem, fix);
        // `min_similarity` of a table defined by examples.
        let check_min_similarity =
            |key: &str, min: Option<f32>| match min.filter(|m| !(*m > 0.0 && *m < 1.0)) {
                Some(m) => Err(bad(
                    &format!("{key}.min_similarity"),
                    format!("is {m}"),
                    "use a cosine between 0 and 1, e.g. 0.45",
                )),
                None => Ok(()),
            };
        if self.name.trim().is_empty() {
            return Err(bad(
                "name",
                "is empty".into(),
                "give the pipeline a name, e.g. name = \"feedback\"",
            ));
        }
        if let Some(k) = &self.kafka {
            k.validate(&checker)?;
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
        self.input.validate(&checker)?;
        self.batch.validate(&checker)?;
        self.output.validate(&checker)?;
        self.metrics.validate(&checker)?;
        if let Some(n) = &self.nlp {
            n.validate(&checker)?;
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
        if let Err(e) = check_patterns(&self.flags) {
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
            if crate::comment::TARGETS.contains(&name.as_str()) {
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
            check_min_similarity(&key, t.min_similarity)?;
            if self.nlp.is_none() {
                return Err(bad(
                    &key,
                    "needs the [nlp] section".into(),
                    "add [nlp], or remove the [targets] tables",
                ));
            }
        }
        for (name, f) in &self.flags {
            let key = format!("flags.{name}");
            if f.examples.is_empty() {
                if f.min_similarity.is_some() {
                    return Err(bad(
                        &format!("{key}.min_similarity"),
                        "is set but the flag has no examples".into(),
                        "add `examples = [...]`, or remove min_similarity",
                    ));
                }
                continue;
            }
            if f.examples.iter().any(|e| e.trim().is_empty()) {
                return Err(bad(
                    &format!("{key}.examples"),
                    "has an empty phrase".into(),
                    "give short phrases that say the flag, e.g. [\"nobody called me back\"]",
                ));
            }
            check_min_similarity(&key, f.min_similarity)?;
            if !self.nlp.as_ref().is_some_and(|n| n.analyze) {
                return Err(bad(
                    &format!("{key}.examples"),
                    "needs the analysis stage (examples are matched clause by clause)".into(),
                    "add [nlp] with analyze = true, or use patterns instead",
                ));
            }
        }
        self.themes.validate(&checker)?;
        for f in &self.actions.flags {
            if !crate::comment::BUILT_IN_FLAGS.contains(&f.as_str()) && !self.flags.contains_key(f)
            {
                return Err(bad(
                    "actions.flags",
                    format!(
                        "lists {f:?}, which is neither a built-in flag nor a [flags.{f}] table"
                    ),
                    &format!(
                        "use one of {} or define [flags.{f}]",
                        crate::comment::BUILT_IN_FLAGS.join(", ")
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
        if let Err(problem) = self.actions.repeat_window() {
            return Err(bad(
                "actions.repeat_window",
                problem,
                "write a whole number and a unit (s, m, h, d, w), e.g. \"30d\", or \"off\"",
            ));
        }
        if let Err((key, problem)) = self.actions.sla.spans() {
            return Err(bad(
                &format!("actions.sla.{key}"),
                problem,
                "write a whole number and a unit (s, m, h, d, w), e.g. \"24h\"",
            ));
        }
        if let Err(problem) = self.actions.status_every() {
            return Err(bad(
                "actions.status_every",
                problem,
                "write a whole number and a unit (s, m, h, d, w), e.g. \"5m\", or \"off\"",
            ));
        }
        self.privacy.validate(&checker)?;
        self.responses.validate(&checker)?;
        if let Some(t) = &self.responses.topic {
            let taken = [
                self.actions.topic.as_ref(),
                self.rejected.dead_letter_topic.as_ref(),
            ];
            if taken.contains(&Some(t)) {
                return Err(bad(
                    "responses.topic",
                    format!("is {t:?}, which the job also writes to"),
                    "read follow-up events from a topic of their own, e.g. \"feedback-responses\"",
                ));
            }
            if self.kafka.as_ref().is_some_and(|k| k.topics.contains(t)) {
                return Err(bad(
                    "responses.topic",
                    format!("is {t:?}, which kafka.topics already lists as comments"),
                    "remove it from kafka.topics: the job subscribes to responses.topic itself",
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
        for (key, v) in shown.output.storage.iter_mut() {
            if output::is_secret_key(key) {
                *v = "***".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// `pipeline_version` column value: verbatim's version plus a short hash of
    /// the resolved configuration, so rows record which settings made them.
    /// Where the files are stored (`[output.storage]`, `spool_dir`) is left
    /// out: it does not change a row, and it holds credentials.
    pub fn version_tag(&self) -> String {
        let mut hashed = self.clone();
        hashed.output.storage.clear();
        hashed.output.spool_dir = None;
        let toml = toml::to_string(&hashed).unwrap_or_default();
        let digest = Sha256::digest(toml.as_bytes());
        let h: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("verbatim {} cfg:{h}", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_roots_are_paths_or_file_urls() {
        use std::path::PathBuf;
        let ok = |s: &str| parse_output_root(s).unwrap();
        assert_eq!(ok("out/feedback"), PathBuf::from("out/feedback"));
        assert_eq!(ok("/data/verbatim"), PathBuf::from("/data/verbatim"));
        assert_eq!(ok(r"C:\data\verbatim"), PathBuf::from(r"C:\data\verbatim"));
        assert_eq!(ok("file:///data/verbatim"), PathBuf::from("/data/verbatim"));
        assert_eq!(ok("file://localhost/data"), PathBuf::from("/data"));
        // Buckets are kept as written (scheme lower-cased); commands that
        // read a local folder refuse them with the fix.
        for (url, kept) in [
            ("s3://bucket/out", "s3://bucket/out"),
            ("gs://bucket", "gs://bucket"),
            ("az://container/x", "az://container/x"),
            (
                "ABFS://c@acct.dfs.core.windows.net/x",
                "abfs://c@acct.dfs.core.windows.net/x",
            ),
        ] {
            assert_eq!(ok(url), PathBuf::from(kept));
            let scheme = kept.split_once("://").unwrap().0;
            assert_eq!(
                parse_local_root(url),
                Err(RootError::LocalOnly {
                    scheme: scheme.into()
                })
            );
        }
        assert_eq!(
            parse_output_root("http://localhost:9000/b"),
            Err(RootError::Unsupported {
                scheme: "http".into()
            })
        );
        assert!(matches!(
            parse_output_root("file://nas/share"),
            Err(RootError::FileHost { .. })
        ));
        // In a pipeline file: the key and the fix; a file:// URL becomes its path.
        let e = PipelineConfig::from_toml("[output]\nroot = 'ftp://b/out'\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`output.root` is \"ftp://b/out\""), "{e}");
        assert!(e.contains("Fix: use a folder"), "{e}");
        assert!(!e.contains(".."), "{e}");
        let c = PipelineConfig::from_toml(
            "[output]\nroot = 's3://b/out'\n[output.storage]\naws_region = 'eu-west-1'\n",
            p(),
        )
        .unwrap();
        assert_eq!(c.output.bucket_url(), Some("s3://b/out"));
        let mut secret = c.clone();
        secret
            .output
            .storage
            .insert("aws_secret_access_key".into(), "hunter2".into());
        let shown = secret.to_display_toml();
        assert!(shown.contains("aws_secret_access_key = \"***\""), "{shown}");
        assert!(shown.contains("aws_region = \"eu-west-1\""), "{shown}");
        assert_eq!(
            secret.version_tag(),
            c.version_tag(),
            "credentials do not change rows"
        );
        for (toml, key) in [
            ("[output]\nroot = 's3:///out'\n", "`output.root`"),
            (
                "[output]\nroot = 'out'\n[output.storage]\naws_region = 'x'\n",
                "`output.storage`",
            ),
        ] {
            let e = PipelineConfig::from_toml(toml, p())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
        let c = PipelineConfig::from_toml("[output]\nroot = 'file:///srv/out'\n", p()).unwrap();
        assert_eq!(c.output.root, PathBuf::from("/srv/out"));
    }

    fn p() -> &'static Path {
        Path::new("pipelines/test.toml")
    }

    #[test]
    fn type_errors_are_in_plain_words() {
        let cases = [
            (
                "[batch]\nmax_records = \"many\"\n",
                "expected a whole number",
            ),
            (
                "[kafka]\nbrokers = \"b\"\ngroup_id = \"g\"\ntopics = \"fb\"\n",
                "expected a list",
            ),
            (
                "[themes]\njoin_similarity = \"high\"\n",
                "expected a number",
            ),
            (
                "[privacy]\nredact_pii = \"yes\"\n",
                "expected true or false",
            ),
        ];
        for (toml, want) in cases {
            let e = PipelineConfig::from_toml(toml, p())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{toml}: {e}");
            for jargon in ["usize", "u64", "f32", "sequence"] {
                assert!(!e.contains(jargon), "{toml}: {e}");
            }
        }
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
    fn repeat_window_and_customer_salt_are_checked_at_start() {
        let err = |t: &str| PipelineConfig::from_toml(t, p()).unwrap_err().to_string();
        let e = err("[actions]\nrepeat_window = \"30 days\"\n");
        assert!(
            e.contains("actions.repeat_window") && e.contains("\"30d\""),
            "{e}"
        );
        let e = err("[privacy]\ncustomer_id_salt_env = \"VERBATIM_TEST_SALT_THAT_IS_NOT_SET\"\n");
        assert!(
            e.contains("privacy.customer_id_salt_env") && e.contains("not set"),
            "{e}"
        );
        let e = err("[privacy]\nhash_customer_id = false\ncustomer_id_salt_env = \"PATH\"\n");
        assert!(e.contains("hash_customer_id is false"), "{e}");
        // PATH is set in every test environment.
        let c = PipelineConfig::from_toml(
            "[privacy]\ncustomer_id_salt_env = \"PATH\"\n[actions]\nrepeat_window = \"off\"\n",
            p(),
        )
        .unwrap();
        assert_eq!(c.actions.repeat_window(), Ok(None));
        let h = c.privacy.customer_hasher().unwrap();
        assert_ne!(
            h.hash("ann"),
            crate::comment::CustomerHasher::new("").hash("ann")
        );
        let off = PipelineConfig::from_toml("[privacy]\nhash_customer_id = false\n", p()).unwrap();
        assert!(off.privacy.customer_hasher().is_none());
    }

    #[test]
    fn presence_thresholds_name_targets_within_zero_and_one() {
        let c = PipelineConfig::from_toml("[nlp]\npresence = { product = 0.8 }\n", p()).unwrap();
        assert_eq!(c.nlp.unwrap().presence["product"], 0.8);
        for (bad, want) in [
            ("[nlp]\npresence = { prodcut = 0.8 }\n", "\"prodcut\""),
            ("[nlp]\npresence = { product = 1.5 }\n", "outside 0-1"),
            ("[nlp]\npresence = { staff = 0 }\n", "outside 0-1"),
        ] {
            let e = PipelineConfig::from_toml(bad, p()).unwrap_err().to_string();
            assert!(
                e.contains("nlp.presence") && e.contains(want) && e.contains("Fix:"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn owned_kafka_property_is_refused() {
        let t = "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[kafka.properties]\n'enable.auto.commit'='true'\n";
        let e = PipelineConfig::from_toml(t, p()).unwrap_err().to_string();
        assert!(e.contains("enable.auto.commit"), "{e}");
    }

    #[test]
    fn example_flags_are_checked() {
        let ok = "[nlp]\n[flags.billing_error]\nexamples = ['charged twice']\n[flags.safety_risk]\nexamples = ['the floor was wet']\nmin_similarity = 0.9\n";
        let c = PipelineConfig::from_toml(ok, p()).unwrap();
        assert_eq!(c.flags["billing_error"].examples, vec!["charged twice"]);
        assert_eq!(c.flags["safety_risk"].min_similarity, Some(0.9));
        for (bad, key) in [
            (
                "[nlp]\n[flags.billing_error]\nexamples = ['x', ' ']\n",
                "flags.billing_error.examples",
            ),
            (
                "[nlp]\n[flags.billing_error]\nexamples = ['x']\nmin_similarity = 0\n",
                "flags.billing_error.min_similarity",
            ),
            (
                "[nlp]\n[flags.billing_error]\npatterns = ['x']\nmin_similarity = 0.5\n",
                "flags.billing_error.min_similarity",
            ),
            (
                "[flags.billing_error]\nexamples = ['x']\n",
                "flags.billing_error.examples",
            ),
            (
                "[nlp]\nanalyze = false\n[flags.billing_error]\nexamples = ['x']\n",
                "flags.billing_error.examples",
            ),
            ("[nlp]\n[flags.billing_error]\nexample = ['x']\n", "example"),
        ] {
            let e = PipelineConfig::from_toml(bad, p()).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn example_targets_are_checked() {
        let ok = "[nlp]\n[targets.billing]\nexamples = ['charged twice']\n";
        let c = PipelineConfig::from_toml(ok, p()).unwrap();
        assert_eq!(c.targets["billing"].min_similarity, None);
        let cal = crate::config::Calibration::default();
        assert_eq!(c.targets["billing"].min_similarity_for(&cal), 0.45);
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
    fn lanes_fit_the_threads() {
        let ok = "[nlp]\nthreads = 4\nlanes = 2\n";
        assert_eq!(
            PipelineConfig::from_toml(ok, p())
                .unwrap()
                .nlp
                .unwrap()
                .lanes,
            2
        );
        let e = PipelineConfig::from_toml("[nlp]\nthreads = 2\nlanes = 3\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nlp.lanes") && e.contains("Fix:"), "{e}");
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
