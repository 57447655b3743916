//! `[themes]`: how comments are grouped into themes.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[themes]`: how comments are grouped into themes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThemesConfig {
    /// Assign themes (needs `[nlp]`).
    pub enabled: bool,
    /// A comment joins a theme at this cosine with its centroid. Unset: the
    /// model manifest's `[calibration]`, else 0.8 (tuned on MiniLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_similarity: Option<f32>,
    /// Average-linkage cosine distance under which buffered comments
    /// cluster. Unset: the manifest's `[calibration]`, else 0.65.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_distance: Option<f32>,
    /// Cluster the novelty buffer after this many new comments in it.
    pub cluster_every: usize,
    /// Smallest cluster that becomes a theme.
    pub min_theme_size: usize,
    /// Most comments the novelty buffer holds (oldest dropped first).
    pub buffer: usize,
    /// Average-linkage cosine distance at which `verbatim themes refit`
    /// cuts: `--from-scratch`, its clusters of all stored comments; a warm
    /// refit, its merges of existing themes. Unset: the manifest's
    /// `[calibration]`, else 0.45.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refit_distance: Option<f32>,
    /// What a theme groups: `mention` (each clause the analysis reads,
    /// among the themes of its target; a comment gets its mentions' themes
    /// and a primary one) or `comment` (whole comments).
    pub unit: ThemeUnit,
}

/// `themes.unit`: what a theme groups.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ThemeUnit {
    /// Each mention (a clause with its target and polarity) gets a theme
    /// among its target's themes; comments without a mention (analysis off,
    /// or nothing read) get a theme of whole comments.
    Mention,
    /// Whole comments, one theme each (the default: README, "Themes per
    /// mention", has the numbers that keep it so for now).
    #[default]
    Comment,
}

/// Built-in thresholds, chosen on banking77 with all-MiniLM-L6-v2
/// (README, "Themes"); a model's manifest `[calibration]` replaces them.
const JOIN_SIMILARITY: f32 = 0.8;
const CLUSTER_DISTANCE: f32 = 0.65;
const REFIT_DISTANCE: f32 = 0.45;

impl Default for ThemesConfig {
    fn default() -> Self {
        // Chosen on banking77 (README, "Themes").
        Self {
            enabled: true,
            join_similarity: None,
            cluster_distance: None,
            cluster_every: 16,
            min_theme_size: 3,
            buffer: 256,
            refit_distance: None,
            unit: ThemeUnit::Comment,
        }
    }
}

impl ThemesConfig {
    /// The join threshold in force.
    pub fn join_similarity(&self) -> f32 {
        self.join_similarity.unwrap_or(JOIN_SIMILARITY)
    }

    /// The clustering cut in force.
    pub fn cluster_distance(&self) -> f32 {
        self.cluster_distance.unwrap_or(CLUSTER_DISTANCE)
    }

    /// The from-scratch refit cut in force.
    pub fn refit_distance(&self) -> f32 {
        self.refit_distance.unwrap_or(REFIT_DISTANCE)
    }

    /// These settings with the thresholds the pipeline leaves unset taken
    /// from a model's `[calibration]`.
    pub fn calibrated(&self, cal: &super::Calibration) -> Self {
        Self {
            join_similarity: self.join_similarity.or(cal.join_similarity),
            cluster_distance: self.cluster_distance.or(match self.unit {
                ThemeUnit::Mention => cal.mention_cluster_distance.or(cal.cluster_distance),
                ThemeUnit::Comment => cal.cluster_distance,
            }),
            refit_distance: self.refit_distance.or(cal.refit_distance),
            ..self.clone()
        }
    }

    /// Checks every `[themes]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        let t = self;
        let (join_similarity, cluster_distance, refit_distance) = (
            t.join_similarity(),
            t.cluster_distance(),
            t.refit_distance(),
        );
        let checks: [(&str, bool, String, &str); 6] = [
            ("themes.join_similarity", join_similarity > 0.0 && join_similarity <= 1.0, format!("is {join_similarity}"), "use a cosine in (0, 1], e.g. 0.8"),
            ("themes.cluster_distance", cluster_distance > 0.0 && cluster_distance < 2.0, format!("is {cluster_distance}"), "use a cosine distance in (0, 2), e.g. 0.65"),
            ("themes.refit_distance", refit_distance > 0.0 && refit_distance < 2.0, format!("is {refit_distance}"), "use a cosine distance in (0, 2), e.g. 0.45"),
            ("themes.cluster_every", t.cluster_every >= 1, format!("is {}", t.cluster_every), "use 1 or more, e.g. 16"),
            ("themes.min_theme_size", t.min_theme_size >= 2, format!("is {}", t.min_theme_size), "use 2 or more, e.g. 3"),
            ("themes.buffer", t.buffer >= t.min_theme_size.max(2) && t.buffer <= 5000, format!("is {} (min_theme_size {})", t.buffer, t.min_theme_size), "use at least themes.min_theme_size and at most 5000 (clustering is quadratic in it), e.g. 256"),
        ];
        for (key, ok, problem, fix) in checks {
            if !ok {
                return Err(bad.err(key, problem, fix));
            }
        }
        Ok(())
    }
}
