//! `verbatim eval`: scores the understanding stages against a labelled JSONL
//! file in the project's format (`../shared/data/README.md`).
//!
//! It scores the follow-up flags (rows that carry `flags`): precision,
//! recall, F1 and support per flag, with the same redaction the pipeline
//! applies first; and, given the pipeline's `[nlp]`, runs the same stages as
//! the stream job (language, flags, embedding, analysis) and scores aspect
//! targets, complaints (negative mentions), polarity and sentiment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{load, PrecisionArg};
use crate::comment::BUILT_IN_FLAGS;
use crate::config::{FlagPatterns, NlpConfig, Precision};
use crate::nlp::flags::FlagMatcher;
use crate::nlp::redact::Redactor;

/// Errors of `verbatim eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The input could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a labelled row.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A pattern did not compile.
    #[error("{0}")]
    Pattern(String),
    /// The model or heads could not be loaded.
    #[error(transparent)]
    Nlp(#[from] crate::nlp::NlpError),
    /// An NLP stage failed.
    #[error(transparent)]
    Operator(#[from] crate::nlp::OperatorError),
}

/// Precision, recall, F1 and support of one label.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Prf {
    /// TP / (TP + FP); 0 when nothing was predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 when there are no positives.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Gold positives.
    pub support: usize,
}

impl Prf {
    /// From counts.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Self {
        let p = if tp + fp == 0 {
            0.0
        } else {
            tp as f64 / (tp + fp) as f64
        };
        let r = if tp + fn_ == 0 {
            0.0
        } else {
            tp as f64 / (tp + fn_) as f64
        };
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        Self {
            precision: p,
            recall: r,
            f1,
            support: tp + fn_,
        }
    }

    /// The most one more gold row read wrongly could lower this F1 (a hit
    /// turned into a miss, or one more false alarm), from the counts
    /// behind it: the resolution of the score. 0 when nothing was found.
    pub fn one_row(&self) -> f64 {
        let tp = (self.recall * self.support as f64).round() as usize;
        if tp == 0 || self.precision <= 0.0 {
            return 0.0;
        }
        let fp = ((tp as f64 / self.precision).round() as usize).saturating_sub(tp);
        let fn_ = self.support - tp.min(self.support);
        let lost_hit = Self::from_counts(tp - 1, fp, fn_ + 1).f1;
        let false_alarm = Self::from_counts(tp, fp + 1, fn_).f1;
        (self.f1 - lost_hit.min(false_alarm)).max(0.0)
    }
}

/// One error of the flag stage, for reading what it gets wrong.
#[derive(Debug, Clone, Serialize)]
pub struct FlagMiss {
    /// Row id.
    pub id: String,
    /// Flag.
    pub flag: String,
    /// `false_positive` or `false_negative`.
    pub kind: &'static str,
    /// The text.
    pub text: String,
}

/// One predicted aspect, as `verbatim eval --predictions` writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PredictedAspect {
    /// Target.
    pub target: String,
    /// Polarity.
    pub polarity: String,
    /// The head's probability of this target with this polarity.
    pub confidence: f32,
    /// The clause it was read from.
    pub text: String,
}

/// One row's predictions beside its gold labels: a line of
/// `verbatim eval --predictions FILE`, for reading what the model gets wrong.
#[derive(Debug, Clone, Serialize)]
pub struct RowPrediction {
    /// Row id.
    pub id: String,
    /// The text as the stages saw it (PII redacted).
    pub text: String,
    /// Gold `(target, polarity)` pairs, when the row has `aspects`.
    pub gold_aspects: Option<Vec<(String, String)>>,
    /// Gold flags, when the row has them.
    pub gold_flags: Option<serde_json::Map<String, serde_json::Value>>,
    /// Detected language.
    pub language: Option<String>,
    /// Why aspects and sentiment are null, when they are.
    pub analysis_skipped: Option<String>,
    /// Sentiment label and score.
    pub sentiment: Option<(String, f32)>,
    /// Predicted aspects (null when not analysed).
    pub aspects: Option<Vec<PredictedAspect>>,
    /// Raised flags.
    pub flags: Vec<String>,
    /// Where gold and prediction part, one line per target or flag, e.g.
    /// `product: gold negative, predicted neutral` or
    /// `repeat_issue: gold true, predicted false`.
    pub disagreements: Vec<String>,
}

/// The polarities each target has in a list of `(target, polarity)`.
fn by_target<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<&'a str, std::collections::BTreeSet<&'a str>> {
    let mut m: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for (t, p) in pairs {
        m.entry(t).or_default().insert(p);
    }
    m
}

