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

use super::clauses::{self, Span};
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
    /// With `encode_clauses`: also encode such a comment whole, or only
    /// as its pieces ([`clauses::pieces`]).
    encode_whole: bool,
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
            encode_whole: true,
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

    /// With [`Self::encode_clauses`]: `true` also encodes a comment whose
    /// clauses are encoded apart as a whole; `false` encodes it only as its
    /// pieces (each such clause, and the runs of text around them), and
    /// its token vectors, embedding and token count come from those.
    pub fn encode_whole(mut self, on: bool) -> Self {
        self.encode_whole = on;
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

    /// Each text's token vectors exactly as this stage keeps them for the
    /// analysis (with [`Self::encode_whole`] off, a text with contrastive
    /// clauses comes out joined from its pieces): the training commands
    /// read what the stage will give the heads. Needs [`Self::keep_tokens`].
    pub fn comment_token_vectors(
        &mut self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let at = chrono::Utc::now();
        let mut out = Vec::with_capacity(texts.len());
        for (b, chunk) in texts.chunks(256).enumerate() {
            let comments = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let coords = crate::comment::SourceCoords {
                        topic: "train".into(),
                        partition: 0,
                        offset: (b * 256 + i) as i64,
                        kafka_timestamp: None,
                    };
                    crate::comment::Comment::new(coords, String::new(), t.to_string(), at, at)
                })
                .collect();
            let mut batch = CommentBatch {
                comments,
                ..Default::default()
            };
            self.process_batch(&mut batch)?;
            out.extend(
                batch
                    .comments
                    .into_iter()
                    .map(|c| c.nlp.tokens.map(|t| t.vectors).unwrap_or_default()),
            );
            progress(chunk.len());
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
        let dim = self.encoder.dim();
        // The sequences to encode: every comment's own (whole, or its
        // pieces in order) first, then the clauses encoded beside a whole
        // comment, so a batch without such clauses is
        // planned exactly as it was before they existed.
        let mut rows: Vec<Row> = Vec::new();
        let mut beside: Vec<Row> = Vec::new();
        let apart = self.keep_tokens && self.encode_clauses;
        for (i, c) in batch.comments.iter().enumerate() {
            let pieces = if apart && !self.encode_whole {
                clauses::pieces(&c.text)
            } else {
                None
            };
            if let Some(pieces) = pieces {
                rows.extend(pieces.into_iter().map(|(span, clause)| {
                    let (text, at) = clauses::trimmed(&c.text, span);
                    Row {
                        comment: i,
                        text: Some((text, at)),
                        span,
                        part: true,
                        clause,
                    }
                }));
                continue;
            }
            rows.push(Row {
                comment: i,
                text: None,
                span: Span { start: 0, end: 0 },
                part: true,
                clause: false,
            });
            if apart {
                for s in clauses::split(&c.text) {
                    if clauses::splits_apart(&c.text, &s) {
                        beside.extend(s.clauses.into_iter().map(|span| Row {
                            comment: i,
                            text: Some(clauses::trimmed(&c.text, span)),
                            span,
                            part: false,
                            clause: true,
                        }));
                    }
                }
            }
        }
        rows.extend(beside);
        let texts: Vec<&str> = rows
            .iter()
            .map(|r| match &r.text {
                Some((t, _)) => t.as_str(),
                None => batch.comments[r.comment].text.as_str(),
            })
            .collect();
        let mut toks = self
            .tokenizer
            .encode_batch(&texts)
            .map_err(|e| self.fail(e))?;
        let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
        let plan = plan_sub_batches(&lengths, self.budget, self.max_rows);
        let passes = self.run_plan(&plan, &toks, self.keep_tokens)?;
        let mut encoded: Vec<Option<super::encoder::Encoded>> = vec![None; rows.len()];
        for (group, pass) in plan.into_iter().zip(passes) {
            if let Some(h) = &self.inference {
                h.observe(pass.seconds);
            }
            for (r, e) in group.into_iter().zip(pass.encoded) {
                encoded[r] = Some(e);
            }
        }
        // Token offsets move into the comment's characters.
        for (r, t) in rows.iter().zip(toks.iter_mut()) {
            if let Some((_, at)) = r.text {
                for o in t.offsets.iter_mut() {
                    if o.0 != o.1 {
                        *o = (o.0 + at, o.1 + at);
                    }
                }
            }
        }
        let mut by_comment: Vec<Vec<usize>> = vec![Vec::new(); batch.comments.len()];
        for (k, row) in rows.iter().enumerate() {
            if let Some(list) = by_comment.get_mut(row.comment) {
                list.push(k);
            }
        }
        for (i, list) in by_comment.into_iter().enumerate() {
            let mut clause_states = Vec::new();
            let mut parts = Vec::new();
            for k in list {
                let Some(mut e) = encoded[k].take() else {
                    return Err(self.fail("a sequence came back without vectors"));
                };
                let mut offsets = std::mem::take(&mut toks[k].offsets);
                if rows[k].clause {
                    // A piece of the comment keeps its vectors for the
                    // comment's sequence too; a clause beside it gives them up.
                    let (vectors, offsets) = if rows[k].part {
                        (e.tokens.clone(), offsets.clone())
                    } else {
                        (std::mem::take(&mut e.tokens), std::mem::take(&mut offsets))
                    };
                    clause_states.push(ClauseStates {
                        start: rows[k].span.start,
                        end: rows[k].span.end,
                        vectors,
                        offsets,
                    });
                }
                if rows[k].part {
                    parts.push((e, offsets, toks[k].ids.len(), toks[k].truncated));
                }
            }
            let (embedding, states, count, truncated) = if parts.len() == 1 {
                let Some((e, offsets, count, truncated)) = parts.pop() else {
                    continue;
                };
                let states = TokenStates {
                    vectors: e.tokens,
                    offsets,
                    clauses: Vec::new(),
                };
                (e.embedding, states, count, truncated)
            } else {
                let truncated = parts.iter().any(|p| p.3);
                let states = join_pieces(parts, dim);
                let embedding =
                    super::encoder::pooled(&states.vectors, dim, 0..states.offsets.len());
                let count = states.offsets.len();
                (embedding, states, count, truncated)
            };
            let n = &mut batch.comments[i].nlp;
            if self.keep_tokens {
                clause_states.sort_by_key(|s| s.start);
                n.tokens = Some(TokenStates {
                    clauses: clause_states,
                    ..states
                });
            }
            n.embedding = Some(self.comment_vector(embedding));
            n.token_count = Some(count as u32);
            n.truncated = Some(truncated);
            n.embedding_model = Some(self.column_tag.clone());
        }
        Ok(())
    }
}

