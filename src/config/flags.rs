//! `[flags.<name>]`: patterns or example phrases a pipeline adds to a
//! built-in follow-up flag, or new flags. The patterns are compiled here,
//! once, for both the check at start and the flag stage, so both read them
//! the same way; the examples are embedded at start by the analysis stage
//! ([`crate::nlp::analyze`]), which raises the flag on a clause close to one.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// `[flags.<name>]` in a pipeline file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlagPatterns {
    /// Regular expressions (case-insensitive) that raise the flag.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Regular expressions that, found in the same sentence, cancel the
    /// flag there, whatever raised it (a pattern, a learned head, examples).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Short phrases that say the flag, in a language the model reads (the
    /// multilingual model matches them across languages): a clause whose
    /// embedding has cosine `>= min_similarity` with one of them raises the
    /// flag, with that clause as its evidence. Needs `[nlp]` with analysis on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Lowest cosine similarity that counts (0-1). Unset: the model
    /// manifest's `[calibration] target_min_similarity`, else 0.45, as for
    /// `[targets.<name>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_similarity: Option<f32>,
    /// Keep the flag only on a comment that reads as a complaint: one
    /// negative mention, or negative sentiment (needs `[nlp]` with analysis
    /// on; without it patterns stand alone). Unset: on for the flags in
    /// [`COMPLAINT_FLAGS`], off for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_complaint: Option<bool>,
}

/// Built-in flags that only a complaint can carry: a problem that keeps
/// coming back ("third flight with you and every one on time" has the
/// words without the problem). `safety_risk` is not one: dangers are often
/// reported flatly ("the driver was texting on the motorway"), and a missed
/// one costs more than a false alarm (README.md, "Learned flags").
pub const COMPLAINT_FLAGS: [&str; 1] = ["repeat_issue"];

/// The flags (built-in and `[flags.<name>]`) that are kept only on a
/// comment that reads as a complaint: [`FlagPatterns::needs_complaint`],
/// else the built-in default.
pub fn complaint_flags(flags: &BTreeMap<String, FlagPatterns>) -> Vec<String> {
    let mut names: Vec<String> = COMPLAINT_FLAGS
        .iter()
        .filter(|f| flags.get(**f).and_then(|p| p.needs_complaint) != Some(false))
        .map(|f| f.to_string())
        .collect();
    names.extend(
        flags
            .iter()
            .filter(|(n, p)| {
                p.needs_complaint == Some(true) && !COMPLAINT_FLAGS.contains(&n.as_str())
            })
            .map(|(n, _)| n.clone()),
    );
    names
}

/// Errors building the flag matchers.
#[derive(Debug, thiserror::Error)]
#[error("flags.{flag}: pattern {pattern:?} does not compile: {message}")]
pub struct FlagPatternError {
    /// Flag name.
    pub flag: String,
    /// The pattern.
    pub pattern: String,
    /// The regex error.
    pub message: String,
}

/// Compiles one pattern of flag `flag` as every flag pattern is read:
/// case-insensitive, with a bounded program size.
pub fn compile_pattern(flag: &str, p: &str) -> Result<Regex, FlagPatternError> {
    RegexBuilder::new(p)
        .case_insensitive(true)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| FlagPatternError {
            flag: flag.to_string(),
            pattern: p.to_string(),
            message: e.to_string(),
        })
}

/// Compiles every pattern a pipeline adds, in the order the flag stage
/// reads them (built-in flags in column order, then new flags by name), and
/// returns the first that does not compile.
pub fn check_patterns(flags: &BTreeMap<String, FlagPatterns>) -> Result<(), FlagPatternError> {
    let built_in = crate::comment::BUILT_IN_FLAGS
        .iter()
        .filter_map(|name| flags.get_key_value(*name));
    let others = flags
        .iter()
        .filter(|(name, _)| !crate::comment::BUILT_IN_FLAGS.contains(&name.as_str()));
    for (name, p) in built_in.chain(others) {
        for pattern in p.patterns.iter().chain(&p.exclude) {
            compile_pattern(name, pattern)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaint_flags_follow_defaults_and_overrides() {
        let mut flags = BTreeMap::new();
        assert_eq!(complaint_flags(&flags), ["repeat_issue"]);
        let on = FlagPatterns {
            needs_complaint: Some(true),
            ..FlagPatterns::default()
        };
        let off = FlagPatterns {
            needs_complaint: Some(false),
            ..FlagPatterns::default()
        };
        flags.insert("repeat_issue".to_string(), off);
        flags.insert("billing_dispute".to_string(), on.clone());
        flags.insert("safety_risk".to_string(), on);
        flags.insert("praise".to_string(), FlagPatterns::default());
        assert_eq!(complaint_flags(&flags), ["billing_dispute", "safety_risk"]);
    }

    #[test]
    fn needs_complaint_reads_from_toml() {
        let p: FlagPatterns = toml::from_str("needs_complaint = false").unwrap();
        assert_eq!(p.needs_complaint, Some(false));
        assert!(toml::from_str::<FlagPatterns>("needs_complain = true").is_err());
    }
}
