//! Where the theme model lives under `<output.root>/themes/`:
//!
//! ```text
//! themes/state.json          the stream job's model (saved before every file commit)
//! themes/versions/v000002.json  model versions written by `verbatim themes refit`
//! themes/curation.json       analysts' renames and merges (`verbatim themes rename|merge`)
//! themes/themes.parquet      a snapshot for SQL: one row per theme id
//! themes/ids/b0000000.json   a block of theme ids one writer claimed (see super::ids)
//! ```
//!
//! A job starts from `state.json`, takes over any newer version, and applies
//! the curation; it checks for both again before each commit, so a refit or
//! a rename reaches a running job without a restart. At each commit it also
//! takes in the themes another instance saved to `state.json` before
//! saving its own (`ThemeModel::absorb`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListBuilder, MapBuilder,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::online::{Curation, ThemeModel};
use crate::config::ThemesConfig;
use crate::sink::store::OutputStore;

/// `themes/state.json`: the stream job's model.
pub const STATE: &str = "themes/state.json";
/// `themes/curation.json`: analysts' renames and merges.
pub const CURATION: &str = "themes/curation.json";
/// `themes/themes.parquet`: the snapshot for SQL.
pub const SNAPSHOT: &str = "themes/themes.parquet";
/// `themes/versions/`: model versions written by refits.
const VERSIONS: &str = "themes/versions";