impl RowPrediction {
    /// Fills `disagreements` from the gold and predicted fields
    /// (`staff_or_process` agrees with staff or process).
    fn compare(&mut self) {
        let mut out = Vec::new();
        if let (Some(gold), Some(pred)) = (&self.gold_aspects, &self.aspects) {
            let g = by_target(gold.iter().map(|(t, p)| (t.as_str(), p.as_str())));
            let p = by_target(
                pred.iter()
                    .map(|a| (a.target.as_str(), a.polarity.as_str())),
            );
            let join = |s: Option<&std::collections::BTreeSet<&str>>| {
                s.map_or("absent".to_string(), |s| {
                    s.iter().copied().collect::<Vec<_>>().join("+")
                })
            };
            let mut targets: std::collections::BTreeSet<&str> = g.keys().copied().collect();
            targets.extend(p.keys().copied());
            for t in targets {
                if t == "staff_or_process" {
                    continue;
                }
                let (gs, ps) = (g.get(t), p.get(t));
                let covered = t == "staff" || t == "process";
                if gs.is_none() && covered && g.contains_key("staff_or_process") {
                    continue;
                }
                if gs != ps {
                    out.push(format!("{t}: gold {}, predicted {}", join(gs), join(ps)));
                }
            }
            if let Some(gs) = g.get("staff_or_process") {
                if !p.contains_key("staff") && !p.contains_key("process") {
                    out.push(format!(
                        "staff_or_process: gold {}, predicted absent",
                        join(Some(gs))
                    ));
                }
            }
        }
        if let Some(gold) = &self.gold_flags {
            for f in BUILT_IN_FLAGS {
                let want = gold.get(f).and_then(|x| x.as_bool()).unwrap_or(false);
                let got = self.flags.iter().any(|x| x == f);
                if want != got {
                    out.push(format!("{f}: gold {want}, predicted {got}"));
                }
            }
        }
        self.disagreements = out;
    }
}

/// What `verbatim eval --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows read.
    pub n: usize,
    /// Whether target T is mentioned, over analysed rows that carry `aspects`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<BTreeMap<String, Prf>>,
    /// Whether T is mentioned negatively, over the same rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complaints: Option<BTreeMap<String, Prf>>,
    /// Share of gold aspects whose target was found that got the gold polarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polarity_accuracy: Option<f64>,
    /// Per flag, over the rows that carry `flags` (absent when none do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<BTreeMap<String, Prf>>,
    /// Share of rows with a gold sentiment (a `sentiment` field, or gold
    /// aspects that all share one polarity) whose label matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment_accuracy: Option<f64>,
    /// Rows the sentiment accuracy is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment_support: Option<usize>,
    /// Gold mentions the polarity accuracy is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polarity_support: Option<usize>,
    /// Rows with `aspects` that were analysed / not analysed (a language
    /// the model does not read): the aspect scores are over the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysed: Option<usize>,
    /// See `analysed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_analysed: Option<usize>,
    /// `model backend precision` that was scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// The same scores per group of rows, for each `--by` field: field ->
    /// group (e.g. `language` -> `ru`) -> report.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by: BTreeMap<String, BTreeMap<String, EvalReport>>,
    /// Every flag miss (not in the JSON).
    #[serde(skip)]
    pub misses: Vec<FlagMiss>,
    /// Every row's predictions beside its gold labels, in input order (not
    /// in the JSON; `--predictions` writes them).
    #[serde(skip)]
    pub predictions: Vec<RowPrediction>,
}

/// One labelled row.
struct Gold {
    id: String,
    text: String,
    /// Its `lang`, `source` and `domain` fields, for `--by`.
    lang: Option<String>,
    source: Option<String>,
    domain: Option<String>,
    flags: Option<serde_json::Map<String, serde_json::Value>>,
    /// `(target, polarity)`; `None` when the row has no `aspects` key.
    aspects: Option<Vec<(String, String)>>,
    sentiment: Option<String>,
}

/// Which rows of a labelled file to score.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    /// Only the held-out rows (every tenth) of a file `train --hold-out` read.
    pub held_out: bool,
    /// Only rows whose `lang` is this ISO 639-1 code.
    pub language: Option<String>,
    /// Only rows whose `split` is this (`train`, `test`: the team's fresh
    /// set, `tests/fixtures/team_fresh.jsonl`).
    pub split: Option<String>,
}

fn read_rows(path: &Path, filter: &RowFilter) -> Result<Vec<Gold>, EvalError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: p.clone(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut row = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        row += 1;
        if filter.held_out && !crate::nlp::heads::is_held_out(row - 1) {
            continue;
        }
        let row_err = |message: String| EvalError::Row {
            path: p.clone(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| row_err(e.to_string()))?;
        let body = v["text"]
            .as_str()
            .ok_or_else(|| row_err("no `text`".into()))?;
        if let Some(l) = &filter.language {
            if v["lang"].as_str() != Some(l.as_str()) {
                continue;
            }
        }
        if let Some(x) = &filter.split {
            if v["split"].as_str() != Some(x.as_str()) {
                continue;
            }
        }
        let aspects = v.get("aspects").and_then(|a| a.as_array()).map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["target"].as_str().unwrap_or("").to_string(),
                        x["polarity"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        });
        rows.push(Gold {
            id: v["id"].as_str().unwrap_or("").to_string(),
            text: body.to_string(),
            flags: v.get("flags").and_then(|f| f.as_object()).cloned(),
            aspects,
            sentiment: v["sentiment"].as_str().map(str::to_string),
            lang: v["lang"].as_str().map(str::to_string),
            source: v["source"].as_str().map(str::to_string),
            domain: v["domain"].as_str().map(str::to_string),
        });
    }
    Ok(rows)
}

