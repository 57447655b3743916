//! Where the theme model lives under `<output.root>/themes/`:
//!
//! ```text
//! themes/state.json          the stream job's model (saved before every file commit)
//! themes/versions/v000002.json  model versions written by `verbatim themes refit`
//! themes/curation.json       analysts' renames and merges (`verbatim themes rename|merge`)
//! themes/themes.parquet      a snapshot for SQL: one row per theme id
//! ```
//!
//! A job starts from `state.json`, takes over any newer version, and applies
//! the curation; it checks for both again before each commit, so a refit or
//! a rename reaches a running job without a restart.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::online::{Curation, ThemeModel};
use crate::config::ThemesConfig;
use crate::sink::read::Row;

/// Errors reading or writing the theme files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A JSON file did not parse.
    #[error("{path}: {message}. Fix: restore it from a backup, or move it away")]
    Json {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The snapshot could not be written.
    #[error("writing {path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        message: String,
    },
}

/// The theme files of one output root.
#[derive(Debug, Clone)]
pub struct ThemeStore {
    dir: PathBuf,
}

/// Writes one record batch as a Parquet file at `path`, atomically.
pub fn write_parquet_atomic(path: &Path, batch: &RecordBatch) -> Result<(), StoreError> {
    let perr = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let bytes = crate::sink::files::parquet_bytes(batch).map_err(|e| perr(&e))?;
    crate::sink::files::write_atomic(path, &bytes).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl ThemeStore {
    /// The files under `<root>/themes/`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("themes"),
        }
    }

    /// `themes/state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `themes/curation.json`.
    pub fn curation_path(&self) -> PathBuf {
        self.dir.join("curation.json")
    }

    /// `themes/themes.parquet`.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join("themes.parquet")
    }

    /// `themes/assignments/v<N>.parquet`: each comment's theme under version N.
    pub fn assignments_path(&self, v: u64) -> PathBuf {
        self.dir
            .join("assignments")
            .join(format!("v{v:06}.parquet"))
    }

    /// `themes/versions/v<N>.json`.
    pub fn version_path(&self, v: u64) -> PathBuf {
        self.dir.join("versions").join(format!("v{v:06}.json"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The newest model version written by a refit.
    pub fn latest_version(&self) -> Result<Option<u64>, StoreError> {
        let dir = self.dir.join("versions");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut best = None;
        for e in rd {
            let e = e.map_err(Self::io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
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

    fn read_model(path: &Path) -> Result<ThemeModel, StoreError> {
        ThemeModel::load(path).map_err(|e| StoreError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The model a job or a command should use: `state.json` (else a fresh
    /// one), brought up to the newest version, with the curation applied.
    pub fn load_model(&self, cfg: &ThemesConfig, dim: usize) -> Result<ThemeModel, StoreError> {
        let state = self.state_path();
        let mut m = if state.is_file() {
            Self::read_model(&state)?
        } else {
            ThemeModel::new(cfg.clone(), dim)
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
                let newer = Self::read_model(&self.version_path(v))?;
                m.adopt(newer);
                adopted = true;
                tracing::info!(version = v, "themes: took over a refitted model version");
            }
        }
        m.apply(&self.curation()?);
        Ok(adopted)
    }

    /// When the curation file last changed (`None`: there is none).
    pub fn curation_changed_at(&self) -> Option<SystemTime> {
        std::fs::metadata(self.curation_path())
            .and_then(|m| m.modified())
            .ok()
    }

    /// Analysts' renames and merges (empty when there are none).
    pub fn curation(&self) -> Result<Curation, StoreError> {
        let path = self.curation_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Json {
                path: path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Curation::default()),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }

    /// Saves the curation atomically.
    pub fn save_curation(&self, c: &Curation) -> Result<(), StoreError> {
        let path = self.curation_path();
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| StoreError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::sink::files::write_atomic(&path, &bytes).map_err(Self::io(&path))
    }

    /// Saves the job's state.
    pub fn save_state(&self, m: &ThemeModel) -> Result<(), StoreError> {
        let path = self.state_path();
        m.save(&path).map_err(Self::io(&path))
    }

    /// Writes a new model version (a refit's result); returns its path.
    pub fn write_version(&self, m: &ThemeModel) -> Result<PathBuf, StoreError> {
        let path = self.version_path(m.version());
        m.save(&path).map_err(Self::io(&path))?;
        Ok(path)
    }

    /// Writes `themes/themes.parquet`: one row per theme, and one per
    /// merged-away id pointing at the theme that took it in.
    pub fn write_snapshot(&self, m: &ThemeModel) -> Result<(), StoreError> {
        let path = self.snapshot_path();
        let perr = |e: &dyn std::fmt::Display| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        };
        let batch = snapshot_batch(m).map_err(|e| perr(&e))?;
        write_parquet_atomic(&path, &batch)
    }
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
            "The label to show: the analyst's when renamed, else c-TF-IDF",
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
    let mut ex = ListBuilder::new(StringBuilder::new());
    for t in m.themes() {
        ids.push(t.id as i32);
        labels.push(t.shown_label().to_string());
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
        ex.append(true);
    }
    let n = ids.len();
    let schema = Arc::new(Schema::new(
        snapshot_columns()
            .into_iter()
            .map(|(name, t, _)| Field::new(name, t, name == "merged_into"))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(ids)),
        Arc::new(StringArray::from(labels)),
        Arc::new(BooleanArray::from(curated)),
        Arc::new(Int64Array::from(counts)),
        Arc::new(Int32Array::from(merged)),
        Arc::new(ex.finish()),
        Arc::new(Int64Array::from(vec![m.version() as i64; n])),
    ];
    RecordBatch::try_new(schema, cols)
}

/// `theme id -> (id it now stands for, label)` from `themes/themes.parquet`
/// (empty when there is none or it cannot be read: the report then shows
/// the labels the rows were written with).
fn curated_labels(root: &Path) -> HashMap<i32, (i32, String)> {
    let mut out = HashMap::new();
    let path = ThemeStore::new(root).snapshot_path();
    let Ok(f) = File::open(&path) else {
        return out;
    };
    let Ok(reader) = ParquetRecordBatchReaderBuilder::try_new(f).and_then(|b| b.build()) else {
        tracing::warn!(file = %path.display(), "unreadable theme snapshot; using the labels in comments/");
        return out;
    };
    for b in reader.flatten() {
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

/// Applies analysts' curation, as the themes/ snapshot has it, to rows read
/// from `comments/`: merged ids count as the theme that took them in,
/// renamed themes show their new label.
pub fn apply_curation(root: &Path, rows: &mut [Row]) {
    let curated = curated_labels(root);
    for r in rows {
        if let Some((id, l)) = &mut r.theme {
            if let Some((into, label)) = curated.get(id) {
                *id = *into;
                l.clone_from(label);
            }
        }
    }
}
