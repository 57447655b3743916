//! Themes: what comments are about, grouped with ids that stay stable.
//!
//! The stream job runs [`online`] as its last enrichment step, after the NLP
//! operators have embedded the comment; everything else here works offline
//! on what the job wrote.
//!
//! | concern | module | run by |
//! |---|---|---|
//! | online assignment (the stream stage) | [`online`] | `verbatim run`, `ingest`, `demo` |
//! | readable labels (phrases: c-TF-IDF, stems, MMR keywords) | [`labels`] | [`online`], [`refit`] |
//! | the model's files under `<output.root>/themes/` | [`store`] | every command here |
//! | ids unique across instances (claimed blocks) | [`ids`] | [`online`], [`refit`] |
//! | batch re-clustering, new model versions | [`refit`] | `verbatim themes refit` |
//! | history read with the newest refit's themes | [`assignments`] | the report, [`daily`] |
//! | analysts' renames and merges | [`curation`] | `verbatim themes list\|show\|rename\|merge` |
//! | themes over time (`theme_daily/`) | [`daily`] | `verbatim themes daily`, the demo |
//! | scoring against labelled data | [`eval`] | `verbatim eval-themes` |

pub mod assignments;
pub mod curation;
pub mod daily;
pub mod eval;
pub mod ids;
pub mod labels;
pub mod online;
pub mod refit;
pub mod store;
