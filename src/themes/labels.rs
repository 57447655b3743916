//! Readable theme labels: class-based TF-IDF over each theme's words and
//! bigrams, English and Russian stop-words removed.
//!
//! A theme keeps bounded term counts ([`TermCounts`]); a label is the theme's
//! top terms by `tf(t, theme) / words(theme) * ln(1 + mean_words / tf(t, all))`
//! (BERTopic's c-TF-IDF), so words every theme uses ("card", "app" in a
//! banking stream) rank below the words that set a theme apart.

use std::collections::{BTreeMap, HashMap};

/// English and Russian function words, never part of a label.
const STOP_WORDS: &[&str] = &[
    // English
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "even",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "also",
    "still",
    "been",
    "one",
    "two",
    "please",
    "thanks",
    "thank",
    "yet",
    "ago",
    "back",
    "much",
    "many",
    "really",
    "need",
    "want",
    "cant",
    "didnt",
    "doesnt",
    "dont",
    "isnt",
    "wasnt",
    "wont",
    "ive",
    "id",
    "youre",
    // Russian
    "и",
    "в",
    "во",
    "не",
    "что",
    "он",
    "на",
    "я",
    "с",
    "со",
    "как",
    "а",
    "то",
    "все",
    "она",
    "так",
    "его",
    "но",
    "да",
    "ты",
    "к",
    "у",
    "же",
    "вы",
    "за",
    "бы",
    "по",
    "только",
    "ее",
    "мне",
    "было",
    "вот",
    "от",
    "меня",
    "еще",
    "нет",
    "о",
    "из",
    "ему",
    "теперь",
    "когда",
    "даже",
    "ну",
    "вдруг",
    "ли",
    "если",
    "уже",
    "или",
    "ни",
    "быть",
    "был",
    "него",
    "до",
    "вас",
    "нибудь",
    "опять",
    "уж",
    "вам",
    "ведь",
    "там",
    "потом",
    "себя",
    "ничего",
    "ей",
    "может",
    "они",
    "тут",
    "где",
    "есть",
    "надо",
    "ней",
    "для",
    "мы",
    "тебя",
    "их",
    "чем",
    "была",
    "сам",
    "чтоб",
    "без",
    "будто",
    "чего",
    "раз",
    "тоже",
    "себе",
    "под",
    "будет",
    "ж",
    "тогда",
    "кто",
    "этот",
    "того",
    "потому",
    "этого",
    "какой",
    "совсем",
    "ним",
    "здесь",
    "этом",
    "один",
    "почти",
    "мой",
    "тем",
    "чтобы",
    "нее",
    "сейчас",
    "были",
    "куда",
    "зачем",
    "всех",
    "никогда",
    "можно",
    "при",
    "наконец",
    "два",
    "об",
    "другой",
    "хоть",
    "после",
    "над",
    "больше",
    "тот",
    "через",
    "эти",
    "нас",
    "про",
    "всего",
    "них",
    "какая",
    "много",
    "разве",
    "три",
    "эту",
    "моя",
    "впрочем",
    "хорошо",
    "свою",
    "этой",
    "перед",
    "иногда",
    "лучше",
    "чуть",
    "том",
    "нельзя",
    "такой",
    "им",
    "более",
    "всегда",
    "конечно",
    "всю",
    "между",
    "это",
    "уже",
    "очень",
];

/// Lower-cased words of a text (letters and digits, at least 2 characters),
/// stop-words removed, plus the bigrams of adjacent kept words.
pub fn terms(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase().replace('\'', ""))
        .filter(|w| w.chars().count() >= 2 && !w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let kept: Vec<Option<&String>> = words
        .iter()
        .map(|w| (!STOP_WORDS.contains(&w.as_str())).then_some(w))
        .collect();
    let mut out: Vec<String> = kept.iter().flatten().map(|w| (*w).clone()).collect();
    for pair in kept.windows(2) {
        if let (Some(a), Some(b)) = (pair[0], pair[1]) {
            out.push(format!("{a} {b}"));
        }
    }
    out
}

/// Term counts of one theme, bounded: past `cap` terms the rarest half is
/// dropped (a theme's label comes from its frequent terms, so memory stays
/// flat however long the stream).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TermCounts {
    /// Count per term.
    pub counts: HashMap<String, u32>,
    /// Words seen (unigrams), for the tf denominator.
    pub words: u64,
}