/// One encoded sequence of a comment: its vectors, its tokens' character
/// offsets in the comment, its token count, whether it was truncated.
type Piece = (super::encoder::Encoded, Vec<(u32, u32)>, usize, bool);

/// One sequence the embed stage encodes for a comment.
struct Row {
    /// Index of the comment in the batch.
    comment: usize,
    /// The piece's trimmed text and the comment's character where it
    /// starts; `None`: the whole comment.
    text: Option<(String, u32)>,
    /// The piece's characters in the comment (for a clause).
    span: Span,
    /// Its vectors are (part of) the comment's own.
    part: bool,
    /// It is a clause of a contrastive sentence ([`TokenStates::clauses`]).
    clause: bool,
}

/// A comment's token states from its pieces, in order: the first piece's
/// leading special tokens (and prefix), every piece's text tokens, the last
/// piece's closing special tokens, as one sequence of the whole comment
/// would have them.
fn join_pieces(parts: Vec<Piece>, dim: usize) -> TokenStates {
    let last = parts.len().saturating_sub(1);
    let mut vectors = Vec::new();
    let mut offsets = Vec::new();
    for (k, (e, o, _, _)) in parts.into_iter().enumerate() {
        let text_rows: Vec<usize> = (0..o.len()).filter(|&t| o[t].0 != o[t].1).collect();
        let (first, after) = match (text_rows.first(), text_rows.last()) {
            (Some(&a), Some(&b)) => (a, b + 1),
            _ => (o.len(), o.len()),
        };
        let keep = (0..o.len())
            .filter(|&t| (k == 0 && t < first) || (k == last && t >= after) || o[t].0 != o[t].1);
        for t in keep {
            if let Some(v) = e.tokens.get(t * dim..(t + 1) * dim) {
                vectors.extend_from_slice(v);
                offsets.push(o[t]);
            }
        }
    }
    TokenStates {
        vectors,
        offsets,
        clauses: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlp::encoder::Encoded;

    /// A piece encoded as `[CLS] query : <words> [SEP]`: 2-d vectors whose
    /// first value names the token.
    fn piece(words: &[(u32, u32)], tag: f32) -> Piece {
        let mut offsets = vec![(0, 0), (0, 0), (0, 0)];
        offsets.extend_from_slice(words);
        offsets.push((0, 0));
        let tokens: Vec<f32> = (0..offsets.len())
            .flat_map(|t| [tag + t as f32, 1.0])
            .collect();
        let n = offsets.len();
        (
            Encoded {
                embedding: Vec::new(),
                tokens,
            },
            offsets,
            n,
            false,
        )
    }

    /// Pieces join as one sequence of the comment would be: the first
    /// piece's opening special tokens, every piece's words in order, the
    /// last piece's closing one; each piece's own specials in between go.
    #[test]
    fn pieces_join_into_the_comments_sequence() {
        let a = piece(&[(0, 3), (4, 9)], 100.0);
        let b = piece(&[(10, 13), (14, 20)], 200.0);
        let c = piece(&[(21, 25)], 300.0);
        let st = join_pieces(vec![a, b, c], 2);
        assert_eq!(
            st.offsets,
            vec![
                (0, 0),
                (0, 0),
                (0, 0),
                (0, 3),
                (4, 9),
                (10, 13),
                (14, 20),
                (21, 25),
                (0, 0)
            ]
        );
        let first: Vec<f32> = st.vectors.chunks(2).map(|r| r[0]).collect();
        assert_eq!(
            first,
            vec![100.0, 101.0, 102.0, 103.0, 104.0, 203.0, 204.0, 303.0, 304.0]
        );
        // One piece: itself.
        let one = join_pieces(vec![piece(&[(0, 4)], 0.0)], 2);
        assert_eq!(one.offsets.len(), 5);
    }

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
