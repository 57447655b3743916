//! Reading the committed tables back: the offline commands' side of the
//! file layout this sink writes. Only committed files are read (hidden
//! in-progress files are skipped), so a reader never sees a range that is
//! not yet durable. The report and `theme_daily/` read `comments/` here.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

/// Errors reading the committed tables back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The output root has no `comments/` table.
    #[error("{0} has no comments/ folder: point --output-root at a folder the job wrote")]
    NoComments(PathBuf),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The PII patterns did not compile (a bug).
    #[error("PII patterns: {0}")]
    Redactor(String),
    /// A Parquet file could not be decoded.
    #[error("reading Parquet {path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        message: String,
    },
    /// The output store failed.
    #[error(transparent)]
    Store(Box<crate::sink::store::StoreError>),
}

impl From<crate::sink::store::StoreError> for ReadError {
    fn from(e: crate::sink::store::StoreError) -> Self {
        ReadError::Store(Box::new(e))
    }
}

/// One comment as the report and the theme tables read it from `comments/`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// `id`.
    pub id: String,
    /// `event_time`.
    pub event_time: DateTime<Utc>,
    /// `text` (PII already redacted by the job).
    pub text: String,
    /// `score`.
    pub score: Option<f64>,
    /// `channel`.
    pub channel: Option<String>,
    /// `staff_id`.
    pub staff_id: Option<String>,
    /// `location`.
    pub location: Option<String>,
    /// `language`.
    pub language: Option<String>,
    /// `sentiment` (null: not analysed).
    pub sentiment: Option<String>,
    /// `blames_staff`.
    pub blames_staff: bool,
    /// `blames_product`.
    pub blames_product: bool,
    /// A negative `process` aspect.
    pub blames_process: bool,
    /// Flags raised, with their evidence text.
    pub flags: Vec<(String, String)>,
    /// `theme_id`, `theme_label`.
    pub theme: Option<(i32, String)>,
    /// `customer_id` (hashed unless privacy said otherwise).
    pub customer_id: Option<String>,
    /// `repeat_of`: the same customer's earlier complaints about a target
    /// this one complains about (empty when none or not checked).
    pub repeat_of: Vec<String>,
}

impl Row {
    /// Whether the comment raised `flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }

    /// The evidence text of `flag`, if raised.
    pub fn evidence(&self, flag: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, t)| t.as_str())
    }
}

/// The columns [`read_comments`] reads from `comments/`.
const COLUMNS: [&str; 17] = [
    "id",
    "event_time",
    "text",
    "score",
    "channel",
    "staff_id",
    "location",
    "language",
    "sentiment",
    "blames_staff",
    "blames_product",
    "aspects",
    "flag_evidence",
    "theme_id",
    "theme_label",
    "customer_id",
    "repeat_of",
];

