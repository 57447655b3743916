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
    /// Regular expressions that, found in the same sentence, cancel a match.
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
