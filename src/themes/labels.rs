//! Readable theme labels: a phrase from the theme's own texts, keywords
//! beside it, in each language the theme's texts use.
//!
//! Representation steps, as BERTopic chains them:
//! 1. **Candidates** ([`candidates`]): 1-4 consecutive words of one stretch
//!    of text between punctuation marks, neither end a stop-word (English
//!    and Russian; a negation may open one: "no hot water", "не работает").
//!    A theme keeps bounded counts of the texts holding each
//!    ([`TermCounts`]).
//! 2. **Stems**: candidates are grouped by their words' Snowball stems
//!    (English, Russian), so "card arrived" and "cards arriving" count as
//!    one; the form shown is the one written most.
//! 3. **c-TF-IDF**: `coverage(p) * ln(1 + mean texts per theme / texts
//!    holding p in all themes)`, where coverage is the share of the theme's
//!    texts that hold `p`; a phrase only one text holds counts only when no
//!    phrase is shared.
//!    A phrase that the theme's texts nearest its centroid (its exemplars)
//!    hold counts up to twice: BERTopic's KeyBERT-inspired step ranks words
//!    by closeness to a topic's representative texts.
//! 4. **The label** is the best phrase that at least 30% of the theme's
//!    texts hold (the best phrase when none does), lengthened to a longer
//!    phrase around it that most of those texts hold too and that still
//!    meets the bar.
//! 5. **Keywords**: three runner-ups by maximal marginal relevance, score
//!    against word overlap with what is already chosen, so they add to the
//!    label instead of repeating it.
//!
//! Per language: a theme whose texts are partly English and partly Russian
//! gets a label in each (texts sorted by script: Cyrillic is `ru`, Latin
//! `en`), each scored on that language's texts only.

use std::collections::{BTreeMap, HashMap};

use rust_stemmers::{Algorithm, Stemmer};

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
    "ваш",
    "ваша",
    "ваше",
    "ваши",
    "вашего",
    "вашей",
    "наш",
    "наша",
    "наше",
    "наши",
    "every",
];

/// Stop-words that may open a phrase: the negation is the complaint.
const NEGATIONS: &[&str] = &["no", "not", "never", "не", "нет", "без"];

/// Share of a theme's texts its label should occur in (issue 15's bar).
pub const LABEL_COVERAGE: f64 = 0.3;

/// Longest candidate phrase, in words.
const MAX_PHRASE: usize = 4;

/// A word no phrase starts or ends with: a stop-word, a single letter,
/// or a number.
fn is_stop(w: &str) -> bool {
    STOP_WORDS.contains(&w) || w.chars().count() < 2 || w.chars().all(|c| c.is_ascii_digit())
}

