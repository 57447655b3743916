//! Reading history with the newest refit's themes.
//!
//! A refit regroups every stored comment (and mention) and writes where
//! each one now belongs to `themes/assignments/v<N>.parquet`; the ids in
//! `comments/` and `mentions/` stay as the stream wrote them. The report
//! and `theme_daily/` read the newest assignment for the rows it covers
//! (what the refit made of them) and the written ids for rows that came
//! after it (written by a job that had taken the refitted model over).
//! Measured on banking77 (README, "Clauses, translations and arrival
//! order"): the refit's assignment scores NMI 0.72-0.74 against the
//! intents where the written ids, read through its merges, score
//! 0.69-0.71.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;

use crate::sink::read::{batches_of, MentionRow, ReadError, Row};

/// `themes/assignments/` under an output root.
const FOLDER: &str = "themes/assignments";

/// The columns of `themes/assignments/v<N>.parquet`: `comment_id`,
/// `theme_id` (null: the refit left it without one), and for a mention its
/// `target` and `span_start` (null for a whole comment).
pub(crate) fn schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("comment_id", DataType::Utf8, false),
        Field::new("theme_id", DataType::Int32, true),
        Field::new("target", DataType::Utf8, true),
        Field::new("span_start", DataType::Int32, true),
    ]))
}

/// Which item: `(comment id, target, span start)`, target and span start
/// `None` for a whole comment.
type Key = (String, Option<String>, Option<i32>);

/// One mention's theme as written and as the refit gave it (`None`: no
/// theme).
type WrittenAndNow = (Option<i32>, Option<i32>);

/// One refit's theme for each item it regrouped.
#[derive(Debug, Clone, Default)]
pub struct Assignments {
    /// The model version that wrote it.
    pub version: u64,
    /// `(comment id, target, span start)` → theme id (`None`: the refit
    /// left it without a theme); target and span start are `None` for a
    /// whole comment.
    themes: HashMap<Key, Option<i32>>,
}