/// The gold sentiment of a row: its `sentiment` field, else the polarity
/// all its gold aspects share (rows with mixed aspects have none).
fn gold_sentiment(g: &Gold) -> Option<String> {
    if let Some(s) = &g.sentiment {
        return Some(s.clone());
    }
    let a = g.aspects.as_ref()?;
    let first = &a.first()?.1;
    (a.iter().all(|x| &x.1 == first) && first != "conflict").then(|| first.clone())
}

/// A field `verbatim eval --by` splits the scores by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitBy {
    /// The row's `lang`, else the language the pipeline detected
    /// (`unknown` when none).
    Language,
    /// The row's `source` (the public sets name their file and split),
    /// else the input file's name.
    Source,
    /// The row's `domain` (the team's set: telecom, banking…), else
    /// `unknown`.
    Domain,
}

impl SplitBy {
    /// The name used in the JSON (`by.language`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Language => "language",
            Self::Source => "source",
            Self::Domain => "domain",
        }
    }

    /// The group a row belongs to.
    fn key(self, g: &Gold, detected: Option<&str>, input: &Path) -> String {
        let unknown = || "unknown".to_string();
        match self {
            Self::Language => g
                .lang
                .clone()
                .or_else(|| detected.map(str::to_string))
                .unwrap_or_else(unknown),
            Self::Source => g.source.clone().unwrap_or_else(|| {
                input
                    .file_stem()
                    .map_or_else(unknown, |s| s.to_string_lossy().into_owned())
            }),
            Self::Domain => g.domain.clone().unwrap_or_else(unknown),
        }
    }
}

/// Tallies of one row, or of a group of rows.
#[derive(Default)]
struct Counts {
    targets: BTreeMap<String, (usize, usize, usize)>,
    complaints: BTreeMap<String, (usize, usize, usize)>,
    polarity: (usize, usize),
    sentiment: (usize, usize),
    analysed: usize,
    not_analysed: usize,
    /// Per flag, over `flag_rows` rows that carry gold `flags`.
    flags: BTreeMap<String, (usize, usize, usize)>,
    flag_rows: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        let merge = |a: &mut BTreeMap<String, (usize, usize, usize)>,
                     b: &BTreeMap<String, (usize, usize, usize)>| {
            for (k, v) in b {
                let e = a.entry(k.clone()).or_default();
                e.0 += v.0;
                e.1 += v.1;
                e.2 += v.2;
            }
        };
        merge(&mut self.targets, &o.targets);
        merge(&mut self.complaints, &o.complaints);
        merge(&mut self.flags, &o.flags);
        self.polarity.0 += o.polarity.0;
        self.polarity.1 += o.polarity.1;
        self.sentiment.0 += o.sentiment.0;
        self.sentiment.1 += o.sentiment.1;
        self.analysed += o.analysed;
        self.not_analysed += o.not_analysed;
        self.flag_rows += o.flag_rows;
    }

    /// The report of `n` rows with these tallies (`encoder`: the model
    /// that analysed them, if any did).
    fn report(&self, n: usize, encoder: Option<&str>) -> EvalReport {
        let aspects = encoder.is_some() && self.analysed > 0;
        EvalReport {
            n,
            targets: aspects.then(|| prfs(&self.targets)),
            complaints: aspects.then(|| prfs(&self.complaints)),
            polarity_accuracy: encoder.and_then(|_| ratio(self.polarity)),
            flags: (self.flag_rows > 0).then(|| prfs(&self.flags)),
            sentiment_accuracy: encoder.and_then(|_| ratio(self.sentiment)),
            sentiment_support: encoder.map(|_| self.sentiment.1),
            polarity_support: encoder.map(|_| self.polarity.1),
            analysed: encoder.map(|_| self.analysed),
            not_analysed: encoder.map(|_| self.not_analysed),
            encoder: encoder.map(str::to_string),
            by: BTreeMap::new(),
            misses: Vec::new(),
            predictions: Vec::new(),
        }
    }
}

fn tally(c: &mut BTreeMap<String, (usize, usize, usize)>, t: &str, gold: bool, pred: bool) {
    let e = c.entry(t.to_string()).or_default();
    match (gold, pred) {
        (true, true) => e.0 += 1,
        (false, true) => e.1 += 1,
        (true, false) => e.2 += 1,
        (false, false) => {}
    }
}