/// The stretches of a text between punctuation marks, each as its
/// lower-cased words (letters, digits, inner apostrophes and hyphens; an
/// apostrophe is dropped: "don't" is "dont").
fn stretches(text: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Vec<String>>| {
        let w = word.trim_matches(|c| c == '-' || c == '\'');
        let w: String = w
            .chars()
            .filter(|&c| c != '\'')
            .collect::<String>()
            .to_lowercase();
        let w = w.replace('ё', "е");
        // One-letter words ("a", "и") stay, so phrases stay contiguous,
        // but never end a phrase ([`is_stop`]).
        if !w.is_empty() {
            if let Some(last) = out.last_mut() {
                last.push(w);
            }
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '’' || c == '-' {
            word.push(if c == '’' { '\'' } else { c });
        } else {
            flush(&mut word, &mut out);
            if !c.is_whitespace() && out.last().is_some_and(|s| !s.is_empty()) {
                out.push(Vec::new());
            }
        }
    }
    flush(&mut word, &mut out);
    out.retain(|s| !s.is_empty());
    out
}

/// Candidate phrases of a text, each once: 1-4 consecutive words of one
/// stretch between punctuation marks, whose first and last words are not
/// stop-words (a negation may open one).
pub fn candidates(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for s in stretches(text) {
        for i in 0..s.len() {
            if is_stop(&s[i]) && !NEGATIONS.contains(&s[i].as_str()) {
                continue;
            }
            for j in i..(i + MAX_PHRASE).min(s.len()) {
                if is_stop(&s[j]) {
                    continue;
                }
                let p = s[i..=j].join(" ");
                if seen.insert(p.clone()) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Whether a word is written in Cyrillic (then it is stemmed as Russian).
fn cyrillic(w: &str) -> bool {
    w.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c))
}

/// Stems kept per thread before the cache starts again (a few MB).
const STEM_CACHE: usize = 50_000;

thread_local! {
    /// Words stemmed lately: labels are recomputed often from the same words.
    static STEMS: std::cell::RefCell<FastMap<String, String>> = Default::default();
}

/// A word's Snowball stem (Russian for Cyrillic words, else English).
pub fn stem(word: &str) -> String {
    let mut s = String::new();
    stem_into(word, &mut s);
    s
}

/// Appends `word`'s stem to `out` ([`stem`] without a new string).
fn stem_into(word: &str, out: &mut String) {
    STEMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(s) = cache.get(word) {
            out.push_str(s);
            return;
        }
        let alg = if cyrillic(word) {
            Algorithm::Russian
        } else {
            Algorithm::English
        };
        let s = Stemmer::create(alg).stem(word).into_owned();
        if cache.len() >= STEM_CACHE {
            cache.clear();
        }
        out.push_str(&s);
        cache.insert(word.to_string(), s);
    })
}

/// A text's words as stems, stretch by stretch (what [`occurs`] matches).
pub fn stemmed(text: &str) -> Vec<Vec<String>> {
    stretches(text)
        .into_iter()
        .map(|s| s.iter().map(|w| stem(w)).collect())
        .collect()
}

/// Whether `phrase` occurs in a text, after stemming both: its stems in a
/// row within one stretch of the text (`text` as [`stemmed`] gives it).
pub fn occurs(phrase: &str, text: &[Vec<String>]) -> bool {
    let p: Vec<String> = phrase.split_whitespace().map(stem).collect();
    occurs_stems(&p.join(" "), text)
}

/// [`occurs`] for a phrase already stemmed (stems space-joined).
fn occurs_stems(key: &str, text: &[Vec<String>]) -> bool {
    let p: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
    occurs_words(&p, text)
}

/// [`occurs`] for a phrase's stems.
fn occurs_words(p: &[&str], text: &[Vec<String>]) -> bool {
    !p.is_empty()
        && text.iter().any(|s| {
            s.windows(p.len())
                .any(|w| w.iter().zip(p).all(|(a, b)| a == b))
        })
}

/// The language a text is labelled in: `ru` when most of its letters are
/// Cyrillic, else `en`.
pub fn script_language(text: &str) -> &'static str {
    let (mut cyr, mut other) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        if cyrillic(c.encode_utf8(&mut [0; 4])) {
            cyr += 1;
        } else {
            other += 1;
        }
    }
    if cyr > other {
        "ru"
    } else {
        "en"
    }
}

/// Counts of one theme's candidate phrases, bounded: past `cap` phrases the
/// rarest half is dropped (a label comes from phrases many of the theme's
/// texts hold, so memory stays flat however long the stream).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TermCounts {
    /// Texts holding each candidate phrase.
    pub counts: HashMap<String, u32>,
    /// Texts counted, per language ([`script_language`]). (A state saved
    /// before phrase labels also holds `words`, which is ignored.)
    #[serde(default)]
    pub docs: BTreeMap<String, u64>,
}

impl TermCounts {
    /// Most phrases kept per theme.
    pub const CAP: usize = 400;

