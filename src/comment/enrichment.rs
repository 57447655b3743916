//! What the NLP stages add to a comment: language, flags with their
//! evidence, sentiment, aspects and the theme. The stages fill these types
//! in; the sink writes them; nothing here depends on a stage.

use std::sync::Arc;

/// Fields the NLP stages fill in. `None` means the stage did not run (or
/// does not apply to this comment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    /// L2-normalised sentence vector of the whole comment.
    pub embedding: Option<Vec<f32>>,
    /// Tokens the model read (special tokens included).
    pub token_count: Option<u32>,
    /// The text was longer than the model reads and was cut.
    pub truncated: Option<bool>,
    /// `model backend precision` that made the vector.
    pub embedding_model: Option<Arc<str>>,
    /// Detected language, ISO 639-1.
    pub language: Option<&'static str>,
    /// The detector's confidence in `language`, 0..1.
    pub language_confidence: Option<f32>,
    /// PII spans replaced in the text (`None`: redaction is off).
    pub pii_redacted: Option<u32>,
    /// Flags raised, each with its evidence (`None`: the flag stage did not run).
    pub flags: Option<Vec<Evidence>>,
    /// Token vectors kept by the embed stage for the analysis stage, which
    /// drops them (never written).
    pub tokens: Option<TokenStates>,
    /// The whole comment's sentiment (`None`: not analysed).
    pub sentiment: Option<Sentiment>,
    /// What each part of the comment is about (`None`: not analysed).
    pub aspects: Option<Vec<Aspect>>,
    /// Why the comment was not analysed (language the model cannot read).
    pub analysis_skipped: Option<&'static str>,
    /// `(theme id, theme label, cosine with the theme's centroid)`: the
    /// comment's own theme, or with themes per mention its primary theme
    /// (its strongest negative mention's, else its strongest mention's).
    pub theme: Option<(u32, Arc<str>, f32)>,
    /// Ids of the same customer's comments, read before this one, that make
    /// it a repeat (`None`: no history was checked: no customer id, or the
    /// history stage is off).
    pub repeat_of: Option<Vec<String>>,
}

/// The flags with their own boolean column, in column order.
pub const BUILT_IN_FLAGS: [&str; 5] = [
    "contact_requested",
    "repeat_issue",
    "score_solicited",
    "survey_fatigue",
    "safety_risk",
];

/// Why a flag was raised: the span of the comment (in characters) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Flag name.
    pub flag: String,
    /// First character of the span.
    pub start: u32,
    /// One past the last character.
    pub end: u32,
    /// The matched text.
    pub text: String,
}

/// The built-in aspect targets, in the order the heads output them.
pub const TARGETS: [&str; 7] = [
    "staff",
    "product",
    "process",
    "price",
    "delivery",
    "environment",
    "other",
];

/// Token vectors and their character spans, kept by the embed stage for
/// this stage and dropped once it has run (never written).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenStates {
    /// `len x dim` last-layer vectors, row-major.
    pub vectors: Vec<f32>,
    /// Each token's `[start, end)` in characters; special tokens `(0, 0)`.
    pub offsets: Vec<(u32, u32)>,
    /// Clauses of the sentences whose clauses a contrastive conjunction
    /// joins ("but", "но"…), each encoded as its own sequence, so the other
    /// clause's sentiment is not in its vectors. Empty unless the embed
    /// stage encodes clauses.
    pub clauses: Vec<ClauseStates>,
}

/// One clause's own token vectors (see [`TokenStates::clauses`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClauseStates {
    /// The clause's first character in the comment.
    pub start: u32,
    /// One past its last character.
    pub end: u32,
    /// `len x dim` last-layer vectors of the clause alone, row-major.
    pub vectors: Vec<f32>,
    /// Each token's `[start, end)` in the comment's characters; special
    /// tokens `(0, 0)`.
    pub offsets: Vec<(u32, u32)>,
}