/// Errors reading or writing the theme files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The output store failed (its message names the object and the fix).
    #[error(transparent)]
    Store(#[from] crate::sink::store::StoreError),
    /// A JSON file did not parse.
    #[error("{path}: {message}. Fix: restore it from a backup, or move it away")]
    Json {
        /// The file, under the output root.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// No block of theme ids could be claimed ([`super::ids`]): every try
    /// lost its race, or the id space is used up.
    #[error("{path}: no block of theme ids could be claimed after {tries} tries. Fix: check that the store allows create-if-absent writes (S3 If-None-Match), or start a new output root if ids passed 2^31")]
    NoIds {
        /// The claim file last tried, under the output root.
        path: String,
        /// Claims tried.
        tries: usize,
    },
    /// A Parquet file could not be encoded.
    #[error("writing {path}: {message}")]
    Parquet {
        /// The file, under the output root.
        path: String,
        /// The writer's error.
        message: String,
    },
}

/// The theme files of one output root (a folder or a bucket).
#[derive(Debug, Clone)]
pub struct ThemeStore {
    store: OutputStore,
}

/// Writes one record batch as the Parquet object `rel`, whole (a reader
/// sees the old file or the new one, never half of one).
pub fn write_parquet(
    store: &OutputStore,
    rel: &str,
    batch: &RecordBatch,
) -> Result<(), StoreError> {
    let bytes = crate::sink::files::parquet_bytes(batch).map_err(|e| StoreError::Parquet {
        path: rel.to_string(),
        message: e.to_string(),
    })?;
    store.put(rel, bytes)?;
    Ok(())
}

impl ThemeStore {
    /// The files under `themes/` of `store`.
    pub fn new(store: OutputStore) -> Self {
        Self { store }
    }

    /// The output store.
    pub fn output(&self) -> &OutputStore {
        &self.store
    }

    /// `themes/assignments/v<N>.parquet`: each comment's theme under version N.
    pub fn assignments_path(v: u64) -> String {
        format!("themes/assignments/v{v:06}.parquet")
    }

    /// `themes/versions/v<N>.json`.
    pub fn version_path(v: u64) -> String {
        format!("{VERSIONS}/v{v:06}.json")
    }

    /// The newest model version written by a refit.
    pub fn latest_version(&self) -> Result<Option<u64>, StoreError> {
        let mut best = None;
        for l in self.store.list(VERSIONS)? {
            let name = l.path.rsplit('/').next().unwrap_or_default();
            if let Some(v) = name
                .strip_prefix('v')
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                best = best.max(Some(v));
            }
        }
        Ok(best)
    }

    fn read_model(&self, rel: &str) -> Result<Option<ThemeModel>, StoreError> {
        let Some(bytes) = self.store.get_opt(rel)? else {
            return Ok(None);
        };
        ThemeModel::from_json(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Json {
                path: rel.to_string(),
                message: e.to_string(),
            })
    }

    /// `themes/state.json` as an instance last saved it (`None`: none yet).
    pub fn read_state(&self) -> Result<Option<ThemeModel>, StoreError> {
        self.read_model(STATE)
    }

    /// What identifies `themes/state.json`'s current content without
    /// reading it (see [`Self::curation_stamp`]).
    pub fn state_stamp(&self) -> Result<Option<String>, StoreError> {
        self.stamp(STATE)
    }

    /// Whether the root holds a model: a job's state or a refit's version.
    pub fn has_model(&self) -> Result<bool, StoreError> {
        Ok(self.store.exists(STATE)? || self.latest_version()?.is_some())
    }

    /// The model a job or a command should use: `state.json` (else a fresh
    /// one), brought up to the newest version, with the curation applied.
    pub fn load_model(&self, cfg: &ThemesConfig, dim: usize) -> Result<ThemeModel, StoreError> {
        let mut m = match self.read_model(STATE)? {
            Some(m) => m,
            None => ThemeModel::new(cfg.clone(), dim),
        };
        self.refresh(&mut m)?;
        Ok(m)
    }

    /// Takes over a version newer than the model's, then applies the curation.
    /// Returns whether a newer version was adopted.
    pub fn refresh(&self, m: &mut ThemeModel) -> Result<bool, StoreError> {
        let mut adopted = false;
        if let Some(v) = self.latest_version()? {
            if v > m.version() {
                if let Some(newer) = self.read_model(&Self::version_path(v))? {
                    m.adopt(newer);
                    adopted = true;
                    tracing::info!(version = v, "themes: took over a refitted model version");
                }
            }
        }
        m.apply(&self.curation()?);
        Ok(adopted)
    }

    /// What identifies the curation file's current content without reading
    /// it (its entity tag, time and size; `None`: there is none), so a job
    /// rereads it only when it changed.
    pub fn curation_stamp(&self) -> Result<Option<String>, StoreError> {
        self.stamp(CURATION)
    }

    fn stamp(&self, rel: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.head(rel)?.map(|l| {
            format!(
                "{} {} {}",
                l.e_tag.unwrap_or_default(),
                l.modified.timestamp_nanos_opt().unwrap_or_default(),
                l.size
            )
        }))
    }

    /// Analysts' renames and merges (empty when there are none).
    pub fn curation(&self) -> Result<Curation, StoreError> {
        match self.store.get_opt(CURATION)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Json {
                path: CURATION.to_string(),
                message: e.to_string(),
            }),
            None => Ok(Curation::default()),
        }
    }

    fn put_json(&self, rel: &str, value: &impl serde::Serialize) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
            path: rel.to_string(),
            message: e.to_string(),
        })?;
        self.store.put(rel, bytes)?;
        Ok(())
    }

    /// Saves the curation, whole.
    pub fn save_curation(&self, c: &Curation) -> Result<(), StoreError> {
        self.put_json(CURATION, c)
    }

    fn put_model(&self, rel: &str, m: &ThemeModel) -> Result<(), StoreError> {
        let bytes = m.to_json().map_err(|e| StoreError::Json {
            path: rel.to_string(),
            message: e.to_string(),
        })?;
        self.store.put(rel, bytes)?;
        Ok(())
    }

    /// Saves the job's state, whole.
    pub fn save_state(&self, m: &ThemeModel) -> Result<(), StoreError> {
        self.put_model(STATE, m)
    }

    /// Writes a new model version (a refit's result); returns its path under
    /// the root.
    pub fn write_version(&self, m: &ThemeModel) -> Result<String, StoreError> {
        let rel = Self::version_path(m.version());
        self.put_model(&rel, m)?;
        Ok(rel)
    }

    /// Writes a refit's summary beside its version.
    pub fn write_summary(
        &self,
        version: u64,
        summary: &impl serde::Serialize,
    ) -> Result<(), StoreError> {
        self.put_json(&format!("{VERSIONS}/v{version:06}.refit.json"), summary)
    }

    /// Writes `themes/themes.parquet`: one row per theme, and one per
    /// merged-away id pointing at the theme that took it in.
    pub fn write_snapshot(&self, m: &ThemeModel) -> Result<(), StoreError> {
        let batch = snapshot_batch(m).map_err(|e| StoreError::Parquet {
            path: SNAPSHOT.to_string(),
            message: e.to_string(),
        })?;
        write_parquet(&self.store, SNAPSHOT, &batch)
    }

    /// The snapshot's bytes (`None` when there is none or it cannot be
    /// read: readers then show the labels the rows were written with).
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        match self.store.get_opt(SNAPSHOT) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable theme snapshot; using the labels in comments/");
                None
            }
        }
    }
}

