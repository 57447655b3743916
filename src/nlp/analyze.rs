//! The analysis stage: sentiment and aspects (what each part of a comment is
//! about, and how the customer feels about it) from the token vectors the
//! embed stage kept.
//!
//! For each comment the model can read (its language is one the model's
//! manifest lists):
//! 1. the text is cut into sentences and clauses ([`super::clauses`]);
//! 2. each sentence's token vectors, and each of its clauses', go through
//!    the aspect head ([`super::heads`]): per target, `absent / negative /
//!    neutral / positive`; a target is reported when `1 - p(absent)`
//!    reaches the target's threshold (`nlp.presence`, else the manifest's
//!    `presence`, else its `min_presence`) in the sentence (or, with the
//!    manifest's `read_clauses`, in one of its clauses); its span is the
//!    clause most likely to be about it. Its polarity is that clause's where
//!    a contrastive conjunction joins the clauses ("but", "но"), read from
//!    the clause's own encoding when the embed stage encoded it apart
//!    (`nlp.encode_clauses`), and with `read_clauses` at every clause break
//!    (from the clause's slice of the sentence's vectors), so praise in one
//!    clause does not colour a complaint in the next; with the manifest's
//!    `clause_sentiment` (a weight `w`) the polarity mixes the aspect head's
//!    (absent left out) with the sentiment head read over that same clause,
//!    `(1 - w) · aspect + w · sentiment`;
//! 3. the whole comment's token vectors give the sentiment score;
//! 4. flags that need a complaint (`[flags.<name>] needs_complaint`,
//!    repeat_issue by default) are withdrawn from a comment with no
//!    negative mention and no negative sentiment.
//!
//! Comments in other languages get no aspects and no sentiment, and
//! `analysis_skipped` says why: the stage never guesses on text the model
//! cannot read.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::clauses::{self, Span};
use super::encoder::pooled;
use super::heads::{Heads, HeadsManifest, SentimentProbs};
use super::{Operator, OperatorError};
use crate::batch::CommentBatch;
use crate::comment::{skipped, Aspect, Evidence, Polarity, Sentiment, TokenStates};

/// Sentiment and aspects for every comment of a batch.
pub struct AnalyzeOperator {
    heads: Heads,
    targets: Vec<Arc<str>>,
    neutral_band: f32,
    /// Per target (in `targets` order), the `1 - p(absent)` that reports it.
    presence: Vec<f32>,
    /// [`HeadsManifest::clause_sentiment`], or `nlp.clause_sentiment`.
    clause_sentiment: f32,
    /// [`HeadsManifest::read_clauses`].
    read_clauses: bool,
    languages: BTreeSet<String>,
    /// `[targets.<name>]` tables: targets found by example phrases.
    examples: Vec<ExampleTarget>,
    /// `[flags.<name>] examples`: flags raised by a clause close to one.
    example_flags: Vec<ExampleTarget>,
    /// Learned flags over the comment's vector, beside the patterns.
    flag_heads: Option<super::flag_heads::FlagHeads>,
    /// The model's theme projection: a mention's clause vector goes
    /// through it, as the comment's `embedding` does.
    projection: Option<super::projection::Projection>,
    /// Flags kept only on a comment that reads as a complaint
    /// ([`crate::config::complaint_flags`]).
    complaint_flags: Vec<String>,
    /// The flag stage's patterns: their exclusions also withdraw what a
    /// learned head or example phrases raised.
    exclusions: Option<super::flags::FlagMatcher>,
}

/// A target (or flag) an analyst defined by example phrases.
struct ExampleTarget {
    name: Arc<str>,
    /// L2-normalised embeddings of the examples.
    vectors: Vec<Vec<f32>>,
    min_similarity: f32,
}

/// A sentence's token rows within a comment.
struct Segment {
    comment: usize,
    /// The characters it covers.
    span: Span,
    /// For a clause, the index of its sentence's segment.
    parent: Option<usize>,
    /// Token indices into the comment's vectors (or, for a clause encoded
    /// on its own, into that clause's), with the special tokens.
    tokens: Vec<usize>,
    /// Which [`TokenStates::clauses`] entry `tokens` index, if any.
    own: Option<usize>,
    /// Row of its first token vector in the batch's projection.
    base: usize,
}