/// The committed `comments/` files whose `dt=` day is in the window, in
/// name order (temporary files are hidden and skipped).
pub fn committed_files(
    root: &Path,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Result<Vec<PathBuf>, ReadError> {
    if !root.join("comments").is_dir() {
        return Err(ReadError::NoComments(root.to_path_buf()));
    }
    committed_files_of(root, "comments", since, until)
}

/// The committed files of any table (`actions`, `responses`...) whose
/// `dt=` day is in the window, in name order; none when the table's folder
/// does not exist yet.
pub fn committed_files_of(
    root: &Path,
    table: &str,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Result<Vec<PathBuf>, ReadError> {
    let dir = root.join(table);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError::Io { path, source }
    };
    let mut files = Vec::new();
    for day in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let day = day.map_err(io(&dir))?;
        let name = day.file_name().to_string_lossy().into_owned();
        let Some(d) = name
            .strip_prefix("dt=")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if since.is_some_and(|s| d < s) || until.is_some_and(|u| d > u) {
            continue;
        }
        for f in std::fs::read_dir(day.path()).map_err(io(&day.path()))? {
            let f = f.map_err(io(&day.path()))?;
            let n = f.file_name().to_string_lossy().into_owned();
            // Committed files only: temporary ones are hidden.
            if n.ends_with(".parquet") && !n.starts_with('.') {
                files.push(f.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every record batch of one Parquet file.
pub fn file_batches(path: &Path) -> Result<Vec<RecordBatch>, ReadError> {
    batches_of(path, None)
}

/// Row `i` of a `list<string>` column (`None`: no such column, or null).
pub fn string_list(b: &RecordBatch, name: &str, i: usize) -> Option<Vec<String>> {
    let l = b.column_by_name(name)?.as_list_opt::<i32>()?;
    if l.is_null(i) {
        return None;
    }
    let v = l.value(i);
    let s = v.as_string_opt::<i32>()?;
    Some((0..s.len()).map(|j| s.value(j).to_string()).collect())
}

/// The record batches of one Parquet file, with only those of `columns`
/// the file has (`None`: every column).
/// The record batches of one Parquet file (only `columns`, when given).
pub(crate) fn batches_of(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, ReadError> {
    let perr = |e: &dyn std::fmt::Display| ReadError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(&e))?;
    if let Some(columns) = columns {
        let schema = b.parquet_schema();
        let fields = schema.root_schema().get_fields();
        let wanted: Vec<usize> = (0..fields.len())
            .filter(|&i| columns.contains(&fields[i].name()))
            .collect();
        let mask = ProjectionMask::roots(schema, wanted);
        b = b.with_projection(mask);
    }
    let reader = b.build().map_err(|e| perr(&e))?;
    reader.map(|b| b.map_err(|e| perr(&e))).collect()
}

/// One row of `mentions/` as the report reads it: a clause with its target,
/// polarity and theme, and the comment's staff id and location.
#[derive(Debug, Clone, Default)]
pub struct MentionRow {
    /// The comment's id.
    pub comment_id: String,
    /// The comment's `event_time`.
    pub event_time: DateTime<Utc>,
    /// The comment's staff id.
    pub staff_id: Option<String>,
    /// The comment's location.
    pub location: Option<String>,
    /// What the clause is about.
    pub target: String,
    /// negative, neutral or positive.
    pub polarity: String,
    /// `(theme_id, theme_label)`; `None` with whole-comment themes.
    pub theme: Option<(i32, String)>,
    /// The clause (PII redacted again on reading, as comments' texts are).
    pub text: String,
    /// `span_start`: where the clause starts in the comment (with
    /// `comment_id` and `target`, which mention this is).
    pub span_start: Option<i32>,
}

/// The columns [`read_mentions`] reads from `mentions/`.
const MENTION_COLUMNS: [&str; 10] = [
    "comment_id",
    "span_start",
    "event_time",
    "span_text",
    "staff_id",
    "location",
    "target",
    "polarity",
    "theme_id",
    "theme_label",
];

/// Reads every committed `mentions/` file whose `dt=` day is in the window
/// (none when the table does not exist), oldest comment first.
pub fn read_mentions(
    root: &Path,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Result<Vec<MentionRow>, ReadError> {
    let redactor =
        crate::nlp::redact::Redactor::new().map_err(|e| ReadError::Redactor(e.to_string()))?;
    let mut out = Vec::new();
    for path in committed_files_of(root, "mentions", since, until)? {
        for b in batches_of(&path, Some(&MENTION_COLUMNS))? {
            let text = |name: &str, i: usize| -> Option<String> {
                let s = b.column_by_name(name)?.as_string_opt::<i32>()?;
                (!s.is_null(i)).then(|| s.value(i).to_string())
            };
            let ids = b
                .column_by_name("theme_id")
                .and_then(|c| c.as_primitive_opt::<Int32Type>());
            let times = b
                .column_by_name("event_time")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            let starts = b
                .column_by_name("span_start")
                .and_then(|c| c.as_primitive_opt::<Int32Type>());
            for i in 0..b.num_rows() {
                let theme = ids
                    .filter(|c| !c.is_null(i))
                    .map(|c| (c.value(i), text("theme_label", i).unwrap_or_default()));
                out.push(MentionRow {
                    comment_id: text("comment_id", i).unwrap_or_default(),
                    event_time: times
                        .filter(|c| !c.is_null(i))
                        .and_then(|c| DateTime::from_timestamp_micros(c.value(i)))
                        .unwrap_or_default(),
                    staff_id: text("staff_id", i),
                    location: text("location", i),
                    target: text("target", i).unwrap_or_default(),
                    polarity: text("polarity", i).unwrap_or_default(),
                    theme,
                    text: text("span_text", i)
                        .map(|t| redactor.redact(&t).0.into_owned())
                        .unwrap_or_default(),
                    span_start: starts.filter(|c| !c.is_null(i)).map(|c| c.value(i)),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        a.event_time
            .cmp(&b.event_time)
            .then_with(|| a.comment_id.cmp(&b.comment_id))
    });
    Ok(out)
}

/// Reads every committed `comments/` file whose `dt=` day is in the window.
pub fn read_comments(
    root: &Path,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Result<Vec<Row>, ReadError> {
    let files = committed_files(root, since, until)?;
    // Texts were redacted by the job when `privacy.redact_pii` was on; the
    // report redacts again, so a page never shows PII whatever the job did.
    let redactor =
        crate::nlp::redact::Redactor::new().map_err(|e| ReadError::Redactor(e.to_string()))?;
    let mut rows = Vec::new();
    for path in files {
        for batch in batches_of(&path, Some(&COLUMNS))? {
            rows.extend(rows_of(&batch).into_iter().map(|mut r| {
                if let (std::borrow::Cow::Owned(clean), _) = redactor.redact(&r.text) {
                    r.text = clean;
                }
                for (_, evidence) in &mut r.flags {
                    if let (std::borrow::Cow::Owned(clean), _) = redactor.redact(evidence) {
                        *evidence = clean;
                    }
                }
                r
            }));
        }
    }
    // Theme labels drift as themes grow: use each theme's latest label.
    let mut labels: HashMap<i32, (DateTime<Utc>, String)> = HashMap::new();
    for r in &rows {
        if let Some((id, l)) = &r.theme {
            let e = labels.entry(*id).or_insert((r.event_time, l.clone()));
            if r.event_time >= e.0 {
                *e = (r.event_time, l.clone());
            }
        }
    }
    for r in &mut rows {
        if let Some((id, l)) = &mut r.theme {
            if let Some((_, latest)) = labels.get(id) {
                l.clone_from(latest);
            }
        }
    }
    rows.sort_by(|a, b| a.event_time.cmp(&b.event_time).then(a.id.cmp(&b.id)));
    Ok(rows)
}

fn rows_of(b: &RecordBatch) -> Vec<Row> {
    let text = |name: &str, i: usize| -> Option<String> {
        let c = b.column_by_name(name)?;
        let s = c.as_string_opt::<i32>()?;
        (!s.is_null(i)).then(|| s.value(i).to_string())
    };
    let boolean = |name: &str, i: usize| -> bool {
        b.column_by_name(name)
            .and_then(|c| c.as_boolean_opt().map(|a| !a.is_null(i) && a.value(i)))
            .unwrap_or(false)
    };
    let times = b
        .column_by_name("event_time")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    let score = b
        .column_by_name("score")
        .and_then(|c| c.as_primitive_opt::<Float64Type>());
    let theme_id = b
        .column_by_name("theme_id")
        .and_then(|c| c.as_primitive_opt::<Int32Type>());
    let theme_label = b.column_by_name("theme_label").is_some();
    (0..b.num_rows())
        .map(|i| {
            let mut flags = Vec::new();
            if let Some(l) = b
                .column_by_name("flag_evidence")
                .and_then(|c| c.as_list_opt::<i32>())
            {
                if !l.is_null(i) {
                    let v = l.value(i);
                    if let Some(s) = v.as_struct_opt() {
                        let f = s
                            .column_by_name("flag")
                            .and_then(|c| c.as_string_opt::<i32>());
                        let t = s
                            .column_by_name("text")
                            .and_then(|c| c.as_string_opt::<i32>());
                        if let (Some(f), Some(t)) = (f, t) {
                            for j in 0..s.len() {
                                flags.push((f.value(j).to_string(), t.value(j).to_string()));
                            }
                        }
                    }
                }
            }
            let mut blames_process = false;
            if let Some(l) = b
                .column_by_name("aspects")
                .and_then(|c| c.as_list_opt::<i32>())
            {
                if !l.is_null(i) {
                    let v = l.value(i);
                    if let Some(s) = v.as_struct_opt() {
                        let t = s
                            .column_by_name("target")
                            .and_then(|c| c.as_string_opt::<i32>());
                        let p = s
                            .column_by_name("polarity")
                            .and_then(|c| c.as_string_opt::<i32>());
                        if let (Some(t), Some(p)) = (t, p) {
                            blames_process = (0..s.len())
                                .any(|j| t.value(j) == "process" && p.value(j) == "negative");
                        }
                    }
                }
            }
            let theme = theme_id.filter(|a| !a.is_null(i)).map(|a| {
                (
                    a.value(i),
                    if theme_label {
                        text("theme_label", i).unwrap_or_default()
                    } else {
                        String::new()
                    },
                )
            });
            Row {
                id: text("id", i).unwrap_or_default(),
                event_time: times
                    .filter(|t| !t.is_null(i))
                    .and_then(|t| DateTime::from_timestamp_micros(t.value(i)))
                    .unwrap_or_default(),
                text: text("text", i).unwrap_or_default(),
                score: score.filter(|s| !s.is_null(i)).map(|s| s.value(i)),
                channel: text("channel", i),
                staff_id: text("staff_id", i),
                location: text("location", i),
                language: text("language", i),
                sentiment: text("sentiment", i),
                blames_staff: boolean("blames_staff", i),
                blames_product: boolean("blames_product", i),
                blames_process,
                flags,
                theme,
                customer_id: text("customer_id", i),
                repeat_of: string_list(b, "repeat_of", i).unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_report_redacts_what_the_job_left() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::OutputConfig {
            root: dir.path().to_path_buf(),
            ..Default::default()
        };
        let mut sink = crate::sink::ParquetSink::open(
            &cfg,
            crate::sink::stamp_for(&Default::default()),
            crate::metrics::Metrics::new(),
        )
        .unwrap();
        let coords = crate::comment::SourceCoords {
            topic: "fb".into(),
            partition: 0,
            offset: 0,
            kafka_timestamp: None,
        };
        let t = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let mut c = crate::comment::Comment::new(
            coords,
            "c0".into(),
            "call me on 07700 900123 or bob@example.com".into(),
            t,
            t,
        );
        c.nlp.flags = Some(vec![crate::comment::Evidence {
            flag: "contact_requested".into(),
            start: 0,
            end: 23,
            text: "call me on 07700 900123".into(),
        }]);
        c.nlp.aspects = Some(vec![crate::comment::Aspect {
            target: "staff".into(),
            polarity: crate::comment::Polarity::Negative,
            confidence: 0.9,
            start: 0,
            end: 23,
            text: "call me on 07700 900123".into(),
            vector: None,
            theme: Some((4, "call back".into(), 0.9)),
        }]);
        let mut b = crate::batch::CommentBatch::default();
        b.comments.push(c);
        sink.write(&b).unwrap();
        sink.commit_all().unwrap();
        let mentions = read_mentions(dir.path(), None, None).unwrap();
        assert_eq!(mentions.len(), 1, "{mentions:?}");
        let m = &mentions[0];
        assert_eq!(
            (m.target.as_str(), m.polarity.as_str()),
            ("staff", "negative")
        );
        assert_eq!((m.comment_id.as_str(), m.event_time), ("c0", t));
        assert_eq!(m.theme, Some((4, "call back".to_string())));
        assert!(
            !m.text.contains("07700") && m.text.starts_with("call me"),
            "{m:?}"
        );
        let rows = read_comments(dir.path(), None, None).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            !rows[0].text.contains("07700") && !rows[0].text.contains("bob@"),
            "{}",
            rows[0].text
        );
        assert!(!rows[0].flags[0].1.contains("07700"), "{:?}", rows[0].flags);
    }
}