/// Scores one analysed row's aspects and sentiment.
fn score_analysis(g: &Gold, nlp: &crate::comment::Enrichment, c: &mut Counts) {
    use crate::comment::TARGETS;
    if let (Some(want), Some(s)) = (gold_sentiment(g), nlp.sentiment) {
        c.sentiment.1 += 1;
        if want == s.label.as_str() {
            c.sentiment.0 += 1;
        }
    }
    let Some(gold) = &g.aspects else { return };
    let Some(pred) = &nlp.aspects else {
        c.not_analysed += 1;
        return;
    };
    c.analysed += 1;
    let has = |t: &str| pred.iter().any(|a| &*a.target == t);
    let neg = |t: &str| crate::comment::blames(pred, t);
    // `staff_or_process` is right as staff or as process: resolve it to
    // whichever was predicted (staff when neither was).
    let resolve = |t: &str, want_neg: bool| -> String {
        if t != "staff_or_process" {
            return t.to_string();
        }
        let hit = |x: &str| if want_neg { neg(x) } else { has(x) };
        if !hit("staff") && hit("process") {
            "process".into()
        } else {
            "staff".into()
        }
    };
    for t in TARGETS {
        let gold_has = gold.iter().any(|(x, _)| resolve(x, false) == t);
        let gold_neg = gold
            .iter()
            .any(|(x, p)| (p == "negative" || p == "conflict") && resolve(x, true) == t);
        tally(&mut c.targets, t, gold_has, has(t));
        tally(&mut c.complaints, t, gold_neg, neg(t));
    }
    for (t, p) in gold {
        if p == "conflict" {
            continue;
        }
        let t = resolve(t, false);
        // The most confident prediction for the target.
        let best = pred
            .iter()
            .filter(|a| *a.target == *t)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
        if let Some(a) = best {
            c.polarity.1 += 1;
            if a.polarity.as_str() == p {
                c.polarity.0 += 1;
            }
        }
    }
}

fn prfs(c: &BTreeMap<String, (usize, usize, usize)>) -> BTreeMap<String, Prf> {
    c.iter()
        .map(|(t, &(tp, fp, fn_))| (t.clone(), Prf::from_counts(tp, fp, fn_)))
        .collect()
}

fn ratio((hit, n): (usize, usize)) -> Option<f64> {
    (n > 0).then(|| hit as f64 / n as f64)
}

/// Scores the flag stage on `path`, and, with `nlp`, the whole analysis
/// (redaction, language, flags, embedding, aspects, sentiment) exactly as
/// the pipeline runs it; with `by`, also per group of rows.
pub fn evaluate(
    path: &Path,
    extra: &BTreeMap<String, FlagPatterns>,
    nlp: Option<&NlpConfig>,
    filter: &RowFilter,
    by: &[SplitBy],
) -> Result<EvalReport, EvalError> {
    let rows = read_rows(path, filter)?;
    let matcher = FlagMatcher::new(extra).map_err(|e| EvalError::Pattern(e.to_string()))?;
    let redactor = Redactor::new().map_err(|e| EvalError::Pattern(e.to_string()))?;
    // Each row's tallies, summed over all rows and over each group.
    let mut per_row: Vec<Counts> = rows.iter().map(|_| Counts::default()).collect();
    let mut misses = Vec::new();
    let mut predictions: Vec<RowPrediction> = rows
        .iter()
        .map(|g| RowPrediction {
            id: g.id.clone(),
            text: redactor.redact(&g.text).0.into_owned(),
            gold_aspects: g.aspects.clone(),
            gold_flags: g.flags.clone(),
            language: None,
            analysis_skipped: None,
            sentiment: None,
            aspects: None,
            flags: Vec::new(),
            disagreements: Vec::new(),
        })
        .collect();
    // Analysis, in pipeline-sized batches.
    let mut encoder: Option<String> = None;
    if let Some(cfg) = nlp {
        // Targets added by examples are not in the labelled format: none here.
        let mut stages = crate::nlp::operators_for(cfg, extra, &BTreeMap::new())?;
        encoder = Some(format!(
            "{} {} {}",
            cfg.model,
            cfg.backend_name(),
            cfg.precision.as_str()
        ));
        let metrics = crate::metrics::Metrics::new();
        let now = chrono::Utc::now();
        // Pipeline-sized batches; `predictions` holds each row's redacted text.
        const BATCH: usize = 256;
        for (k, chunk) in rows.chunks(BATCH).enumerate() {
            let mut batch = crate::batch::CommentBatch::default();
            for (i, g) in chunk.iter().enumerate() {
                let coords = crate::comment::SourceCoords {
                    topic: "eval".into(),
                    partition: 0,
                    offset: i as i64,
                    kafka_timestamp: None,
                };
                batch.comments.push(crate::comment::Comment::new(
                    coords,
                    g.id.clone(),
                    predictions[k * BATCH + i].text.clone(),
                    now,
                    now,
                ));
            }
            crate::nlp::run_operators(&mut stages.operators, &mut batch, &metrics)?;
            for (j, (g, cm)) in chunk.iter().zip(&batch.comments).enumerate() {
                score_analysis(g, &cm.nlp, &mut per_row[k * BATCH + j]);
                let p = &mut predictions[k * BATCH + j];
                let n = &cm.nlp;
                p.language = n.language.map(str::to_string);
                // The stages' own flags: patterns and, where the model has
                // them, the learned flag heads.
                p.flags = n.flags.iter().flatten().map(|e| e.flag.clone()).collect();
                p.analysis_skipped = n.analysis_skipped.map(str::to_string);
                p.sentiment = n.sentiment.map(|s| (s.label.as_str().to_string(), s.score));
                p.aspects = n.aspects.as_ref().map(|a| {
                    a.iter()
                        .map(|a| PredictedAspect {
                            target: a.target.to_string(),
                            polarity: a.polarity.as_str().to_string(),
                            confidence: a.confidence,
                            text: a.text.clone(),
                        })
                        .collect()
                });
            }
        }
    }
    for ((g, pred), c) in rows.iter().zip(predictions.iter_mut()).zip(&mut per_row) {
        let raised: Vec<String> = if encoder.is_some() {
            std::mem::take(&mut pred.flags)
        } else {
            matcher
                .evidence(&pred.text)
                .into_iter()
                .map(|e| e.flag)
                .collect()
        };
        pred.flags = raised.clone();
        pred.flags.sort();
        pred.flags.dedup();
        pred.compare();
        let Some(gold) = &g.flags else {
            continue;
        };
        c.flag_rows += 1;
        for flag in BUILT_IN_FLAGS {
            let gl = gold.get(flag).and_then(|x| x.as_bool()).unwrap_or(false);
            let r = raised.iter().any(|x| x == flag);
            tally(&mut c.flags, flag, gl, r);
            let kind = match (gl, r) {
                (false, true) => Some("false_positive"),
                (true, false) => Some("false_negative"),
                _ => None,
            };
            if let Some(kind) = kind {
                misses.push(FlagMiss {
                    id: g.id.clone(),
                    flag: flag.to_string(),
                    kind,
                    text: g.text.clone(),
                });
            }
        }
    }
    let mut total = Counts::default();
    for c in &per_row {
        total.add(c);
    }
    let mut report = total.report(rows.len(), encoder.as_deref());
    for &field in by {
        let mut groups: BTreeMap<String, (usize, Counts)> = BTreeMap::new();
        for ((g, p), c) in rows.iter().zip(&predictions).zip(&per_row) {
            let e = groups
                .entry(field.key(g, p.language.as_deref(), path))
                .or_default();
            e.0 += 1;
            e.1.add(c);
        }
        let groups = groups
            .into_iter()
            .map(|(k, (n, c))| (k, c.report(n, encoder.as_deref())))
            .collect();
        report.by.insert(field.as_str().to_string(), groups);
    }
    report.misses = misses;
    report.predictions = predictions;
    Ok(report)
}