impl AnalyzeOperator {
    /// A stage over trained `heads`, for comments in `languages` (the
    /// model's manifest).
    pub fn new(heads: Heads, manifest: &HeadsManifest, languages: &[String]) -> Self {
        Self {
            targets: heads
                .targets
                .iter()
                .map(|t| Arc::from(t.as_str()))
                .collect(),
            presence: heads
                .targets
                .iter()
                .map(|t| {
                    manifest
                        .presence
                        .get(t)
                        .copied()
                        .unwrap_or(manifest.min_presence)
                })
                .collect(),
            heads,
            clause_sentiment: manifest.clause_sentiment,
            neutral_band: manifest.neutral_band,
            read_clauses: manifest.read_clauses,
            languages: languages.iter().cloned().collect(),
            examples: Vec::new(),
            example_flags: Vec::new(),
            flag_heads: None,
            projection: None,
            complaint_flags: Vec::new(),
            exclusions: None,
        }
    }

    /// Replaces the presence threshold of each target `presence` names
    /// (`nlp.presence`); names the heads do not output are ignored (the
    /// config's validation rejects them first).
    pub fn with_presence(mut self, presence: &std::collections::BTreeMap<String, f32>) -> Self {
        for (t, p) in self.targets.iter().zip(self.presence.iter_mut()) {
            if let Some(x) = presence.get(&**t) {
                *p = *x;
            }
        }
        self
    }

    /// Replaces the weight of the sentiment head over an aspect's clause in
    /// its polarity (`nlp.clause_sentiment`), when set.
    pub fn with_clause_sentiment(mut self, weight: Option<f32>) -> Self {
        if let Some(w) = weight {
            self.clause_sentiment = w;
        }
        self
    }

    /// Applies the flag patterns' exclusions (`[flags.<name>] exclude` and
    /// the built-in ones) to the flags a learned head or example phrases
    /// raise, as the flag stage applies them to its own matches: a flag
    /// whose evidence sits in an excluded sentence is not raised.
    pub fn with_flag_exclusions(mut self, matcher: super::flags::FlagMatcher) -> Self {
        self.exclusions = Some(matcher);
        self
    }

    /// Flags (`names`) that a comment keeps only when it reads as a
    /// complaint: one of its mentions is negative, or its sentiment is.
    /// Whatever raised them (a pattern, a learned head, an example), they
    /// are withdrawn from a comment that praises or merely reports: "third
    /// flight with you and every one on time" is no repeat issue.
    pub fn with_complaint_flags(mut self, names: Vec<String>) -> Self {
        self.complaint_flags = names;
        self
    }

    /// Puts the model's theme projection between a mention's clause vector
    /// and [`Aspect::vector`], as the embed stage does for the comment.
    pub fn with_projection(mut self, projection: Option<super::projection::Projection>) -> Self {
        self.projection = projection;
        self
    }

    /// The vector of the clause `seg` reads, in the space of the comments'
    /// `embedding`: the comment's own when the segment is the whole
    /// comment, else its tokens' mean through the theme projection.
    fn clause_vector(&self, seg: &Segment, comment: &crate::comment::Comment) -> Option<Vec<f32>> {
        let st = comment.nlp.tokens.as_ref()?;
        let dim = self.heads.dim;
        if seg.own.is_none() && seg.tokens.len() == st.offsets.len() {
            return comment.nlp.embedding.clone();
        }
        let source = match seg.own {
            Some(k) => &st.clauses.get(k)?.vectors,
            None => &st.vectors,
        };
        let v = pooled(source, dim, seg.tokens.iter().copied());
        Some(match &self.projection {
            Some(p) => p.apply(&v),
            None => v,
        })
    }

    /// A flag defined by example phrases (`[flags.<name>] examples`): a
    /// clause whose mean token vector has cosine `>= min_similarity` with
    /// one of `vectors` raises `name` with that clause as its evidence,
    /// unless a pattern or a learned head already raised it.
    pub fn add_example_flag(&mut self, name: &str, vectors: Vec<Vec<f32>>, min_similarity: f32) {
        self.example_flags.push(ExampleTarget {
            name: name.into(),
            vectors,
            min_similarity,
        });
    }

