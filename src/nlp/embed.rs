//! The embedding stage: tokenize a batch, cut it into sub-batches under a
//! padded-token budget, encode each, and attach a vector, token count and
//! truncation flag to every comment. For the analysis stage it keeps the
//! token vectors too, and can encode the clauses of contrastive sentences
//! as rows of their own in the same sub-batches.
//!
//! Batching follows text-embeddings-inference: rows are sorted by length, so
//! a sub-batch pads to a length close to its rows' own, and a sub-batch is
//! closed once `rows x longest` would pass the budget (or `max_rows`).

use std::sync::Arc;

use super::clauses;
use super::encoder::{Encoded, Encoder, Timed};
use super::tokenize::TextTokenizer;
use super::{Operator, OperatorError};
use crate::batch::CommentBatch;
use crate::comment::{ClauseStates, TokenStates};

/// Groups row indices into sub-batches: sorted by length, each closed before
/// `rows x longest` passes `budget` tokens or it holds `max_rows` rows. A row
/// longer than the budget gets a sub-batch of its own.
pub fn plan_sub_batches(lengths: &[usize], budget: usize, max_rows: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so this row is the longest of `cur` plus it.
        let longest = lengths[i];
        if !cur.is_empty() && ((cur.len() + 1) * longest > budget || cur.len() >= max_rows) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Padded tokens a plan costs (for the bench and tests).
pub fn padded_tokens(lengths: &[usize], plan: &[Vec<usize>]) -> usize {
    plan.iter()
        .map(|g| g.len() * g.iter().map(|&i| lengths[i]).max().unwrap_or(0))
        .sum()
}

/// Sub-batches per encoder call in [`EmbedOperator::encode_texts`].
const PROGRESS_GROUPS: usize = 32;

/// The operator that embeds every comment of a batch.
pub struct EmbedOperator {
    tokenizer: TextTokenizer,
    encoder: Box<dyn Encoder>,
    budget: usize,
    max_rows: usize,
    tag: Arc<str>,
    /// `tag`, plus the theme projection when there is one: the
    /// `embedding_model` column.
    column_tag: Arc<str>,
    projection: Option<super::projection::Projection>,
    keep_tokens: bool,
    /// With `keep_tokens`: also encode each clause of a contrastive
    /// sentence as its own sequence ([`TokenStates::clauses`]).
    encode_clauses: bool,
    /// Where each forward pass's time goes, once the pipeline starts the operator.
    inference: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl EmbedOperator {
    /// An embedding stage over `encoder`.
    pub fn new(
        tokenizer: TextTokenizer,
        encoder: Box<dyn Encoder>,
        budget: usize,
        max_rows: usize,
    ) -> Self {
        let tag: Arc<str> = encoder.describe().into();
        Self {
            tokenizer,
            encoder,
            budget,
            max_rows,
            column_tag: tag.clone(),
            tag,
            projection: None,
            keep_tokens: false,
            encode_clauses: false,
            inference: None,
        }
    }

    /// Also keeps every comment's token vectors and character offsets for
    /// the analysis stage (same forward pass; the tokenizer then tracks
    /// offsets).
    pub fn keep_tokens(mut self, on: bool) -> Self {
        self.keep_tokens = on;
        self.tokenizer = self.tokenizer.with_offsets(on);
        self
    }

    /// With [`Self::keep_tokens`], also encodes each clause of a sentence
    /// whose clauses a contrastive conjunction joins as a sequence of its
    /// own, in the same forward passes ([`TokenStates::clauses`]).
    pub fn encode_clauses(mut self, on: bool) -> Self {
        self.encode_clauses = on;
        self
    }

    /// Puts the model's theme projection between its sentence vectors and
    /// the comments' `embedding` (see [`super::projection`]); token vectors
    /// and [`Self::embed_texts`] stay the model's own.
    pub fn with_projection(mut self, projection: Option<super::projection::Projection>) -> Self {
        self.column_tag = match &projection {
            Some(p) => format!("{} + {}", self.tag, p.id()).into(),
            None => self.tag.clone(),
        };
        self.projection = projection;
        self
    }

    /// The model's theme projection, if it has one.
    pub fn projection(&self) -> Option<&super::projection::Projection> {
        self.projection.as_ref()
    }

    /// Size of the model's vectors (sentence and token).
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// Size of a comment's `embedding`: the theme projection's output, or
    /// the model's vector size.
    pub fn embedding_dim(&self) -> usize {
        self.projection
            .as_ref()
            .map_or(self.encoder.dim(), |p| p.dim())
    }

    fn comment_vector(&self, v: Vec<f32>) -> Vec<f32> {
        match &self.projection {
            Some(p) => p.apply(&v),
            None => v,
        }
    }

    /// `model backend precision` of the encoder.
    pub fn describe(&self) -> &str {
        &self.tag
    }

    /// The model's own sentence vectors (benches, examples of targets), in
    /// input order.
    pub fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OperatorError> {
        Ok(self
            .encode_texts(texts, false, &mut |_| {})?
            .into_iter()
            .map(|e| e.embedding)
            .collect())
    }

    /// Vectors as the stage gives comments (`embedding`, themes): through
    /// the theme projection when the model has one; in input order.
    pub fn comment_vectors(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OperatorError> {
        let raw = self.embed_texts(texts)?;
        Ok(raw.into_iter().map(|v| self.comment_vector(v)).collect())
    }

    /// Encodes texts directly, with their token vectors when `with_tokens`
    /// (`verbatim train`), in input order; `progress` hears how many rows
    /// each sub-batch finished.
    pub fn encode_texts(
        &mut self,
        texts: &[&str],
        with_tokens: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Encoded>, OperatorError> {
        let toks = self
            .tokenizer
            .encode_batch(texts)
            .map_err(|e| self.fail(e))?;
        let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
        let mut out = vec![
            Encoded {
                embedding: Vec::new(),
                tokens: Vec::new(),
            };
            texts.len()
        ];
        // A few sub-batches per call: enough for every lane, and progress
        // still moves.
        let plan = plan_sub_batches(&lengths, self.budget, self.max_rows);
        for chunk in plan.chunks(PROGRESS_GROUPS) {
            for (group, pass) in chunk.iter().zip(self.run_plan(chunk, &toks, with_tokens)?) {
                progress(group.len());
                for (&i, e) in group.iter().zip(pass.encoded) {
                    out[i] = e;
                }
            }
        }
        Ok(out)
    }

    /// Encodes the sub-batches of `plan` (row indices into `toks`) in one
    /// call, so the encoder may run them side by side.
    fn run_plan(
        &mut self,
        plan: &[Vec<usize>],
        toks: &[super::tokenize::Tokens],
        with_tokens: bool,
    ) -> Result<Vec<Timed>, OperatorError> {
        let groups: Vec<Vec<&[u32]>> = plan
            .iter()
            .map(|g| g.iter().map(|&i| toks[i].ids.as_slice()).collect())
            .collect();
        self.encoder
            .run_groups(&groups, with_tokens)
            .map_err(|e| self.fail(e))
    }

    fn fail(&self, e: impl std::fmt::Display) -> OperatorError {
        OperatorError::Failed {
            operator: "embed".into(),
            message: e.to_string(),
        }
    }
}

impl Operator for EmbedOperator {
    fn name(&self) -> &str {
        "embed"
    }

    fn on_start(&mut self, metrics: &crate::metrics::Metrics) -> Result<(), OperatorError> {
        self.inference = Some(metrics.inference_seconds.clone());
        Ok(())
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        if batch.comments.is_empty() {
            return Ok(());
        }
        let n = batch.comments.len();
        // The clauses analysis reads on their own: (comment, span, text).
        let mut extra: Vec<(usize, clauses::Span, String)> = Vec::new();
        if self.keep_tokens && self.encode_clauses {
            for (i, c) in batch.comments.iter().enumerate() {
                for s in clauses::split(&c.text) {
                    if s.clauses.len() > 1 && clauses::contrastive(&clauses::slice(&c.text, s.span))
                    {
                        extra.extend(
                            s.clauses
                                .into_iter()
                                .map(|span| (i, span, clauses::slice(&c.text, span))),
                        );
                    }
                }
            }
        }
        let texts: Vec<&str> = batch
            .comments
            .iter()
            .map(|c| c.text.as_str())
            .chain(extra.iter().map(|e| e.2.as_str()))
            .collect();
        let toks = self
            .tokenizer
            .encode_batch(&texts)
            .map_err(|e| self.fail(e))?;
        let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
        let mut toks = toks;
        let plan = plan_sub_batches(&lengths, self.budget, self.max_rows);
        let passes = self.run_plan(&plan, &toks, self.keep_tokens)?;
        let mut clause_states: Vec<Vec<ClauseStates>> = vec![Vec::new(); n];
        for (group, pass) in plan.into_iter().zip(passes) {
            if let Some(h) = &self.inference {
                h.observe(pass.seconds);
            }
            for (i, e) in group.into_iter().zip(pass.encoded) {
                if let Some((c, span, _)) = i.checked_sub(n).and_then(|k| extra.get(k)) {
                    // A clause: offsets move into the comment's characters.
                    let offsets = std::mem::take(&mut toks[i].offsets)
                        .into_iter()
                        .map(|(a, b)| {
                            if a == b {
                                (a, b)
                            } else {
                                (a + span.start, b + span.start)
                            }
                        })
                        .collect();
                    clause_states[*c].push(ClauseStates {
                        start: span.start,
                        end: span.end,
                        vectors: e.tokens,
                        offsets,
                    });
                    continue;
                }
                let n = &mut batch.comments[i].nlp;
                if self.keep_tokens {
                    n.tokens = Some(TokenStates {
                        vectors: e.tokens,
                        offsets: std::mem::take(&mut toks[i].offsets),
                        clauses: Vec::new(),
                    });
                }
                n.embedding = Some(self.comment_vector(e.embedding));
                n.token_count = Some(toks[i].ids.len() as u32);
                n.truncated = Some(toks[i].truncated);
                n.embedding_model = Some(self.column_tag.clone());
            }
        }
        for (c, mut states) in batch.comments.iter_mut().zip(clause_states) {
            if let Some(st) = c.nlp.tokens.as_mut() {
                states.sort_by_key(|s| s.start);
                st.clauses = states;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_respects_budget_and_covers_every_row_once() {
        let lengths = [10, 200, 12, 11, 300, 50, 9, 13, 14, 15];
        let plan = plan_sub_batches(&lengths, 100, 4);
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for g in &plan {
            let longest = g.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(g.len() <= 4);
            assert!(g.len() == 1 || g.len() * longest <= 100, "{g:?}");
        }
        // Sorting keeps padding low: much less than padding all to 300.
        assert!(padded_tokens(&lengths, &plan) < lengths.len() * 300 / 2);
    }

    #[test]
    fn empty_plan() {
        assert!(plan_sub_batches(&[], 100, 4).is_empty());
    }
}