/// One score of a report, for comparing precisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The value.
    pub value: f64,
    /// Whether it is a headline score (the ones the project's acceptance
    /// bars are set on: staff and product targets and complaints,
    /// polarity, sentiment).
    pub headline: bool,
    /// The most one gold row read differently can move it: its resolution
    /// on this file (see [`Prf::one_row`]; 1/n for an accuracy over n).
    pub one_row: f64,
}

/// Every score of a report by name.
pub fn scores(r: &EvalReport) -> BTreeMap<String, Score> {
    let mut m = BTreeMap::new();
    for (kind, table) in [("targets", &r.targets), ("complaints", &r.complaints)] {
        for (t, p) in table.iter().flatten() {
            if p.support > 0 {
                let score = Score {
                    value: p.f1,
                    headline: t == "staff" || t == "product",
                    one_row: p.one_row(),
                };
                m.insert(format!("{kind}.{t}.f1"), score);
            }
        }
    }
    let accuracy = |value: Option<f64>, n: Option<usize>| {
        value.map(|value| Score {
            value,
            headline: true,
            one_row: n.filter(|&n| n > 0).map_or(0.0, |n| 1.0 / n as f64),
        })
    };
    if let Some(s) = accuracy(r.polarity_accuracy, r.polarity_support) {
        m.insert("polarity_accuracy".into(), s);
    }
    if let Some(s) = accuracy(r.sentiment_accuracy, r.sentiment_support) {
        m.insert("sentiment_accuracy".into(), s);
    }
    m
}

/// Score the understanding stages on a labelled JSONL file (the project's
/// format, see ../shared/data/README.md): aspect targets, complaints,
/// polarity, sentiment and the follow-up flags, through the same stages
/// the stream job runs.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Labelled rows, one JSON object per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Pipeline whose `[nlp]` and `[flags]` to use.
    #[arg(long, default_value = "pipelines/demo.toml")]
    pub pipeline: PathBuf,
    /// Score only the flags (no model needed).
    #[arg(long)]
    pub flags_only: bool,
    /// Override the pipeline's nlp.precision.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Run int8 and fp32 and compare; exit 3 when int8 is below fp32 on a
    /// headline metric by more than a point, or than one gold row's worth
    /// where one row moves that score more (int8 stays the default only
    /// while it is not).
    #[arg(long)]
    pub compare_precision: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list every miss (false positives and negatives).
    #[arg(long)]
    pub misses: bool,
    /// Override the pipeline's nlp.model (a manifest in models/, e.g.
    /// multilingual-e5-small).
    #[arg(long)]
    pub model: Option<String>,
    /// Score only the held-out rows of a file `verbatim train --hold-out`
    /// trained on (every tenth row).
    #[arg(long)]
    pub held_out: bool,
    /// Score only rows whose `lang` is this code (e.g. `ru`).
    #[arg(long)]
    pub language: Option<String>,
    /// Score only rows whose `split` field is this (e.g. `test`: the part
    /// of the team's fresh set that nothing is tuned on).
    #[arg(long)]
    pub split: Option<String>,
    /// Write every row's predictions beside its gold labels to this
    /// JSONL file, with a `disagreements` list per row (e.g. `product:
    /// gold negative, predicted neutral`), for reading what the model
    /// gets wrong.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Also score each group of rows apart, by this field (repeat for
    /// several): `language` (the row's `lang`, else the detected one),
    /// `source` (the row's `source`, else the file's name) or `domain`.
    /// With `--json`, under `by.<field>.<group>`.
    #[arg(long, value_enum)]
    pub by: Vec<SplitBy>,
    /// A target's presence threshold, `target=p`, over the pipeline's and
    /// the heads' (`nlp.presence`); repeat for more targets. For choosing
    /// thresholds on dev sets before `verbatim train --presence` records them.
    #[arg(long, value_parser = super::train::parse_presence)]
    pub presence: Vec<(String, f32)>,
    /// Weight of the sentiment head over an aspect's clause in its
    /// polarity (`nlp.clause_sentiment`), over the pipeline's and the
    /// heads'; for choosing it before `verbatim train --clause-sentiment`.
    #[arg(long, value_parser = super::train::parse_weight)]
    pub clause_sentiment: Option<f32>,
}