/// A builder of the `label_by_language` column.
fn language_map() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// `(name, type, meaning)` of the `themes/themes.parquet` columns.
pub fn snapshot_columns() -> Vec<(&'static str, DataType, &'static str)> {
    vec![
        (
            "theme_id",
            DataType::Int32,
            "Theme id (as in `comments.theme_id`)",
        ),
        (
            "label",
            DataType::Utf8,
            "The label to show: the analyst's when renamed, else the phrase its texts hold (c-TF-IDF over 1-4 word phrases, stemmed)",
        ),
        (
            "keywords",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            "Up to three keywords beside the label (runner-up phrases by maximal marginal relevance)",
        ),
        (
            "label_by_language",
            language_map().finish().data_type().clone(),
            "The label phrase in each language of its texts (`en`, `ru`), when it has more than one; else empty",
        ),
        ("curated", DataType::Boolean, "An analyst renamed it"),
        (
            "comments",
            DataType::Int64,
            "Comments that joined it (0 for a merged-away id)",
        ),
        (
            "merged_into",
            DataType::Int32,
            "Set for an id merged into another theme: read its comments as that theme",
        ),
        (
            "exemplars",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            "Up to three representative comments",
        ),
        (
            "target",
            DataType::Utf8,
            "With `themes.unit = \"mention\"`: the target its mentions are about (join `mentions` on `theme_id`); null for a theme of whole comments",
        ),
        (
            "model_version",
            DataType::Int64,
            "Model version (`verbatim themes refit` makes new ones)",
        ),
    ]
}

fn snapshot_batch(m: &ThemeModel) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut ids = Vec::new();
    let mut labels = Vec::new();
    let mut curated = Vec::new();
    let mut counts = Vec::new();
    let mut merged = Vec::new();
    let mut targets: Vec<Option<String>> = Vec::new();
    let mut ex = ListBuilder::new(StringBuilder::new());
    let mut kws = ListBuilder::new(StringBuilder::new());
    let mut by_lang = language_map();
    for t in m.themes() {
        ids.push(t.id as i32);
        targets.push(t.target.clone());
        labels.push(t.shown_label().to_string());
        for k in &t.keywords {
            kws.values().append_value(k);
        }
        kws.append(true);
        // An analyst's label stands alone.
        if t.curated_label.is_none() {
            for (lang, l) in &t.label_by_language {
                by_lang.keys().append_value(lang);
                by_lang.values().append_value(l);
            }
        }
        by_lang.append(true)?;
        curated.push(t.curated_label.is_some());
        counts.push(t.count as i64);
        merged.push(None);
        for (_, text) in &t.exemplars {
            ex.values().append_value(text);
        }
        ex.append(true);
    }
    for &from in m.aliases().keys() {
        let into = m.resolve(from);
        ids.push(from as i32);
        labels.push(m.label(into).unwrap_or("").to_string());
        curated.push(false);
        counts.push(0);
        merged.push(Some(into as i32));
        targets.push(m.theme(into).and_then(|t| t.target.clone()));
        ex.append(true);
        kws.append(true);
        by_lang.append(true)?;
    }
    let n = ids.len();
    let schema = Arc::new(Schema::new(
        snapshot_columns()
            .into_iter()
            .map(|(name, t, _)| Field::new(name, t, matches!(name, "merged_into" | "target")))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(ids)),
        Arc::new(StringArray::from(labels)),
        Arc::new(kws.finish()),
        Arc::new(by_lang.finish()),
        Arc::new(BooleanArray::from(curated)),
        Arc::new(Int64Array::from(counts)),
        Arc::new(Int32Array::from(merged)),
        Arc::new(ex.finish()),
        Arc::new(StringArray::from(targets)),
        Arc::new(Int64Array::from(vec![m.version() as i64; n])),
    ];
    RecordBatch::try_new(schema, cols)
}

