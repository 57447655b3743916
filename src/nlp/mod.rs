//! NLP stage: operators that enrich a batch of comments between the batch
//! stage and the sink (PII, language, flags, embeddings, sentiment and
//! aspects); the themes stage ([`crate::themes`]) runs after them.
//!
//! An operator implements one method, [`Operator::process_batch`]; its hooks
//! default to no-ops. Operators run on a blocking thread, never on the async
//! I/O threads, in the order the pipeline lists them.

pub mod analyze;
pub mod clauses;
pub mod embed;
pub mod encoder;
pub mod flag_heads;
pub mod flags;
pub mod heads;
pub mod language;
pub mod model;
pub mod projection;
pub mod redact;
pub mod tokenize;

use crate::batch::CommentBatch;
use crate::config::{Backend, NlpConfig};
use encoder::{Encoder, EncoderError};
use model::{ModelError, ModelFiles};
use tokenize::{TextTokenizer, TokenizeError};

/// Errors setting up the NLP stages at start.
#[derive(Debug, thiserror::Error)]
pub enum NlpError {
    /// Model files missing or corrupt.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizeError),
    /// The inference backend could not start.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// A built-in or configured pattern did not compile.
    #[error("pattern: {0}")]
    Pattern(String),
    /// The analysis heads could not be loaded.
    #[error(transparent)]
    Heads(#[from] heads::HeadsError),
}

/// Opens the configured encoder over verified model files.
pub fn open_encoder(cfg: &NlpConfig, files: &ModelFiles) -> Result<Box<dyn Encoder>, NlpError> {
    let m = &files.manifest;
    match cfg.backend {
        Backend::Onnx => {
            let path = files.onnx(cfg.precision, cfg.onnx_file.as_deref())?;
            let tag = format!("{} onnx {}", m.name, cfg.precision.as_str());
            Ok(Box::new(encoder::onnx::OnnxEncoder::new(
                &cfg.onnxruntime_library,
                &path,
                m.embedding_dim,
                cfg.threads,
                cfg.lanes,
                tag,
            )?))
        }
        #[cfg(feature = "torch")]
        Backend::Torch => Ok(Box::new(encoder::torch::TorchEncoder::new(
            files,
            cfg.threads,
            &cfg.device,
        )?)),
        #[cfg(not(feature = "torch"))]
        Backend::Torch => Err(EncoderError::NotBuilt("torch").into()),
    }
}

/// Loads the model's tokenizer as its manifest says: truncation at
/// `max_seq_len`, and the `prefix` the model reads every text behind.
pub fn open_tokenizer(files: &ModelFiles) -> Result<TextTokenizer, NlpError> {
    let m = &files.manifest;
    Ok(TextTokenizer::from_file(&files.tokenizer, m.max_seq_len)?.with_prefix(&m.prefix))
}

/// Builds the embedding stage from `[nlp]`: verifies the model files, loads
/// the tokenizer and the encoder.
pub fn embed_operator(cfg: &NlpConfig) -> Result<embed::EmbedOperator, NlpError> {
    let files = ModelFiles::open(cfg)?;
    embed_operator_over(cfg, &files)
}

/// [`embed_operator`] over files already verified.
fn embed_operator_over(
    cfg: &NlpConfig,
    files: &ModelFiles,
) -> Result<embed::EmbedOperator, NlpError> {
    let tokenizer = open_tokenizer(files)?;
    let encoder = open_encoder(cfg, files)?;
    let projection = projection::Projection::for_model(&cfg.models_dir, &files.manifest)?;
    Ok(
        embed::EmbedOperator::new(tokenizer, encoder, cfg.token_budget, cfg.max_rows)
            .with_projection(projection),
    )
}

/// Loads the heads trained for the pipeline's model from
/// `<heads_dir>/<model>/` and builds the analysis stage.
pub fn analyze_operator(
    cfg: &NlpConfig,
    manifest: &model::ModelManifest,
) -> Result<analyze::AnalyzeOperator, NlpError> {
    let dir = cfg.heads_dir.join(&manifest.name);
    let loaded = heads::load(&dir, &manifest.name)?;
    let flags = flag_heads::FlagHeads::load(&dir, &manifest.name)?.map(|(h, _)| h);
    Ok(
        analyze::AnalyzeOperator::new(loaded.heads, &loaded.manifest, &manifest.languages)
            .with_presence(&cfg.presence)
            .with_clause_sentiment(cfg.clause_sentiment)
            .with_flag_heads(flags),
    )
}

/// The NLP stages `[nlp]` asks for.
pub struct NlpStages {
    /// Operators, in the order they run.
    pub operators: Vec<Box<dyn Operator>>,
    /// Size of the `embedding` column, if embeddings are stored.
    pub embedding_dim: Option<usize>,
    /// Size of the comment vectors the themes stage reads (the model's,
    /// or its theme projection's).
    pub dim: usize,
    /// Languages the model reads (its manifest).
    pub model_languages: Vec<String>,
    /// The model's similarity thresholds (its manifest).
    pub calibration: crate::config::Calibration,
}

/// Builds the operators `[nlp]` asks for, with the pipeline's `[flags]` and
/// `[targets]`.
pub fn operators_for(
    cfg: &NlpConfig,
    flag_patterns: &std::collections::BTreeMap<String, crate::config::FlagPatterns>,
    targets: &std::collections::BTreeMap<String, crate::config::TargetExamples>,
) -> Result<NlpStages, NlpError> {
    let files = ModelFiles::open(cfg)?;
    let analysis = if cfg.analyze {
        Some(analyze_operator(cfg, &files.manifest)?)
    } else {
        None
    };
    let mut embed = embed_operator_over(cfg, &files)?;
    let matcher =
        flags::FlagMatcher::new(flag_patterns).map_err(|e| NlpError::Pattern(e.to_string()))?;
    let analysis = analysis.map(|a| {
        a.with_projection(embed.projection().cloned())
            .with_complaint_flags(crate::config::complaint_flags(flag_patterns))
            .with_flag_exclusions(matcher.clone())
    });
    // Example phrases of the `[targets]` and `[flags]` tables, embedded
    // once at start.
    let analysis = match analysis {
        Some(mut a) => {
            for (name, t) in targets {
                let texts: Vec<&str> = t.examples.iter().map(String::as_str).collect();
                let vecs = embed
                    .embed_texts(&texts)
                    .map_err(|e| NlpError::Pattern(format!("targets.{name}: {e}")))?;
                let min = t.min_similarity_for(&files.manifest.calibration);
                a.add_example_target(name, vecs, min);
            }
            for (name, f) in flag_patterns.iter().filter(|(_, f)| !f.examples.is_empty()) {
                let texts: Vec<&str> = f.examples.iter().map(String::as_str).collect();
                let vecs = embed
                    .embed_texts(&texts)
                    .map_err(|e| NlpError::Pattern(format!("flags.{name}: {e}")))?;
                let min =
                    crate::config::example_threshold(f.min_similarity, &files.manifest.calibration);
                a.add_example_flag(name, vecs, min);
            }
            Some(a)
        }
        None => None,
    };
    let embed = embed
        .keep_tokens(analysis.is_some())
        .encode_clauses(cfg.encode_clauses)
        .encode_whole(cfg.encode_whole);
    let mut operators: Vec<Box<dyn Operator>> = vec![
        Box::new(language::LanguageOperator::new(&cfg.languages)),
        Box::new(flags::FlagOperator::new(matcher)),
    ];
    let embedding_dim = cfg.store_embeddings.then(|| embed.embedding_dim());
    let dim = embed.embedding_dim();
    operators.push(Box::new(embed));
    if let Some(a) = analysis {
        operators.push(Box::new(a));
    }
    Ok(NlpStages {
        embedding_dim,
        dim,
        model_languages: files.manifest.languages.clone(),
        calibration: files.manifest.calibration.clone(),
        operators,
    })
}

/// Errors an operator may return. A failing operator stops the job before
/// any file is committed, so the batch is re-read after a restart.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The operator failed on this batch.
    #[error("operator {operator}: {message}")]
    Failed {
        /// Operator name.
        operator: String,
        /// What went wrong.
        message: String,
    },
}