    /// Also raises flags learned from examples ([`super::flag_heads`]): a
    /// flag whose head scores the comment's vector above 0 is raised, with
    /// the clause that scores highest as its evidence, unless a pattern
    /// already raised it.
    pub fn with_flag_heads(mut self, heads: Option<super::flag_heads::FlagHeads>) -> Self {
        self.flag_heads = heads;
        self
    }

    /// The learned flags of one analysed comment that its patterns did not
    /// raise, each with the clause that scores highest for it.
    fn learned_flags(&self, text: &str, st: &TokenStates) -> Vec<Evidence> {
        let Some(heads) = &self.flag_heads else {
            return Vec::new();
        };
        let dim = self.heads.dim;
        if heads.dim() != dim || st.vectors.len() < dim {
            return Vec::new();
        }
        let whole = heads.logits(&pooled(&st.vectors, dim, 0..st.vectors.len() / dim));
        let raised: Vec<usize> = (0..whole.len()).filter(|&f| whole[f] > 0.0).collect();
        if raised.is_empty() {
            return Vec::new();
        }
        let spans: Vec<Span> = clauses::split(text)
            .into_iter()
            .flat_map(|s| s.clauses)
            .collect();
        let scored: Vec<(Span, Vec<f32>)> = spans
            .into_iter()
            .filter_map(|span| {
                let mut rows = st
                    .offsets
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &(a, b))| {
                        (b > a && a >= span.start && a < span.end).then_some(i)
                    })
                    .peekable();
                rows.peek()?;
                Some((span, heads.logits(&pooled(&st.vectors, dim, rows))))
            })
            .collect();
        raised
            .into_iter()
            .map(|f| {
                let span = scored
                    .iter()
                    .max_by(|a, b| a.1[f].total_cmp(&b.1[f]))
                    .map_or(
                        Span {
                            start: 0,
                            end: text.chars().count() as u32,
                        },
                        |(s, _)| *s,
                    );
                Evidence {
                    flag: heads.flags[f].clone(),
                    start: span.start,
                    end: span.end,
                    text: clauses::slice(text, span),
                }
            })
            .collect()
    }

    /// Adds a target found by example phrases (`vectors`: their embeddings):
    /// a clause whose mean token vector has cosine `>= min_similarity` with
    /// one of them is an aspect of `name`, with the clause's sentiment as its
    /// polarity and the similarity as its confidence.
    pub fn add_example_target(&mut self, name: &str, vectors: Vec<Vec<f32>>, min_similarity: f32) {
        self.examples.push(ExampleTarget {
            name: name.into(),
            vectors,
            min_similarity,
        });
    }

    fn fail(&self, e: impl std::fmt::Display) -> OperatorError {
        OperatorError::Failed {
            operator: "analyze".into(),
            message: e.to_string(),
        }
    }

    /// The label of a sentiment: with a three-class head the likeliest
    /// class; with a two-class head, neutral when the score
    /// (`p(positive) - p(negative)`) is within the manifest's `neutral_band`
    /// of 0.
    pub fn label(&self, s: SentimentProbs) -> Polarity {
        if self.heads.sentiment_classes == 3 {
            let [n, u, p] = s.0;
            return if u >= n && u >= p {
                Polarity::Neutral
            } else if p > n {
                Polarity::Positive
            } else {
                Polarity::Negative
            };
        }
        let score = s.score();
        if score <= -self.neutral_band {
            Polarity::Negative
        } else if score >= self.neutral_band {
            Polarity::Positive
        } else {
            Polarity::Neutral
        }
    }

    /// Cuts a comment into sentence segments of token indices, each
    /// followed by its clauses' segments when it has more than one.
    ///
    /// `base` is the row of the comment's first token in the batch's
    /// projection, `clause_base` the rows of its clauses encoded on their
    /// own: such a clause's segment reads those vectors instead.
    fn segments(
        text: &str,
        st: &TokenStates,
        comment: usize,
        (base, clause_base): (usize, &[usize]),
        out: &mut Vec<Segment>,
    ) {
        let n = st.offsets.len();
        let specials: Vec<usize> = (0..n)
            .filter(|&i| st.offsets[i].0 == st.offsets[i].1)
            .collect();
        let within = |span: Span| -> Vec<usize> {
            let mut tokens: Vec<usize> = (0..n)
                .filter(|&i| {
                    let (a, b) = st.offsets[i];
                    b > a && a >= span.start && a < span.end
                })
                .collect();
            if tokens.is_empty() {
                return tokens;
            }
            if let (Some(&first), Some(&last)) = (specials.first(), specials.last()) {
                tokens.insert(0, first);
                if last != first {
                    tokens.push(last);
                }
            }
            tokens
        };
        let sentences = clauses::split(text);
        let single = sentences.len() <= 1;
        for s in sentences {
            // One sentence: the whole comment, exactly as the heads were trained.
            let tokens = if single {
                (0..n).collect()
            } else {
                within(s.span)
            };
            if tokens.is_empty() {
                // Past the model's reach (truncated) or only punctuation.
                continue;
            }
            let parent = out.len();
            out.push(Segment {
                comment,
                span: s.span,
                parent: None,
                tokens,
                own: None,
                base,
            });
            if s.clauses.len() > 1 {
                for c in s.clauses {
                    let own = st
                        .clauses
                        .iter()
                        .position(|o| o.start == c.start && o.end == c.end);
                    let (tokens, base) = match own {
                        Some(k) => ((0..st.clauses[k].offsets.len()).collect(), clause_base[k]),
                        None => (within(c), base),
                    };
                    if !tokens.is_empty() {
                        out.push(Segment {
                            comment,
                            span: c,
                            parent: Some(parent),
                            tokens,
                            own,
                            base,
                        });
                    }
                }
            }
        }
    }
}