/// Scores the file and prints the report (exit 3 when `--compare-precision`
/// finds int8 more than a point below fp32).
pub fn execute(args: EvalArgs) -> anyhow::Result<()> {
    let EvalArgs {
        input,
        pipeline,
        flags_only,
        precision,
        compare_precision,
        json,
        misses,
        model,
        held_out,
        language,
        split,
        predictions,
        by,
        presence,
        clause_sentiment,
    } = args;
    let filter = RowFilter {
        held_out,
        language,
        split,
    };
    let cfg = load(&pipeline)?;
    let mut nlp = if flags_only { None } else { cfg.nlp.clone() };
    if let (Some(n), Some(m)) = (nlp.as_mut(), model) {
        n.model = m;
    }
    if let Some(n) = nlp.as_mut() {
        n.presence.extend(presence);
        if clause_sentiment.is_some() {
            n.clause_sentiment = clause_sentiment;
        }
    }
    if !flags_only && nlp.is_none() {
        anyhow::bail!(
                    "{}: no [nlp] section, so only flags could be scored. Fix: pass a pipeline with [nlp], or --flags-only",
                    pipeline.display()
                );
    }
    let run = |p: Option<Precision>| -> anyhow::Result<EvalReport> {
        let mut nlp = nlp.clone();
        if let (Some(n), Some(p)) = (nlp.as_mut(), p) {
            n.precision = p;
        }
        Ok(evaluate(&input, &cfg.flags, nlp.as_ref(), &filter, &by)?)
    };
    if compare_precision {
        let int8 = run(Some(Precision::Int8))?;
        let fp32 = run(Some(Precision::Fp32))?;
        let (a, b) = (scores(&int8), scores(&fp32));
        // int8 may not lose more on a headline score than a point, or than
        // one gold row's worth where one row moves the score more (25
        // positives: one miss is ~4 points of F1, below which no
        // comparison on that file can resolve).
        let mut worst: Option<(String, f64, f64)> = None;
        let mut rows = Vec::new();
        for (k, s) in &b {
            let y = a.get(k).map_or(f64::NAN, |v| v.value);
            let d = y - s.value;
            let bar = s.one_row.max(0.01);
            // The headline furthest over (or nearest under) its bar.
            if s.headline && worst.as_ref().is_none_or(|w| -d - bar > w.1 - w.2) {
                worst = Some((k.clone(), -d, bar));
            }
            rows.push((k.clone(), s.value, y, d, s.headline, bar));
        }
        let (worst_metric, worst_drop, worst_bar) = worst.unwrap_or_default();
        let ok = worst_drop <= worst_bar;
        if json {
            let obj = serde_json::json!({
                "fp32": fp32, "int8": int8,
                "worst_headline": worst_metric,
                "max_headline_drop": worst_drop, "bar": worst_bar,
                "within_bar": ok,
            });
            println!("{obj}");
        } else {
            println!("{}: {} rows, int8 vs fp32", input.display(), int8.n);
            println!(
                "{:<34} {:>7} {:>7} {:>7} {:>7}",
                "metric (* headline)", "fp32", "int8", "delta", "bar"
            );
            for (k, x, y, d, head, bar) in rows {
                let k = if head { format!("{k} *") } else { k };
                println!("{k:<34} {x:>7.3} {y:>7.3} {d:>+7.3} {bar:>7.3}");
            }
            println!(
                "{worst_metric}: int8 {:.3} below fp32, bar {:.3} (a point, or one gold row's worth): int8 {} within it",
                worst_drop,
                worst_bar,
                if ok { "is" } else { "is NOT" }
            );
        }
        if !ok {
            std::process::exit(3);
        }
        return Ok(());
    }
    let r = run(precision.map(Into::into))?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_eval(&input, &r);
    }
    if misses {
        for m in &r.misses {
            eprintln!("{} {} {}: {}", m.kind, m.flag, m.id, m.text);
        }
    }
    if let Some(out) = predictions {
        let mut text = String::new();
        for p in &r.predictions {
            text.push_str(&serde_json::to_string(p)?);
            text.push('\n');
        }
        std::fs::write(&out, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
        let wrong = r
            .predictions
            .iter()
            .filter(|p| !p.disagreements.is_empty())
            .count();
        eprintln!(
            "wrote {} rows to {} ({wrong} with a disagreement)",
            r.predictions.len(),
            out.display()
        );
    }
    Ok(())
}

