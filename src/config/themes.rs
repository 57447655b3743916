//! `[themes]`: how comments are grouped into themes.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[themes]`: how comments are grouped into themes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThemesConfig {
    /// Assign themes (needs `[nlp]`).
    pub enabled: bool,
    /// A comment joins a theme at this cosine with its centroid.
    pub join_similarity: f32,
    /// Average-linkage cosine distance under which buffered comments cluster.
    pub cluster_distance: f32,
    /// Cluster the novelty buffer after this many new comments in it.
    pub cluster_every: usize,
    /// Smallest cluster that becomes a theme.
    pub min_theme_size: usize,
    /// Most comments the novelty buffer holds (oldest dropped first).
    pub buffer: usize,
    /// Average-linkage cosine distance at which `verbatim themes refit
    /// --from-scratch` cuts its clusters of all stored comments.
    pub refit_distance: f32,
}

impl Default for ThemesConfig {
    fn default() -> Self {
        // Chosen on banking77 (README, "Themes").
        Self {
            enabled: true,
            join_similarity: 0.8,
            cluster_distance: 0.65,
            cluster_every: 16,
            min_theme_size: 3,
            buffer: 256,
            refit_distance: 0.45,
        }
    }
}

impl ThemesConfig {
    /// Checks every `[themes]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        let t = self;
        let checks: [(&str, bool, String, &str); 6] = [
            ("themes.join_similarity", t.join_similarity > 0.0 && t.join_similarity <= 1.0, format!("is {}", t.join_similarity), "use a cosine in (0, 1], e.g. 0.8"),
            ("themes.cluster_distance", t.cluster_distance > 0.0 && t.cluster_distance < 2.0, format!("is {}", t.cluster_distance), "use a cosine distance in (0, 2), e.g. 0.65"),
            ("themes.refit_distance", t.refit_distance > 0.0 && t.refit_distance < 2.0, format!("is {}", t.refit_distance), "use a cosine distance in (0, 2), e.g. 0.45"),
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