    /// Counts a text's candidate phrases.
    pub fn add(&mut self, text: &str) {
        *self
            .docs
            .entry(script_language(text).to_string())
            .or_default() += 1;
        for t in candidates(text) {
            *self.counts.entry(t).or_default() += 1;
        }
        self.prune();
    }

    /// Adds another theme's counts (a merge).
    pub fn absorb(&mut self, other: TermCounts) {
        for (term, c) in other.counts {
            *self.counts.entry(term).or_default() += c;
        }
        for (l, n) in other.docs {
            *self.docs.entry(l).or_default() += n;
        }
        self.prune();
    }

    /// Past [`Self::CAP`] phrases, keeps those counted more often than the
    /// median, in a new table: removing in place leaves tombstones that
    /// made the table double its buckets within a few prunes (measured in
    /// `benches/themes.rs`: 880 slots a theme where 448 hold the cap).
    fn prune(&mut self) {
        if self.counts.len() <= Self::CAP {
            return;
        }
        let mut v: Vec<u32> = self.counts.values().copied().collect();
        v.sort_unstable();
        let floor = v[v.len() / 2];
        let mut kept = HashMap::with_capacity(Self::CAP);
        kept.extend(self.counts.drain().filter(|(_, c)| *c > floor));
        self.counts = kept;
    }

    /// Texts counted (in every language).
    pub fn texts(&self) -> u64 {
        self.docs.values().sum()
    }
}

/// A theme's label: a phrase from its texts, and keywords beside it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// The phrase shown (in the theme's main language).
    pub phrase: String,
    /// Up to three runner-ups that add to the phrase.
    pub keywords: Vec<String>,
    /// The phrase in each language the theme's texts use, when more than
    /// one does (`en`, `ru`).
    pub by_language: BTreeMap<String, String>,
}

/// A hash map with foldhash's fast hasher (randomly seeded per process):
/// labelling hashes every phrase of every theme each batch, and SipHash
/// was a tenth of that time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A text's stems, stretch by stretch ([`stemmed`]).
type StemmedText = Vec<Vec<String>>;

/// A candidate with its coverage and score.
type Scored<'a> = (&'a Candidate<'a>, f64, f64);

/// One stemmed candidate of a theme.
#[derive(Debug, Clone)]
struct Candidate<'a> {
    /// Stems, space-joined: the key candidates are grouped by.
    key: String,
    /// The form written most.
    shown: &'a str,
    /// Texts holding it.
    df: u64,
    /// Its language ([`script_language`] of the key).
    language: &'static str,
    /// Bit `i` set: the theme's `i`-th central text holds it.
    central: u64,
    /// Where each stem of `key` ends (byte offsets; stems are
    /// space-separated), so scoring never splits keys again.
    ends: Vec<u16>,
}

impl Candidate<'_> {
    /// Its stems, in order.
    fn words(&self) -> impl Iterator<Item = &str> + Clone {
        let mut start = 0usize;
        self.ends.iter().map(move |&e| {
            let w = &self.key[start..e as usize];
            start = e as usize + 1;
            w
        })
    }
}

/// What a theme's label is made from that depends on its own texts only:
/// its candidates grouped by stems, which of its central texts hold each,
/// and its texts per language (the label itself also weighs every other
/// theme's candidates: [`label_prepared`]).
#[derive(Debug, Clone, Default)]
struct Prepared<'a> {
    cands: Vec<Candidate<'a>>,
    /// The language of each central text (at most 64 count).
    central: Vec<&'static str>,
    /// Texts counted, per language.
    docs: BTreeMap<String, u64>,
}