fn print_eval(input: &Path, r: &EvalReport) {
    println!(
        "{}: {} rows{}",
        input.display(),
        r.n,
        r.encoder
            .as_deref()
            .map(|e| format!(", scored with {e}"))
            .unwrap_or_default()
    );
    let table = |title: &str, m: &std::collections::BTreeMap<String, Prf>| {
        println!(
            "{:<20} {:>9} {:>7} {:>6} {:>8}",
            title, "precision", "recall", "f1", "support"
        );
        for (f, p) in m {
            println!(
                "{f:<20} {:>9.3} {:>7.3} {:>6.3} {:>8}",
                p.precision, p.recall, p.f1, p.support
            );
        }
    };
    if let (Some(t), Some(c)) = (&r.targets, &r.complaints) {
        println!(
            "aspects over {} analysed rows ({} not analysed: language the model does not read)",
            r.analysed.unwrap_or(0),
            r.not_analysed.unwrap_or(0)
        );
        table("target", t);
        table("complaint", c);
    }
    if let Some(p) = r.polarity_accuracy {
        println!("polarity accuracy {p:.3}");
    }
    if let Some(s) = r.sentiment_accuracy {
        println!(
            "sentiment accuracy {s:.3} over {} rows",
            r.sentiment_support.unwrap_or(0)
        );
    }
    if let Some(f) = &r.flags {
        table("flag", f);
    }
    print_groups(r);
}