/// The clause (segment index) of `clauses` whose vector is closest to one
/// of `ex`'s examples, with that cosine, if it reaches `ex`'s threshold.
fn best_clause(ex: &ExampleTarget, clauses: &[usize], vecs: &[Vec<f32>]) -> Option<(usize, f32)> {
    clauses
        .iter()
        .zip(vecs)
        .map(|(&c, v)| {
            let sim = ex
                .vectors
                .iter()
                .map(|e| super::encoder::cosine(v, e))
                .fold(f32::MIN, f32::max);
            (c, sim)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|b| b.1 >= ex.min_similarity)
}

impl Operator for AnalyzeOperator {
    fn name(&self) -> &str {
        "analyze"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        let dim = self.heads.dim;
        // Which comments to analyse; the rest say why not.
        let mut todo = Vec::new();
        for (i, c) in batch.comments.iter_mut().enumerate() {
            let Some(st) = c.nlp.tokens.as_ref() else {
                continue;
            };
            if st.vectors.is_empty() {
                c.nlp.tokens = None;
                continue;
            }
            match c.nlp.language {
                Some(l) if self.languages.contains(l) => todo.push(i),
                Some(_) => {
                    c.nlp.analysis_skipped = Some(skipped::LANGUAGE_NOT_SUPPORTED);
                    c.nlp.tokens = None;
                }
                None => {
                    c.nlp.analysis_skipped = Some(skipped::LANGUAGE_UNKNOWN);
                    c.nlp.tokens = None;
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        // One projection of every analysed token of the batch.
        let mut all: Vec<&[f32]> = Vec::new();
        let mut rows = 0;
        let mut base = Vec::with_capacity(todo.len());
        let mut clause_base: Vec<Vec<usize>> = Vec::with_capacity(todo.len());
        for &i in &todo {
            base.push(rows);
            let mut own = Vec::new();
            if let Some(st) = batch.comments[i].nlp.tokens.as_ref() {
                all.push(&st.vectors);
                rows += st.vectors.len() / dim;
                for c in &st.clauses {
                    own.push(rows);
                    all.push(&c.vectors);
                    rows += c.vectors.len() / dim;
                }
            }
            clause_base.push(own);
        }
        let tp = self.heads.project_parts(&all).map_err(|e| self.fail(e))?;
        drop(all);
        // Sentiment over whole comments; aspects sentence by sentence and
        // clause by clause, all from the same projections.
        let mut scores = Vec::with_capacity(todo.len());
        let mut segs = Vec::new();
        for ((&i, &b0), own) in todo.iter().zip(&base).zip(&clause_base) {
            let c = &batch.comments[i];
            if let Some(st) = c.nlp.tokens.as_ref() {
                let n = st.vectors.len() / dim;
                scores.push(tp.sentiment(&(b0..b0 + n).collect::<Vec<_>>()));
                Self::segments(&c.text, st, i, (b0, own), &mut segs);
            }
        }
        let probs: Vec<Vec<[f32; 4]>> = segs
            .iter()
            .map(|s| tp.aspect_probs(&s.tokens.iter().map(|t| s.base + t).collect::<Vec<_>>()))
            .collect();
        // A sentence's aspects; each points at the clause most likely to be
        // about its target.
        let mut aspects: Vec<Vec<Aspect>> = vec![Vec::new(); batch.comments.len()];
        let contrastive: Vec<bool> = segs
            .iter()
            .map(|seg| {
                seg.parent.is_none()
                    && clauses::contrastive(&clauses::slice(
                        &batch.comments[seg.comment].text,
                        seg.span,
                    ))
            })
            .collect();
        // Each sentence's clauses, in order.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); segs.len()];
        for (c, seg) in segs.iter().enumerate() {
            if let Some(k) = seg.parent {
                children[k].push(c);
            }
        }
        for (k, seg) in segs.iter().enumerate() {
            if seg.parent.is_some() {
                continue;
            }
            let text = &batch.comments[seg.comment].text;
            for (t, p) in probs[k].iter().enumerate() {
                // The clause most likely to be about the target, if the
                // sentence has several: the aspect's span. Where the clauses
                // are joined by "but", "although", "но", "а"… (with
                // `read_clauses`, at every break), also its polarity, so
                // praise in one clause does not colour a complaint in the
                // other (README, "Comment analysis"); with `read_clauses` a
                // target one clause names counts even when the whole
                // sentence hides it.
                let clause = children[k]
                    .iter()
                    .map(|&c| (c, &segs[c]))
                    .max_by(|(a, _), (b, _)| {
                        (1.0 - probs[*a][t][0]).total_cmp(&(1.0 - probs[*b][t][0]))
                    });
                let own = clause.map(|(c, _)| &probs[c][t]);
                let p = match own {
                    Some(q) if self.read_clauses || contrastive[k] => q,
                    _ => p,
                };
                let present = |p: &[f32; 4]| 1.0 - p[0] >= self.presence[t];
                let found =
                    present(&probs[k][t]) || (self.read_clauses && own.is_some_and(present));
                if !found {
                    continue;
                }
                let span = clause.map_or(seg.span, |(_, c)| c.span);
                let read_from = clause.map_or(seg, |(_, c)| c);
                // The sentiment head over the same clause, weighed in
                // (`clause_sentiment`): it reads "dismissive" or "pushy" as
                // negative where the aspect head, taught mostly by reviews
                // that praise staff, does not.
                let w = self.clause_sentiment;
                let mut p = *p;
                if w > 0.0 {
                    let rows: Vec<usize> = read_from
                        .tokens
                        .iter()
                        .map(|t| read_from.base + t)
                        .collect();
                    let sp = tp.sentiment(&rows).0;
                    let z = (p[1] + p[2] + p[3]).max(f32::MIN_POSITIVE);
                    for j in 1..4 {
                        p[j] = (1.0 - w) * p[j] / z + w * sp[j - 1];
                    }
                }
                let (cls, conf) =
                    (1..4)
                        .map(|j| (j, p[j]))
                        .fold((1, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
                let polarity = [Polarity::Negative, Polarity::Neutral, Polarity::Positive][cls - 1];
                aspects[seg.comment].push(Aspect {
                    target: self.targets[t].clone(),
                    polarity,
                    confidence: conf,
                    start: span.start,
                    end: span.end,
                    text: clauses::slice(text, span),
                    vector: self.clause_vector(read_from, &batch.comments[seg.comment]),
                    theme: None,
                });
            }
        }
        // Targets and flags defined by examples, clause by clause.
        let mut example_evidence: Vec<Vec<(f32, Evidence)>> =
            vec![Vec::new(); batch.comments.len()];
        if !self.examples.is_empty() || !self.example_flags.is_empty() {
            for (k, seg) in segs.iter().enumerate() {
                if seg.parent.is_some() {
                    continue;
                }
                let clauses = if children[k].is_empty() {
                    vec![k]
                } else {
                    children[k].clone()
                };
                let Some(st) = batch.comments[seg.comment].nlp.tokens.as_ref() else {
                    continue;
                };
                let vecs: Vec<Vec<f32>> = clauses
                    .iter()
                    .map(|&c| {
                        let source = match segs[c].own {
                            Some(k) => &st.clauses[k].vectors,
                            None => &st.vectors,
                        };
                        pooled(source, dim, segs[c].tokens.iter().copied())
                    })
                    .collect();
                let text = &batch.comments[seg.comment].text;
                for ex in &self.example_flags {
                    let Some((c, sim)) = best_clause(ex, &clauses, &vecs) else {
                        continue;
                    };
                    let found = &mut example_evidence[seg.comment];
                    let e = Evidence {
                        flag: ex.name.to_string(),
                        start: segs[c].span.start,
                        end: segs[c].span.end,
                        text: clauses::slice(text, segs[c].span),
                    };
                    // One evidence per flag and comment: its closest clause.
                    match found.iter_mut().find(|(_, f)| f.flag == e.flag) {
                        Some(old) if old.0 < sim => *old = (sim, e),
                        Some(_) => {}
                        None => found.push((sim, e)),
                    }
                }
                for ex in &self.examples {
                    let Some((c, sim)) = best_clause(ex, &clauses, &vecs) else {
                        continue;
                    };
                    let rows: Vec<usize> =
                        segs[c].tokens.iter().map(|t| segs[c].base + t).collect();
                    let span = segs[c].span;
                    aspects[seg.comment].push(Aspect {
                        target: ex.name.clone(),
                        polarity: self.label(tp.sentiment(&rows)),
                        confidence: sim,
                        start: span.start,
                        end: span.end,
                        text: clauses::slice(text, span),
                        vector: self.clause_vector(&segs[c], &batch.comments[seg.comment]),
                        theme: None,
                    });
                }
            }
        }
        for &i in &todo {
            let c = &batch.comments[i];
            let Some(st) = c.nlp.tokens.as_ref() else {
                continue;
            };
            let by_example = std::mem::take(&mut example_evidence[i]);
            let raised: Vec<Evidence> = self
                .learned_flags(&c.text, st)
                .into_iter()
                .chain(by_example.into_iter().map(|x| x.1))
                .filter(|e| {
                    !self
                        .exclusions
                        .as_ref()
                        .is_some_and(|m| m.excluded(&c.text, e))
                })
                .collect();
            let flags = batch.comments[i].nlp.flags.get_or_insert_with(Vec::new);
            for e in raised {
                if !flags.iter().any(|x| x.flag == e.flag) {
                    flags.push(e);
                }
            }
        }
        for (&i, score) in todo.iter().zip(scores) {
            let label = self.label(score);
            let score = score.score();
            let n = &mut batch.comments[i].nlp;
            n.tokens = None;
            let mut a = std::mem::take(&mut aspects[i]);
            a.sort_by_key(|x| (x.start, x.target.clone()));
            let complaint =
                label == Polarity::Negative || a.iter().any(|x| x.polarity == Polarity::Negative);
            if let (false, Some(flags)) = (complaint, n.flags.as_mut()) {
                flags.retain(|e| !self.complaint_flags.contains(&e.flag));
            }
            n.aspects = Some(a);
            n.sentiment = Some(Sentiment { label, score });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_sentences_and_clauses() {
        let text = "Great staff. Slow app, bad price.";
        // [CLS] great staff . slow app , bad price . [SEP]
        let offsets = vec![
            (0, 0),
            (0, 5),
            (6, 11),
            (11, 12),
            (13, 17),
            (18, 21),
            (21, 22),
            (23, 26),
            (27, 32),
            (32, 33),
            (0, 0),
        ];
        let st = TokenStates {
            vectors: vec![0.0; offsets.len() * 2],
            offsets,
            clauses: Vec::new(),
        };
        let mut segs = Vec::new();
        AnalyzeOperator::segments(text, &st, 0, (0, &[]), &mut segs);
        let got: Vec<(Vec<usize>, Option<usize>, String)> = segs
            .iter()
            .map(|s| (s.tokens.clone(), s.parent, clauses::slice(text, s.span)))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![0, 1, 2, 3, 10], None, "Great staff.".to_string()),
                (
                    vec![0, 4, 5, 6, 7, 8, 9, 10],
                    None,
                    "Slow app, bad price.".into()
                ),
                (vec![0, 4, 5, 6, 10], Some(1), "Slow app,".into()),
                (vec![0, 7, 8, 9, 10], Some(1), "bad price.".into()),
            ]
        );
    }
}