/// One enrichment step over a whole batch.
pub trait Operator: Send {
    /// Short name, used in logs and metrics.
    fn name(&self) -> &str;

    /// Enriches (or rejects rows of) the batch in place.
    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError>;

    /// Called once before the first batch, with the job's metrics (for an
    /// operator that records more than its stage time).
    fn on_start(&mut self, metrics: &crate::metrics::Metrics) -> Result<(), OperatorError> {
        let _ = metrics;
        Ok(())
    }

    /// Called before files are committed: state the committed rows depend
    /// on (theme ids) is saved here, so it is never behind the files.
    fn before_commit(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called after a partition's files were committed (state checkpoints).
    fn on_commit(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called once after the last commit of a clean stop (a drained
    /// shutdown, or the end of a file): hand back what another instance
    /// may use (unused theme ids). Never called after a crash.
    fn on_stop(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Runs every operator over the batch, in order, timing each.
pub fn run_operators(
    ops: &mut [Box<dyn Operator>],
    batch: &mut CommentBatch,
    metrics: &crate::metrics::Metrics,
) -> Result<(), OperatorError> {
    for op in ops.iter_mut() {
        let _span = tracing::debug_span!("operator", name = op.name()).entered();
        let t = std::time::Instant::now();
        op.process_batch(batch)?;
        metrics.observe_stage(op.name(), t.elapsed().as_secs_f64());
    }
    Ok(())
}
