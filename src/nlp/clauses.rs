//! Sentence and clause boundaries, in characters.
//!
//! Comment analysis reads a comment one sentence at a time (the heads were
//! trained on single sentences) and points each aspect at the clause that
//! drew the head's attention: "The engineer was lovely | but the app keeps
//! crashing". Clauses end at punctuation and before contrastive or
//! coordinating conjunctions, in English and Russian.

use std::sync::OnceLock;

use regex::Regex;

/// A `[start, end)` character span of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First character.
    pub start: u32,
    /// One past the last character.
    pub end: u32,
}

/// A sentence and the clauses it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The whole sentence.
    pub span: Span,
    /// Its clauses, in order, covering it.
    pub clauses: Vec<Span>,
}

fn sentence_end() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Sentence punctuation followed by space, or a line break.
    RE.get_or_init(|| Regex::new(r"[.!?…]+[)\x22'»]*\s+|\n+").unwrap_or_else(|_| unreachable!()))
}

fn clause_break() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)[,;:]\s+|\s+[-–—]+\s+|\s+(?:but|although|though|however|whereas|while|yet|except|and|so|а|но|однако|хотя|зато|только)\s",
        )
        .unwrap_or_else(|_| unreachable!())
    })
}

/// Whether `text` joins clauses with a contrastive conjunction ("but",
/// "although", "но", "а", "хотя"…), where one clause's sentiment must not
/// colour the other's.
pub fn contrastive(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)\b(?:but|although|though|however|whereas|yet|except|а|но|однако|хотя|зато|только)\b")
            .unwrap_or_else(|_| unreachable!())
    })
    .is_match(text)
}

/// Character index of every byte offset that starts a character.
fn char_index(text: &str, byte: usize) -> u32 {
    text[..byte].chars().count() as u32
}

/// Splits `text` into sentences and clauses. Empty pieces are dropped; a
/// text with no boundary is one sentence of one clause.
pub fn split(text: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut cuts: Vec<usize> = sentence_end().find_iter(text).map(|m| m.end()).collect();
    cuts.push(text.len());
    for end in cuts {
        if end <= start {
            continue;
        }
        let piece = &text[start..end];
        if piece.trim().is_empty() {
            start = end;
            continue;
        }
        let mut clauses = Vec::new();
        let mut c0 = 0usize;
        for m in clause_break().find_iter(piece) {
            // A conjunction starts the next clause; punctuation ends this one.
            let cut = if m
                .as_str()
                .trim_start()
                .starts_with(|c: char| c.is_alphabetic())
            {
                m.start() + (m.as_str().len() - m.as_str().trim_start().len())
            } else {
                m.end()
            };
            if cut > c0 && !piece[c0..cut].trim().is_empty() {
                clauses.push((c0, cut));
                c0 = cut;
            }
        }
        if !piece[c0..].trim().is_empty() {
            clauses.push((c0, piece.len()));
        } else if let Some(last) = clauses.last_mut() {
            last.1 = piece.len();
        }
        let to_span = |a: usize, b: usize| Span {
            start: char_index(text, start + a),
            end: char_index(text, start + b),
        };
        out.push(Sentence {
            span: to_span(0, piece.len()),
            clauses: clauses.into_iter().map(|(a, b)| to_span(a, b)).collect(),
        });
        start = end;
    }
    out
}

/// The characters `[start, end)` of `text`, trimmed.
pub fn slice(text: &str, span: Span) -> String {
    trimmed(text, span).0
}

/// The characters `[start, end)` of `text`, trimmed, and the character of
/// `text` where the trimmed text starts.
pub fn trimmed(text: &str, span: Span) -> (String, u32) {
    let raw: String = text
        .chars()
        .skip(span.start as usize)
        .take((span.end - span.start) as usize)
        .collect();
    let lead = raw.chars().take_while(|c| c.is_whitespace()).count() as u32;
    (raw.trim().to_string(), span.start + lead)
}