/// Prepares a theme's label from its phrase counts and its texts nearest
/// the centroid (`central`, at most 64 are read).
fn prepare<'a>(t: &'a TermCounts, central: &[&str]) -> Prepared<'a> {
    let central: Vec<(&'static str, StemmedText)> = central
        .iter()
        .take(64)
        .map(|t| (script_language(t), stemmed(t)))
        .collect();
    let mut by: FastMap<String, (u64, &str, u32)> = FastMap::default();
    for (term, &c) in &t.counts {
        let mut key = String::with_capacity(term.len());
        for (i, w) in term.split(' ').enumerate() {
            if i > 0 {
                key.push(' ');
            }
            stem_into(w, &mut key);
        }
        let e = by.entry(key).or_insert((0, term, 0));
        e.0 += u64::from(c);
        if c > e.2 || (c == e.2 && term.as_str() < e.1) {
            e.1 = term;
            e.2 = c;
        }
    }
    let cands = by
        .into_iter()
        .map(|(key, (df, shown, _))| {
            let words: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
            let central = central
                .iter()
                .enumerate()
                .filter(|(_, (_, text))| occurs_words(&words, text))
                .fold(0u64, |m, (i, _)| m | 1 << i);
            let mut ends: Vec<u16> = key
                .match_indices(' ')
                .map(|(i, _)| i.min(u16::MAX as usize) as u16)
                .collect();
            ends.push(key.len().min(u16::MAX as usize) as u16);
            Candidate {
                language: script_language(&key),
                shown,
                key,
                df,
                central,
                ends,
            }
        })
        .collect();
    Prepared {
        cands,
        central: central.into_iter().map(|(l, _)| l).collect(),
        docs: t.docs.clone(),
    }
}

/// Whether `inner`'s stems occur in a row inside `outer`'s.
fn inside(inner: &Candidate<'_>, outer: &Candidate<'_>) -> bool {
    let (n, m) = (inner.ends.len(), outer.ends.len());
    m >= n && (0..=m - n).any(|k| outer.words().skip(k).take(n).eq(inner.words()))
}

/// Word overlap of two stemmed phrases (Jaccard).
fn overlap(a: &Candidate<'_>, b: &Candidate<'_>) -> f64 {
    let common = a.words().filter(|w| b.words().any(|x| x == *w)).count() as f64;
    common / ((a.ends.len() + b.ends.len()) as f64 - common).max(1.0)
}

/// The label of one language's texts of a theme (`docs` of them), from its
/// stemmed candidates of that language and how many texts hold each stem
/// key across every theme.
fn label_one(
    cands: &[&Candidate<'_>],
    docs: u64,
    all: &FastMap<&str, u64>,
    mean_docs: f64,
    central: u64,
    keywords: usize,
) -> (String, Vec<String>) {
    let docs = docs.max(1) as f64;
    // A phrase one text holds says little about the theme: only when no
    // phrase is shared does one stand.
    let shared = cands.iter().any(|c| c.df >= 2);
    let mut scored: Vec<Scored<'_>> = cands
        .iter()
        .filter(|c| c.df >= 2 || !shared)
        .map(|c| {
            let cov = (c.df as f64 / docs).min(1.0);
            let idf = (1.0
                + mean_docs / all.get(c.key.as_str()).copied().unwrap_or(1).max(1) as f64)
                .ln();
            // The texts nearest the centroid vouch for a phrase.
            let near = if central == 0 {
                0.0
            } else {
                (c.central & central).count_ones() as f64 / central.count_ones() as f64
            };
            (*c, cov, cov * idf * (1.0 + near))
        })
        .collect();
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.key.cmp(&b.0.key)));
    let Some(best) = scored
        .iter()
        .find(|s| s.1 >= LABEL_COVERAGE)
        .or(scored.first())
    else {
        return (String::new(), Vec::new());
    };
    // A longer phrase around it that most of its texts hold reads better
    // ("card not arrived" over "arrived"), if it still meets the bar; a
    // phrase only one text holds is not lengthened into that text's
    // accident ("someone could be badly").
    let floor = (0.6 * best.0.df as f64).max(if best.1 >= LABEL_COVERAGE {
        LABEL_COVERAGE * docs
    } else {
        0.0
    });
    let label = scored
        .iter()
        .filter(|s| best.0.df >= 2 && inside(best.0, s.0) && s.0.df as f64 >= floor)
        .max_by(|a, b| {
            a.0.ends
                .len()
                .cmp(&b.0.ends.len())
                .then(a.0.df.cmp(&b.0.df))
                .then(b.0.key.cmp(&a.0.key))
        })
        .unwrap_or(best);
    let mut chosen: Vec<&Candidate<'_>> = vec![label.0];
    let mut kws: Vec<String> = Vec::new();
    let top = scored.first().map_or(1.0, |s| s.2).max(1e-9);
    while kws.len() < keywords {
        // Maximal marginal relevance: 0.7 * score / top - 0.3 * the most
        // word overlap with a phrase chosen so far. `scored` runs from the
        // highest score down and the overlap only subtracts, so once a
        // phrase's score alone cannot reach the best value found, none
        // after it can (ties are still weighed, by key).
        let mut next: Option<(&Scored<'_>, f64)> = None;
        for s in &scored {
            let bound = 0.7 * s.2 / top;
            if next.is_some_and(|(_, v)| bound < v) {
                break;
            }
            // Nothing whose every word is already shown.
            if s.0
                .words()
                .all(|w| chosen.iter().any(|c| c.words().any(|x| x == w)))
            {
                continue;
            }
            let sim = chosen.iter().map(|c| overlap(c, s.0)).fold(0.0, f64::max);
            let v = bound - 0.3 * sim;
            let better = match next {
                None => true,
                Some((b, bv)) => v.total_cmp(&bv).then(b.0.key.cmp(&s.0.key)).is_gt(),
            };
            if better {
                next = Some((s, v));
            }
        }
        let Some((s, _)) = next else { break };
        chosen.push(s.0);
        kws.push(s.0.shown.to_string());
    }
    (label.0.shown.to_string(), kws)
}

