//! NLP stage: operators that enrich a batch of comments between the batch
//! stage and the sink (embeddings, language, sentiment, aspects, themes).
//!
//! An operator implements one method, [`Operator::process_batch`]; its hooks
//! default to no-ops. Operators run on a blocking thread, never on the async
//! I/O threads, in the order the pipeline lists them.

use crate::batch::CommentBatch;

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

    /// Called once before the first batch.
    fn on_start(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called after a partition's files were committed (state checkpoints).
    fn on_commit(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Runs every operator over the batch, in order.
pub fn run_operators(
    ops: &mut [Box<dyn Operator>],
    batch: &mut CommentBatch,
) -> Result<(), OperatorError> {
    for op in ops.iter_mut() {
        let _span = tracing::debug_span!("operator", name = op.name()).entered();
        op.process_batch(batch)?;
    }
    Ok(())
}