/// Whether `sentence` of `text` has clauses that a contrastive conjunction
/// joins, which the embed stage may encode apart.
pub fn splits_apart(text: &str, sentence: &Sentence) -> bool {
    sentence.clauses.len() > 1 && contrastive(&slice(text, sentence.span))
}

/// The pieces a comment is encoded as when its contrastive clauses are
/// read on their own instead of within the whole comment: every clause of
/// a sentence that [`splits_apart`], and each run of other sentences
/// between them, in order. `None` when no sentence splits apart (the
/// comment is encoded whole). The flag says whether a piece is such a
/// clause.
pub fn pieces(text: &str) -> Option<Vec<(Span, bool)>> {
    let mut out = Vec::new();
    let mut run: Option<Span> = None;
    let mut any = false;
    for s in split(text) {
        if splits_apart(text, &s) {
            any = true;
            out.extend(run.take().map(|r| (r, false)));
            out.extend(s.clauses.into_iter().map(|c| (c, true)));
        } else {
            run = Some(match run {
                Some(r) => Span {
                    start: r.start,
                    end: s.span.end,
                },
                None => s.span,
            });
        }
    }
    out.extend(run.map(|r| (r, false)));
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrastive_conjunctions_in_both_languages() {
        assert!(contrastive("The waiter was great but the food was cold"));
        assert!(contrastive("However, the room was small"));
        assert!(contrastive("Официант милый, но еда холодная"));
        assert!(contrastive("Кассир был груб, зато цены низкие"));
        assert!(!contrastive("The waiter was great and the food was hot"));
        // Whole words only: "butter", "анализ" hold no conjunction.
        assert!(!contrastive("Butter was fresh, the анализ done"));
    }

    fn clause_texts(text: &str) -> Vec<Vec<String>> {
        split(text)
            .iter()
            .map(|s| s.clauses.iter().map(|c| slice(text, *c)).collect())
            .collect()
    }

    #[test]
    fn splits_on_contrast() {
        assert_eq!(
            clause_texts("The engineer was lovely but the app keeps crashing"),
            vec![vec![
                "The engineer was lovely",
                "but the app keeps crashing"
            ]]
        );
    }

    #[test]
    fn sentences_and_punctuation() {
        let t = "Great staff, slow checkout. The price went up!\nWill not return";
        assert_eq!(
            clause_texts(t),
            vec![
                vec!["Great staff,", "slow checkout."],
                vec!["The price went up!"],
                vec!["Will not return"],
            ]
        );
    }

    #[test]
    fn russian_and_char_offsets() {
        let t = "Курьер вежливый, но посылка пришла мятой.";
        let s = split(t);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].clauses.len(), 2);
        assert_eq!(slice(t, s[0].clauses[1]), "но посылка пришла мятой.");
        assert_eq!(s[0].span.end as usize, t.chars().count());
    }

    #[test]
    fn pieces_cut_only_contrastive_sentences() {
        let t = "Great hotel. The staff were lovely, but the room was dirty. Will return!\nBye";
        let p = pieces(t).unwrap();
        let texts: Vec<(String, bool)> = p.iter().map(|&(s, c)| (slice(t, s), c)).collect();
        assert_eq!(
            texts,
            vec![
                ("Great hotel.".into(), false),
                ("The staff were lovely,".into(), true),
                ("but the room was dirty.".into(), true),
                ("Will return!\nBye".into(), false),
            ]
        );
        // In order and apart.
        assert!(p.windows(2).all(|w| w[0].0.end <= w[1].0.start));
        assert_eq!(pieces("Great staff, slow checkout. Fine."), None);
        assert_eq!(pieces(""), None);
        // Where the trimmed text starts.
        assert_eq!(
            trimmed("ab  cd ", Span { start: 2, end: 7 }),
            ("cd".into(), 4)
        );
    }

    #[test]
    fn no_boundary_and_blank() {
        assert_eq!(clause_texts("fine"), vec![vec!["fine"]]);
        assert!(split("   ").is_empty());
    }
}