/// Labels for every theme, with up to `keywords` keywords each.
/// `central[i]` are theme i's texts nearest its centroid (its exemplars, or
/// none): a phrase they hold ranks higher, as BERTopic's KeyBERT-inspired
/// step ranks words by their closeness to a topic's representative texts.
pub fn labels(themes: &[&TermCounts], central: &[Vec<&str>], keywords: usize) -> Vec<Label> {
    let prepared: Vec<Prepared<'_>> = themes
        .iter()
        .enumerate()
        .map(|(i, t)| prepare(t, central.get(i).map_or(&[][..], Vec::as_slice)))
        .collect();
    label_prepared(&prepared.iter().collect::<Vec<_>>(), keywords)
}

/// [`labels`] from themes already [`prepare`]d.
fn label_prepared(themes: &[&Prepared<'_>], keywords: usize) -> Vec<Label> {
    let mut all: FastMap<&str, u64> = FastMap::default();
    for c in themes.iter().flat_map(|t| &t.cands) {
        *all.entry(c.key.as_str()).or_default() += c.df;
    }
    let n = themes.len().max(1) as f64;
    let mean_docs = themes
        .iter()
        .map(|t| t.docs.values().sum::<u64>() as f64)
        .sum::<f64>()
        / n;
    themes
        .iter()
        .map(|t| {
            // The central texts in `lang` (all of them for `None`), as bits.
            let near = |lang: Option<&str>| -> u64 {
                t.central
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| lang.is_none_or(|x| x == **l))
                    .fold(0u64, |m, (i, _)| m | 1 << i)
            };
            let total: u64 = t.docs.values().sum();
            // The languages with a real share of the theme's texts.
            let langs: Vec<(&String, u64)> = t
                .docs
                .iter()
                .filter(|(_, &d)| d >= 2 && d as f64 >= 0.2 * total as f64)
                .map(|(l, &d)| (l, d))
                .collect();
            if langs.len() < 2 {
                let all_c: Vec<&Candidate<'_>> = t.cands.iter().collect();
                let (phrase, keywords) =
                    label_one(&all_c, total, &all, mean_docs, near(None), keywords);
                return Label {
                    phrase,
                    keywords,
                    by_language: BTreeMap::new(),
                };
            }
            let mut by_language = BTreeMap::new();
            let mut main: Option<(u64, String, Vec<String>)> = None;
            for (lang, docs) in langs {
                let mine: Vec<&Candidate<'_>> = t
                    .cands
                    .iter()
                    .filter(|c| c.language == lang.as_str())
                    .collect();
                let (phrase, kws) =
                    label_one(&mine, docs, &all, mean_docs, near(Some(lang)), keywords);
                by_language.insert(lang.clone(), phrase.clone());
                if main.as_ref().is_none_or(|m| docs > m.0) {
                    main = Some((docs, phrase, kws));
                }
            }
            let (_, phrase, keywords) = main.unwrap_or_default();
            Label {
                phrase,
                keywords,
                by_language,
            }
        })
        .collect()
}