/// Sentiment label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Polarity {
    /// Negative.
    Negative,
    /// Neither clearly negative nor positive.
    Neutral,
    /// Positive.
    Positive,
}

impl Polarity {
    /// The stable lowercase name written to Parquet.
    pub fn as_str(self) -> &'static str {
        match self {
            Polarity::Negative => "negative",
            Polarity::Neutral => "neutral",
            Polarity::Positive => "positive",
        }
    }

    /// Parses a stable name (`conflict` is not a polarity here).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "negative" => Some(Polarity::Negative),
            "neutral" => Some(Polarity::Neutral),
            "positive" => Some(Polarity::Positive),
            _ => None,
        }
    }
}

/// The whole comment's sentiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// The label: the likeliest class of a three-class head, or the score
    /// against the neutral band of a two-class one.
    pub label: Polarity,
    /// `p(positive) - p(negative)`, in `[-1, 1]`.
    pub score: f32,
}

/// One (sentence, target) the comment talks about.
#[derive(Debug, Clone, PartialEq)]
pub struct Aspect {
    /// What it is about: staff, product, process, price, delivery, environment, other.
    pub target: Arc<str>,
    /// How the customer feels about it.
    pub polarity: Polarity,
    /// The head's probability of this target with this polarity.
    pub confidence: f32,
    /// Character span of the clause it was read from.
    pub start: u32,
    /// End of that span (exclusive).
    pub end: u32,
    /// The clause's text.
    pub text: String,
    /// The clause's L2-normalised vector in the space of the comment's
    /// `embedding` (the whole comment's vector when the clause is the whole
    /// comment); themes read it. `None` when the analysis made none.
    pub vector: Option<Vec<f32>>,
    /// `(theme id, theme label, cosine with the theme's centroid)`: the
    /// theme of this mention among the themes of its target.
    pub theme: Option<(u32, Arc<str>, f32)>,
}

/// Why a comment was not analysed.
pub mod skipped {
    /// The detected language is not one the model reads.
    pub const LANGUAGE_NOT_SUPPORTED: &str = "language_not_supported";
    /// No language could be detected with confidence.
    pub const LANGUAGE_UNKNOWN: &str = "language_unknown";
}

/// The polarity of one target over a comment's aspects: the single
/// polarity when all agree, `mixed` when they disagree, `None` when the
/// target is not mentioned.
pub fn target_sentiment(aspects: &[Aspect], target: &str) -> Option<&'static str> {
    let mut seen: Option<Polarity> = None;
    for a in aspects.iter().filter(|a| &*a.target == target) {
        match seen {
            None => seen = Some(a.polarity),
            Some(p) if p != a.polarity => return Some("mixed"),
            _ => {}
        }
    }
    seen.map(Polarity::as_str)
}

/// Whether the comment has a negative mention of `target`.
pub fn blames(aspects: &[Aspect], target: &str) -> bool {
    aspects
        .iter()
        .any(|a| &*a.target == target && a.polarity == Polarity::Negative)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aspect(target: &str, polarity: Polarity) -> Aspect {
        Aspect {
            target: target.into(),
            polarity,
            confidence: 0.9,
            start: 0,
            end: 1,
            text: String::new(),
            vector: None,
            theme: None,
        }
    }

    #[test]
    fn per_target_summaries() {
        let a = vec![
            aspect("staff", Polarity::Positive),
            aspect("product", Polarity::Negative),
            aspect("product", Polarity::Negative),
        ];
        assert_eq!(target_sentiment(&a, "staff"), Some("positive"));
        assert_eq!(target_sentiment(&a, "product"), Some("negative"));
        assert_eq!(target_sentiment(&a, "price"), None);
        assert!(blames(&a, "product"));
        assert!(!blames(&a, "staff"));
        let m = vec![
            aspect("staff", Polarity::Positive),
            aspect("staff", Polarity::Negative),
        ];
        assert_eq!(target_sentiment(&m, "staff"), Some("mixed"));
    }
}
