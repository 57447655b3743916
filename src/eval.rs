//! `verbatim eval`: scores the understanding stages against a labelled JSONL
//! file in the project's format (`../shared/data/README.md`).
//!
//! Today it scores the follow-up flags (rows that carry `flags`): precision,
//! recall, F1 and support per flag, with the same redaction the pipeline
//! applies first. Aspect targets, complaints, polarity and sentiment are
//! scored once their stage exists; until then they are absent from the output
//! rather than reported as numbers nobody measured.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::nlp::flags::{FlagMatcher, FlagPatterns, BUILT_IN};
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

/// What `verbatim eval --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows read.
    pub n: usize,
    /// Per flag, over the rows that carry `flags`.
    pub flags: BTreeMap<String, Prf>,
    /// Every miss (not in the JSON).
    #[serde(skip)]
    pub misses: Vec<FlagMiss>,
}

/// Scores the flag stage on `path`.
pub fn evaluate(
    path: &Path,
    extra: &BTreeMap<String, FlagPatterns>,
) -> Result<EvalReport, EvalError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: p.clone(),
        source,
    })?;
    let matcher = FlagMatcher::new(extra).map_err(|e| EvalError::Pattern(e.to_string()))?;
    let redactor = Redactor::new().map_err(|e| EvalError::Pattern(e.to_string()))?;
    let mut counts: BTreeMap<&str, (usize, usize, usize)> =
        BUILT_IN.iter().map(|f| (*f, (0, 0, 0))).collect();
    let mut misses = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
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
        n += 1;
        let Some(gold) = v.get("flags").and_then(|f| f.as_object()) else {
            continue;
        };
        let (clean, _) = redactor.redact(body);
        let raised: Vec<String> = matcher
            .evidence(&clean)
            .into_iter()
            .map(|e| e.flag)
            .collect();
        let id = v["id"].as_str().unwrap_or("").to_string();
        for (flag, c) in counts.iter_mut() {
            let g = gold.get(*flag).and_then(|x| x.as_bool()).unwrap_or(false);
            let r = raised.iter().any(|x| x == flag);
            match (g, r) {
                (true, true) => c.0 += 1,
                (false, true) => {
                    c.1 += 1;
                    misses.push(FlagMiss {
                        id: id.clone(),
                        flag: flag.to_string(),
                        kind: "false_positive",
                        text: body.to_string(),
                    });
                }
                (true, false) => {
                    c.2 += 1;
                    misses.push(FlagMiss {
                        id: id.clone(),
                        flag: flag.to_string(),
                        kind: "false_negative",
                        text: body.to_string(),
                    });
                }
                (false, false) => {}
            }
        }
    }
    Ok(EvalReport {
        n,
        flags: counts
            .into_iter()
            .map(|(f, (tp, fp, fn_))| (f.to_string(), Prf::from_counts(tp, fp, fn_)))
            .collect(),
        misses,
    })
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
        let r = evaluate(&f, &BTreeMap::new()).unwrap();
        assert_eq!(r.n, 3);
        assert_eq!(r.flags["contact_requested"], Prf::from_counts(1, 0, 0));
        assert!(evaluate(&dir.path().join("missing.jsonl"), &BTreeMap::new()).is_err());
    }
}