/// Labels of a clustering given as `(cluster, text)` pairs (for tests and
/// `eval-themes`).
pub fn labels_of(pairs: &[(usize, &str)], keywords: usize) -> BTreeMap<usize, Label> {
    let mut by: BTreeMap<usize, TermCounts> = BTreeMap::new();
    for (c, t) in pairs {
        by.entry(*c).or_default().add(t);
    }
    let keys: Vec<usize> = by.keys().copied().collect();
    let refs: Vec<&TermCounts> = by.values().collect();
    keys.into_iter().zip(labels(&refs, &[], keywords)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_phrases_and_drop_stop_word_ends() {
        let t = candidates("My card has NOT arrived, still waiting for the card!");
        for want in [
            "card",
            "arrived",
            "not arrived",
            "waiting",
            "waiting for the card",
        ] {
            assert!(t.contains(&want.to_string()), "{want}: {t:?}");
        }
        // Neither end a stop-word, and nothing across the comma.
        assert!(
            !t.iter()
                .any(|p| p == "the card" || p == "my card" || p.contains("arrived still")),
            "{t:?}"
        );
        let ru = candidates("Курьер опять не привёз посылку");
        assert!(ru.contains(&"курьер".to_string()), "{ru:?}");
        assert!(ru.contains(&"не привез посылку".to_string()), "{ru:?}");
    }

    #[test]
    fn stems_match_across_word_forms_in_both_languages() {
        assert!(occurs(
            "cards arriving",
            &stemmed("When will my card arrive?")
        ));
        assert!(!occurs("card arrived", &stemmed("the card, arrived")));
        assert!(occurs(
            "не работает приложение",
            &stemmed("Опять не работало приложение!")
        ));
        assert_eq!(script_language("Курьер опять опоздал"), "ru");
        assert_eq!(script_language("The courier (курьер) was late again"), "en");
    }

    #[test]
    fn labels_are_phrases_most_texts_hold_and_set_the_theme_apart() {
        let pairs = vec![
            (0, "my card has not arrived"),
            (0, "card still not arrived after two weeks"),
            (0, "when will my card arrive, it has not arrived"),
            (0, "new card not arrived yet"),
            (1, "the card payment was declined at the shop"),
            (1, "card payment declined again"),
            (1, "why was my card payment declined"),
            (1, "payment declined, card blocked?"),
        ];
        let l = labels_of(&pairs, 3);
        assert!(l[&0].phrase.contains("not arrived"), "{l:?}");
        assert!(l[&1].phrase.contains("payment declined"), "{l:?}");
        for (c, label) in &l {
            let texts: Vec<&str> = pairs.iter().filter(|p| p.0 == *c).map(|p| p.1).collect();
            let held = texts
                .iter()
                .filter(|t| occurs(&label.phrase, &stemmed(t)))
                .count();
            assert!(
                held as f64 >= LABEL_COVERAGE * texts.len() as f64,
                "{label:?}"
            );
            // Keywords add words the phrase does not show.
            assert!(!label.keywords.is_empty(), "{label:?}");
            for k in &label.keywords {
                assert!(k.split(' ').any(|w| !label.phrase.contains(w)), "{label:?}");
            }
        }
    }

    #[test]
    fn a_phrase_no_two_texts_share_is_not_lengthened() {
        let pairs = vec![
            (0, "Found a piece of glass in my salad."),
            (0, "The manager just shrugged."),
            (0, "Someone could be badly hurt."),
            (1, "the app crashes on start"),
            (1, "app crashes again"),
            (1, "the app keeps crashing"),
        ];
        let l = labels_of(&pairs, 3);
        // Nothing is shared in theme 0: its label is one text's short
        // phrase, not a four-word run cut mid-thought.
        assert!(l[&0].phrase.split(' ').count() <= 2, "{l:?}");
        assert!(l[&1].phrase.contains("app"), "{l:?}");
    }

    #[test]
    fn a_theme_in_two_languages_is_labelled_in_each() {
        let mut pairs = Vec::new();
        for _ in 0..2 {
            pairs.extend([
                (0, "the wifi keeps dropping in the room"),
                (0, "wifi keeps dropping every evening"),
                (0, "Wi-Fi in the room was slow"),
                (0, "Wi-Fi постоянно отключается в номере"),
                (0, "в номере не работает Wi-Fi"),
                (0, "Wi-Fi в номере отключается"),
                (1, "breakfast was cold"),
                (1, "cold eggs at breakfast"),
                (1, "the breakfast buffet was cold"),
            ]);
        }
        let l = labels_of(&pairs, 3);
        let by = &l[&0].by_language;
        assert_eq!(by.keys().collect::<Vec<_>>(), ["en", "ru"], "{l:?}");
        assert_eq!(script_language(&by["ru"]), "ru", "{l:?}");
        assert_eq!(script_language(&by["en"]), "en", "{l:?}");
        assert!(l[&1].by_language.is_empty(), "{l:?}");
        assert!(
            l[&1].phrase.contains("breakfast") || l[&1].phrase.contains("cold"),
            "{l:?}"
        );
    }

    #[test]
    fn counts_saved_before_phrase_labels_still_load() {
        let old: TermCounts =
            serde_json::from_str(r#"{"counts": {"card": 3, "card arrived": 2}, "words": 9}"#)
                .unwrap();
        assert_eq!(old.counts["card"], 3);
        assert_eq!(old.texts(), 0);
    }

    #[test]
    fn counts_stay_bounded() {
        let mut c = TermCounts::default();
        for i in 0..5000 {
            c.add(&format!("word{i} common"));
        }
        assert!(c.counts.len() <= TermCounts::CAP + 1);
        assert!(c.counts.contains_key("common"));
        assert_eq!(c.texts(), 5000);
    }

    #[test]
    fn pruning_does_not_grow_the_table() {
        // Eight words drawn from twelve: most 3- and 4-word phrases are
        // seen once, so every few texts half the table is pruned.
        let mut c = TermCounts::default();
        let mut x = 7u64;
        for _ in 0..2000 {
            let words: Vec<String> = (0..8)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (x >> 33) % 12)
                })
                .collect();
            c.add(&words.join(" "));
            assert!(
                c.counts.capacity() < 2 * TermCounts::CAP,
                "{}",
                c.counts.capacity()
            );
        }
    }

    #[test]
    fn a_merge_stays_bounded() {
        let (mut a, mut b) = (TermCounts::default(), TermCounts::default());
        for i in 0..TermCounts::CAP {
            a.add(&format!("alpha{i} shared"));
            b.add(&format!("beta{i} shared"));
        }
        a.absorb(b);
        assert!(a.counts.len() <= TermCounts::CAP, "{}", a.counts.len());
        assert_eq!(a.counts["shared"], 2 * TermCounts::CAP as u32);
    }
}