impl TermCounts {
    /// Most terms kept per theme.
    pub const CAP: usize = 400;

    /// Counts a text's terms.
    pub fn add(&mut self, text: &str) {
        for t in terms(text) {
            if !t.contains(' ') {
                self.words += 1;
            }
            *self.counts.entry(t).or_default() += 1;
        }
        if self.counts.len() > Self::CAP {
            let mut v: Vec<u32> = self.counts.values().copied().collect();
            v.sort_unstable();
            let floor = v[v.len() / 2];
            self.counts.retain(|_, c| *c > floor);
        }
    }
}

/// Labels for every theme: its `top` terms by c-TF-IDF, comma-joined.
/// A bigram whose words are both already in the label is skipped, and so is
/// a word already inside a chosen bigram.
pub fn labels(themes: &[&TermCounts], top: usize) -> Vec<String> {
    let mut total: HashMap<&str, u64> = HashMap::new();
    for t in themes {
        for (term, c) in &t.counts {
            *total.entry(term.as_str()).or_default() += u64::from(*c);
        }
    }
    let n = themes.len().max(1) as f64;
    let mean_words = themes.iter().map(|t| t.words as f64).sum::<f64>() / n;
    themes
        .iter()
        .map(|t| {
            let words = (t.words as f64).max(1.0);
            let mut scored: Vec<(&str, f64)> = t
                .counts
                .iter()
                .filter(|(_, c)| **c >= 2 || t.words < 20)
                .map(|(term, c)| {
                    let tf = f64::from(*c) / words;
                    let idf = (1.0 + mean_words / total[term.as_str()] as f64).ln();
                    // Bigrams read better when they are as frequent.
                    let bonus = if term.contains(' ') { 1.2 } else { 1.0 };
                    (term.as_str(), tf * idf * bonus)
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            let mut chosen: Vec<&str> = Vec::new();
            for (term, _) in scored {
                if chosen.len() >= top {
                    break;
                }
                let covered = chosen.iter().any(|c| {
                    c.split(' ').any(|w| w == term) || term.split(' ').all(|w| c.contains(w))
                });
                if !covered {
                    chosen.push(term);
                }
            }
            chosen.join(", ")
        })
        .collect()
}

/// Labels of a clustering given as `(cluster, text)` pairs (for tests and
/// `eval-themes`).
pub fn labels_of(pairs: &[(usize, &str)], top: usize) -> BTreeMap<usize, String> {
    let mut by: BTreeMap<usize, TermCounts> = BTreeMap::new();
    for (c, t) in pairs {
        by.entry(*c).or_default().add(t);
    }
    let keys: Vec<usize> = by.keys().copied().collect();
    let refs: Vec<&TermCounts> = by.values().collect();
    keys.into_iter().zip(labels(&refs, top)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_stop_words_and_keep_bigrams() {
        let t = terms("My card has NOT arrived, still waiting for the card!");
        assert!(t.contains(&"card".to_string()));
        assert!(t.contains(&"arrived".to_string()));
        assert!(!t.contains(&"the".to_string()) && !t.contains(&"my".to_string()));
        assert!(t.contains(&"card arrived".to_string()) || t.contains(&"arrived".to_string()));
        let ru = terms("Курьер опять не привёз посылку");
        assert!(ru.contains(&"курьер".to_string()) && !ru.contains(&"не".to_string()));
    }

    #[test]
    fn labels_pick_what_sets_a_theme_apart() {
        let pairs = vec![
            (0, "my card has not arrived"),
            (0, "card still not arrived after two weeks"),
            (0, "when will my card arrive, card not arrived"),
            (1, "the card payment was declined at the shop"),
            (1, "card payment declined again"),
            (1, "why was my card payment declined"),
        ];
        let l = labels_of(&pairs, 2);
        assert!(l[&0].contains("arrived"), "{l:?}");
        assert!(l[&1].contains("declined"), "{l:?}");
        assert!(!l[&0].starts_with("card,"), "{l:?}");
    }

    #[test]
    fn counts_stay_bounded() {
        let mut c = TermCounts::default();
        for i in 0..5000 {
            c.add(&format!("word{i} common"));
        }
        assert!(c.counts.len() <= TermCounts::CAP + 1);
        assert!(c.counts.contains_key("common"));
    }
}