impl Assignments {
    /// The newest `themes/assignments/v<N>.parquet` under the local `root`
    /// (`None` when no refit wrote one).
    pub fn read_latest(root: &Path) -> Result<Option<Self>, ReadError> {
        let dir = root.join(FOLDER);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut newest: Option<(u64, std::path::PathBuf)> = None;
        for e in entries.flatten() {
            let name = e.file_name();
            let version = name
                .to_str()
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.strip_suffix(".parquet"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(v) = version {
                if newest.as_ref().is_none_or(|(best, _)| v > *best) {
                    newest = Some((v, e.path()));
                }
            }
        }
        let Some((version, path)) = newest else {
            return Ok(None);
        };
        let mut themes = HashMap::new();
        for b in batches_of(&path, None)? {
            let text = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_string_opt::<i32>())
            };
            let int = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<Int32Type>())
            };
            let (Some(ids), Some(theme)) = (text("comment_id"), int("theme_id")) else {
                return Err(ReadError::Parquet {
                    path,
                    message: "no comment_id or theme_id column".into(),
                });
            };
            let (target, start) = (text("target"), int("span_start"));
            for i in 0..b.num_rows() {
                let key = (
                    ids.value(i).to_string(),
                    target
                        .filter(|c| !c.is_null(i))
                        .map(|c| c.value(i).to_string()),
                    start.filter(|c| !c.is_null(i)).map(|c| c.value(i)),
                );
                themes.insert(key, (!theme.is_null(i)).then(|| theme.value(i)));
            }
        }
        Ok(Some(Self { version, themes }))
    }

    /// An assignment from `(comment id, target, span start, theme)` rows.
    #[cfg(test)]
    fn from_rows(
        version: u64,
        rows: impl IntoIterator<Item = (String, Option<String>, Option<i32>, Option<i32>)>,
    ) -> Self {
        Self {
            version,
            themes: rows
                .into_iter()
                .map(|(id, target, start, theme)| ((id, target, start), theme))
                .collect(),
        }
    }

    /// Gives the rows it covers their theme under it. A mention is found by
    /// its comment, target and start; a whole comment by its id; a comment
    /// whose theme is its primary mention's (themes per mention) takes that
    /// mention's new theme. Rows it does not cover keep the theme they were
    /// written with. A row it changes takes the label some row was written
    /// with under its new id (empty if none was): the snapshot's labels go
    /// on with [`super::store::apply_curation`], which callers run next (it
    /// also resolves merged ids).
    pub fn apply(&self, comments: &mut [Row], mentions: &mut [MentionRow]) {
        let mut labels: HashMap<i32, String> = HashMap::new();
        for (id, l) in comments
            .iter()
            .filter_map(|c| c.theme.as_ref())
            .chain(mentions.iter().filter_map(|m| m.theme.as_ref()))
        {
            labels.entry(*id).or_insert_with(|| l.clone());
        }
        let label = |id: i32| (id, labels.get(&id).cloned().unwrap_or_default());
        // Each comment's mentions: the theme written, the theme now.
        let mut by_comment: HashMap<&str, Vec<WrittenAndNow>> = HashMap::new();
        let mut now = Vec::with_capacity(mentions.len());
        for m in mentions.iter() {
            let key = (m.comment_id.clone(), Some(m.target.clone()), m.span_start);
            let new = self.themes.get(&key).copied();
            if let Some(t) = new {
                by_comment
                    .entry(m.comment_id.as_str())
                    .or_default()
                    .push((m.theme.as_ref().map(|t| t.0), t));
            }
            now.push(new);
        }
        let mut set = Vec::with_capacity(comments.len());
        for c in comments.iter() {
            let whole = self.themes.get(&(c.id.clone(), None, None)).copied();
            let primary = || {
                let written = c.theme.as_ref().map(|t| t.0)?;
                by_comment
                    .get(c.id.as_str())?
                    .iter()
                    .find(|(w, _)| *w == Some(written))
                    .map(|(_, t)| *t)
            };
            set.push(whole.or_else(primary));
        }
        for (c, t) in comments.iter_mut().zip(set) {
            if let Some(t) = t {
                c.theme = t.map(label);
            }
        }
        for (m, t) in mentions.iter_mut().zip(now) {
            if let Some(t) = t {
                m.theme = t.map(label);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(id: &str, theme: Option<i32>) -> Row {
        Row {
            id: id.into(),
            theme: theme.map(|t| (t, format!("label {t}"))),
            ..Row::default()
        }
    }

    fn mention(id: &str, target: &str, start: i32, theme: Option<i32>) -> MentionRow {
        MentionRow {
            comment_id: id.into(),
            target: target.into(),
            span_start: Some(start),
            theme: theme.map(|t| (t, format!("label {t}"))),
            ..MentionRow::default()
        }
    }

    #[test]
    fn covered_rows_take_the_refit_theme_and_the_rest_keep_theirs() {
        let a = Assignments::from_rows(
            3,
            [
                ("a".into(), None, None, Some(5)),
                ("b".into(), None, None, None),
                // c: themes per mention; its primary was the product clause.
                ("c".into(), Some("staff".into()), Some(0), Some(20)),
                ("c".into(), Some("product".into()), Some(25), Some(21)),
            ],
        );
        let mut comments = vec![
            comment("a", Some(1)),
            comment("b", Some(2)),
            comment("c", Some(11)),
            comment("later", Some(5)),
        ];
        let mut mentions = vec![
            mention("c", "staff", 0, Some(10)),
            mention("c", "product", 25, Some(11)),
            mention("later", "product", 0, Some(5)),
        ];
        a.apply(&mut comments, &mut mentions);
        let ids: Vec<Option<i32>> = comments
            .iter()
            .map(|c| c.theme.as_ref().map(|t| t.0))
            .collect();
        assert_eq!(ids, [Some(5), None, Some(21), Some(5)]);
        // 5's label is the one it was written with; 20 and 21 had none.
        assert_eq!(
            comments[0].theme.as_ref().map(|t| t.1.as_str()),
            Some("label 5")
        );
        assert_eq!(comments[2].theme.as_ref().map(|t| t.1.as_str()), Some(""));
        assert_eq!(mentions[0].theme.as_ref().map(|t| t.1.as_str()), Some(""));
        assert_eq!(
            comments[3].theme.as_ref().map(|t| t.1.as_str()),
            Some("label 5")
        );
        let ids: Vec<Option<i32>> = mentions
            .iter()
            .map(|m| m.theme.as_ref().map(|t| t.0))
            .collect();
        assert_eq!(ids, [Some(20), Some(21), Some(5)]);
    }

    #[test]
    fn the_newest_file_is_read_and_a_root_without_one_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Assignments::read_latest(dir.path()).unwrap().is_none());
        let store = crate::themes::store::ThemeStore::new(
            crate::sink::store::OutputStore::local(dir.path()).unwrap(),
        );
        for (v, theme) in [(1u64, 4), (12, 9), (2, 5)] {
            let b = arrow::record_batch::RecordBatch::try_new(
                schema(),
                vec![
                    std::sync::Arc::new(arrow::array::StringArray::from(vec!["x", "y"])),
                    std::sync::Arc::new(arrow::array::Int32Array::from(vec![Some(theme), None])),
                    std::sync::Arc::new(arrow::array::StringArray::from(vec![None, Some("staff")])),
                    std::sync::Arc::new(arrow::array::Int32Array::from(vec![None, Some(3)])),
                ],
            )
            .unwrap();
            crate::themes::store::write_parquet(
                store.output(),
                &crate::themes::store::ThemeStore::assignments_path(v),
                &b,
            )
            .unwrap();
        }
        let a = Assignments::read_latest(dir.path()).unwrap().unwrap();
        assert_eq!((a.version, a.themes.len()), (12, 2));
        let mut c = vec![comment("x", Some(1))];
        let mut m = vec![mention("y", "staff", 3, Some(2))];
        a.apply(&mut c, &mut m);
        assert_eq!(c[0].theme.as_ref().map(|t| t.0), Some(9));
        assert_eq!(m[0].theme, None);
    }
}