/// One line per group of each `--by` split: the headline scores.
fn print_groups(r: &EvalReport) {
    let f1 = |m: &Option<BTreeMap<String, Prf>>, t: &str| {
        m.as_ref()
            .and_then(|m| m.get(t))
            .filter(|p| p.support > 0)
            .map_or("-".to_string(), |p| format!("{:.3}", p.f1))
    };
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
    if !r.by.is_empty() {
        println!("per group: F1 of staff and product targets (t.) and complaints (c.), polarity and sentiment accuracy, mean F1 of the flags with gold positives");
    }
    for (field, groups) in &r.by {
        println!(
            "by {field}: {:<18} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "group", "rows", "t.staff", "t.prod", "c.staff", "c.prod", "polar", "sentim", "flags"
        );
        for (g, x) in groups {
            // Macro F1 over the flags that have gold positives here.
            let flags: Vec<f64> = x
                .flags
                .iter()
                .flatten()
                .filter(|(_, p)| p.support > 0)
                .map(|(_, p)| p.f1)
                .collect();
            let flags = (!flags.is_empty()).then(|| flags.iter().sum::<f64>() / flags.len() as f64);
            println!(
                "   {:<width$}  {g:<18} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
                "",
                x.n,
                f1(&x.targets, "staff"),
                f1(&x.targets, "product"),
                f1(&x.complaints, "staff"),
                f1(&x.complaints, "product"),
                opt(x.polarity_accuracy),
                opt(x.sentiment_accuracy),
                opt(flags),
                width = field.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_counts() {
        let p = Prf::from_counts(8, 2, 2);
        assert!(
            (p.precision - 0.8).abs() < 1e-9
                && (p.recall - 0.8).abs() < 1e-9
                && (p.f1 - 0.8).abs() < 1e-9
        );
        assert_eq!(p.support, 10);
        assert_eq!(Prf::from_counts(0, 0, 0).f1, 0.0);
    }

    #[test]
    fn rows_are_filtered_by_language_split_and_held_out_part() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.jsonl");
        let lines: String = (0..20)
            .map(|i| {
                let lang = if i % 2 == 0 { "en" } else { "ru" };
                let split = if i < 5 { "test" } else { "train" };
                format!("{{\"id\":\"r{i}\",\"text\":\"t{i}\",\"lang\":\"{lang}\",\"split\":\"{split}\"}}\n")
            })
            .collect();
        std::fs::write(&f, lines).unwrap();
        let ids = |filter: RowFilter| -> Vec<String> {
            read_rows(&f, &filter)
                .unwrap()
                .into_iter()
                .map(|g| g.id)
                .collect()
        };
        assert_eq!(ids(RowFilter::default()).len(), 20);
        let ru = ids(RowFilter {
            language: Some("ru".into()),
            ..Default::default()
        });
        assert_eq!(ru.len(), 10);
        assert!(ru.iter().all(|id| id[1..].parse::<u32>().unwrap() % 2 == 1));
        let held = ids(RowFilter {
            held_out: true,
            ..Default::default()
        });
        assert_eq!(held, vec!["r0", "r10"]);
        let test_ru = ids(RowFilter {
            split: Some("test".into()),
            language: Some("ru".into()),
            ..Default::default()
        });
        assert_eq!(test_ru, vec!["r1", "r3"]);
    }

    #[test]
    fn scores_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.jsonl");
        std::fs::write(
            &f,
            "{\"id\":\"a\",\"text\":\"Please call me back\",\"flags\":{\"contact_requested\":true}}\n\
             {\"id\":\"b\",\"text\":\"Lovely food\",\"flags\":{\"contact_requested\":false}}\n\
             {\"id\":\"c\",\"text\":\"no flags key here\"}\n",
        )
        .unwrap();
        let r = evaluate(&f, &BTreeMap::new(), None, &RowFilter::default(), &[]).unwrap();
        assert_eq!(r.n, 3);
        assert_eq!(
            r.flags.as_ref().unwrap()["contact_requested"],
            Prf::from_counts(1, 0, 0)
        );
        assert!(evaluate(
            &dir.path().join("missing.jsonl"),
            &BTreeMap::new(),
            None,
            &RowFilter::default(),
            &[]
        )
        .is_err());
    }

    #[test]
    fn scores_split_by_language_source_and_domain_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("team.jsonl");
        std::fs::write(
            &f,
            "{\"id\":\"a\",\"lang\":\"en\",\"domain\":\"telecom\",\"text\":\"Please call me back\",\"flags\":{\"contact_requested\":true}}\n\
             {\"id\":\"b\",\"lang\":\"ru\",\"source\":\"s1\",\"text\":\"Перезвоните мне\",\"flags\":{\"contact_requested\":true}}\n\
             {\"id\":\"c\",\"lang\":\"ru\",\"source\":\"s1\",\"text\":\"Всё хорошо, спасибо\",\"flags\":{\"contact_requested\":false}}\n\
             {\"id\":\"d\",\"text\":\"no language, no flags\"}\n",
        )
        .unwrap();
        let by = [SplitBy::Language, SplitBy::Source, SplitBy::Domain];
        let r = evaluate(&f, &BTreeMap::new(), None, &RowFilter::default(), &by).unwrap();
        let language = &r.by["language"];
        let keys: Vec<&str> = language.keys().map(String::as_str).collect();
        assert_eq!(keys, ["en", "ru", "unknown"]);
        assert_eq!(
            language.values().map(|g| g.n).collect::<Vec<_>>(),
            [1, 2, 1]
        );
        // Each group scores only its own rows, and the groups add up.
        let contact = |g: &EvalReport| g.flags.as_ref().map(|f| f["contact_requested"]);
        let ru = contact(&language["ru"]).unwrap();
        assert_eq!(ru.support, 1);
        assert!(
            contact(&language["unknown"]).is_none(),
            "no gold flags there"
        );
        let total = contact(&r).unwrap();
        assert_eq!(
            total.support,
            ru.support + contact(&language["en"]).unwrap().support
        );
        let sources: Vec<&str> = r.by["source"].keys().map(String::as_str).collect();
        assert_eq!(
            sources,
            ["s1", "team"],
            "the file's name where a row has none"
        );
        let domains: Vec<&str> = r.by["domain"].keys().map(String::as_str).collect();
        assert_eq!(domains, ["telecom", "unknown"]);
        // In the JSON, under by.<field>.<group>.
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["by"]["language"]["ru"]["n"], 2);
        let plain = evaluate(&f, &BTreeMap::new(), None, &RowFilter::default(), &[]).unwrap();
        assert!(serde_json::to_value(&plain).unwrap().get("by").is_none());
    }

    #[test]
    fn predictions_sit_beside_gold_and_name_each_disagreement() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.jsonl");
        std::fs::write(
            &f,
            "{\"id\":\"a\",\"text\":\"Call me on +44 7700 900123\",\"flags\":{\"contact_requested\":true}}\n\
             {\"id\":\"b\",\"text\":\"Third time I write about this\",\"flags\":{\"repeat_issue\":false}}\n",
        )
        .unwrap();
        let r = evaluate(&f, &BTreeMap::new(), None, &RowFilter::default(), &[]).unwrap();
        assert_eq!(r.predictions.len(), 2);
        let a = &r.predictions[0];
        assert_eq!(a.id, "a");
        assert!(!a.text.contains("7700"), "redacted: {}", a.text);
        assert_eq!(a.flags, vec!["contact_requested".to_string()]);
        assert!(a.disagreements.is_empty(), "{:?}", a.disagreements);
        let b = &r.predictions[1];
        assert_eq!(b.flags, vec!["repeat_issue".to_string()]);
        assert_eq!(
            b.disagreements,
            vec!["repeat_issue: gold false, predicted true"]
        );

        // Aspects: a missed target, a wrong polarity, and staff_or_process
        // agreeing with a process prediction.
        let aspect = |t: &str, p: &str| PredictedAspect {
            target: t.into(),
            polarity: p.into(),
            confidence: 0.9,
            text: String::new(),
        };
        let mut row = RowPrediction {
            id: "x".into(),
            text: String::new(),
            gold_aspects: Some(vec![
                ("product".into(), "negative".into()),
                ("price".into(), "negative".into()),
                ("staff_or_process".into(), "negative".into()),
            ]),
            gold_flags: None,
            language: Some("en".into()),
            analysis_skipped: None,
            sentiment: None,
            aspects: Some(vec![
                aspect("product", "neutral"),
                aspect("process", "negative"),
            ]),
            flags: Vec::new(),
            disagreements: Vec::new(),
        };
        row.compare();
        assert_eq!(
            row.disagreements,
            vec![
                "price: gold negative, predicted absent",
                "product: gold negative, predicted neutral",
            ]
        );
    }
}