/// The record batches of a snapshot's bytes; none, with a warning, when
/// they cannot be read (readers then show the labels the rows carry).
fn snapshot_batches(snapshot: &[u8]) -> Vec<RecordBatch> {
    let bytes = bytes::Bytes::copy_from_slice(snapshot);
    match ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()) {
        Ok(reader) => reader.flatten().collect(),
        Err(e) => {
            tracing::warn!(file = SNAPSHOT, error = %e, "unreadable theme snapshot; using the labels in comments/");
            Vec::new()
        }
    }
}

/// What the snapshot says about a theme beyond its label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotTheme {
    /// Keywords beside the label.
    pub keywords: Vec<String>,
    /// The target its mentions are about; `None`: whole comments.
    pub target: Option<String>,
    /// Its label per language, for themes labelled in more than one (an
    /// analyst's label stands alone).
    pub by_language: std::collections::BTreeMap<String, String>,
}

/// Each theme's keywords, target and labels per language in a snapshot's
/// bytes (none for a merged-away id, or when the snapshot cannot be read;
/// no keywords when it predates them).
pub fn snapshot_themes(snapshot: &[u8]) -> HashMap<i32, SnapshotTheme> {
    let mut out = HashMap::new();
    for b in snapshot_batches(snapshot) {
        let ids = b
            .column_by_name("theme_id")
            .and_then(|c| c.as_primitive_opt::<Int32Type>());
        let Some(ids) = ids else { continue };
        let kws = b
            .column_by_name("keywords")
            .and_then(|c| c.as_list_opt::<i32>());
        let targets = b
            .column_by_name("target")
            .and_then(|c| c.as_string_opt::<i32>());
        let merged = b
            .column_by_name("merged_into")
            .and_then(|c| c.as_primitive_opt::<Int32Type>());
        let maps = b
            .column_by_name("label_by_language")
            .and_then(|c| c.as_map_opt());
        for i in 0..b.num_rows() {
            if merged.is_some_and(|m| !m.is_null(i)) {
                continue;
            }
            let by_language = maps
                .filter(|m| !m.is_null(i))
                .and_then(|m| {
                    let entry = m.value(i);
                    let k = entry.column(0).as_string_opt::<i32>()?;
                    let v = entry.column(1).as_string_opt::<i32>()?;
                    Some(
                        (0..k.len())
                            .filter(|&j| !k.is_null(j) && !v.is_null(j))
                            .map(|j| (k.value(j).to_string(), v.value(j).to_string()))
                            .collect(),
                    )
                })
                .unwrap_or_default();
            let keywords = kws
                .and_then(|k| {
                    let list = k.value(i);
                    let words = list.as_string_opt::<i32>()?;
                    Some(words.iter().flatten().map(str::to_string).collect())
                })
                .unwrap_or_default();
            let target = targets
                .filter(|t| !t.is_null(i))
                .map(|t| t.value(i).to_string());
            out.insert(
                ids.value(i),
                SnapshotTheme {
                    keywords,
                    target,
                    by_language,
                },
            );
        }
    }
    out
}

/// `theme id -> (id it now stands for, label)` from the bytes of
/// `themes/themes.parquet`.
pub fn snapshot_labels(snapshot: &[u8]) -> HashMap<i32, (i32, String)> {
    let mut out = HashMap::new();
    for b in snapshot_batches(snapshot) {
        let ids = b
            .column_by_name("theme_id")
            .and_then(|c| c.as_primitive_opt::<Int32Type>());
        let into = b
            .column_by_name("merged_into")
            .and_then(|c| c.as_primitive_opt::<Int32Type>());
        let labels = b
            .column_by_name("label")
            .and_then(|c| c.as_string_opt::<i32>());
        if let (Some(ids), Some(into), Some(labels)) = (ids, into, labels) {
            for i in 0..b.num_rows() {
                let to = if into.is_null(i) {
                    ids.value(i)
                } else {
                    into.value(i)
                };
                out.insert(ids.value(i), (to, labels.value(i).to_string()));
            }
        }
    }
    out
}

/// Applies analysts' curation, as the themes/ snapshot (`snapshot`, its
/// bytes; `None`: there is none) has it, to themes read from `comments/`
/// or `mentions/` (each row's `(theme_id, label)`): merged ids count as the
/// theme that took them in, and every theme shows today's label, in
/// `language` where the theme has a label in it (`None`: the label shown
/// everywhere, in the language most of its texts use).
pub fn apply_curation<'a>(
    snapshot: Option<&[u8]>,
    language: Option<&str>,
    themes: impl IntoIterator<Item = &'a mut Option<(i32, String)>>,
) {
    let Some(snapshot) = snapshot else {
        return;
    };
    let curated = snapshot_labels(snapshot);
    let in_language = match language {
        Some(_) => snapshot_themes(snapshot),
        None => HashMap::new(),
    };
    for (id, l) in themes.into_iter().flatten() {
        if let Some((into, label)) = curated.get(id) {
            *id = *into;
            l.clone_from(label);
        }
        if let Some(label) = language.and_then(|lang| in_language.get(id)?.by_language.get(lang)) {
            l.clone_from(label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlp::encoder::normalize;

    /// A theme whose texts are half English and half Russian is shown in
    /// the language asked for, and in its main language otherwise; merged
    /// ids follow it.
    #[test]
    fn curation_shows_a_theme_in_the_language_asked_for() {
        let dim = 8;
        let mut m = ThemeModel::new(
            ThemesConfig {
                cluster_every: 12,
                ..ThemesConfig::default()
            },
            dim,
        );
        for i in 0..12 {
            let mut v = vec![0.01 * i as f32; dim];
            v[0] = 1.0;
            normalize(&mut v);
            let text = if i % 2 == 0 {
                "the wifi keeps dropping in the room"
            } else {
                "Wi-Fi в номере постоянно отключается"
            };
            m.assign(&v, text);
        }
        assert_eq!(m.themes().len(), 1, "{:?}", m.themes());
        let id = m.themes()[0].id as i32;
        let dir = tempfile::tempdir().unwrap();
        let store = ThemeStore::new(OutputStore::local(dir.path()).unwrap());
        store.write_snapshot(&m).unwrap();
        let bytes = std::fs::read(dir.path().join(SNAPSHOT)).unwrap();
        let themes = snapshot_themes(&bytes);
        let by: HashMap<i32, _> = themes
            .iter()
            .map(|(id, t)| (*id, t.by_language.clone()))
            .collect();
        assert_eq!(by[&id].keys().collect::<Vec<_>>(), ["en", "ru"], "{by:?}");
        let shown = |language: Option<&str>| {
            let mut rows = [Some((id, "old".to_string())), None];
            apply_curation(Some(&bytes), language, rows.iter_mut());
            rows[0].clone().unwrap().1
        };
        assert_eq!(shown(Some("ru")), by[&id]["ru"]);
        assert!(shown(Some("ru")).contains("номер") || shown(Some("ru")).contains("отключ"));
        assert_eq!(shown(Some("en")), by[&id]["en"]);
        assert_eq!(shown(None), m.themes()[0].shown_label());
        assert_eq!(shown(Some("de")), m.themes()[0].shown_label());
        assert_eq!(themes[&id].target, None, "whole comments");
        assert_eq!(themes[&id].keywords, m.themes()[0].keywords);
    }
}
