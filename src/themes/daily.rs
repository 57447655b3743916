//! `verbatim themes daily`: the `theme_daily/` table, themes over time.
//!
//! One row per theme and day, from the theme's first day to the last day in
//! `comments/`, zero days included so trends are continuous: counts, the
//! sentiment mix, the share of staff / product / process complaints, the
//! trailing 7-day mean and a spike flag (at least 5 comments and three times
//! the mean of the 7 days before). Written as one file,
//! `theme_daily/theme_daily.parquet`, replaced atomically on every run.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Duration, NaiveDate};

use crate::sink::read::{read_comments, read_mentions, ReadError, Row};
use crate::themes::assignments::Assignments;
use crate::themes::store::{apply_curation, ThemeStore};

/// Errors of `verbatim themes daily`.
#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    /// The comments could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store could not be read or the table written.
    #[error(transparent)]
    Store(#[from] crate::themes::store::StoreError),
    /// The table could not be built.
    #[error("building {path}: {message}")]
    Write {
        /// The file, under the output root.
        path: String,
        /// What failed.
        message: String,
    },
}

/// Where the table is written, under the output root.
pub const DAILY: &str = "theme_daily/theme_daily.parquet";

/// `(name, type, meaning)` of every `theme_daily` column.
pub fn columns() -> Vec<(&'static str, DataType, &'static str)> {
    vec![
        ("theme_id", DataType::Int32, "Theme id"),
        ("day", DataType::Date32, "Event day (UTC)"),
        ("label", DataType::Utf8, "The theme's latest label"),
        (
            "comments",
            DataType::Int64,
            "Comments of the theme written that day",
        ),
        (
            "negative",
            DataType::Int64,
            "Of which negative (whole-comment sentiment)",
        ),
        ("neutral", DataType::Int64, "Of which neutral"),
        ("positive", DataType::Int64, "Of which positive"),
        (
            "staff_complaint_share",
            DataType::Float64,
            "Share with a negative staff aspect (0 on a day without comments)",
        ),
        (
            "product_complaint_share",
            DataType::Float64,
            "Share with a negative product aspect",
        ),
        (
            "process_complaint_share",
            DataType::Float64,
            "Share with a negative process aspect",
        ),
        (
            "trailing_mean_7d",
            DataType::Float64,
            "Mean daily comments over the 7 days before",
        ),
        (
            "spike",
            DataType::Boolean,
            "At least 5 comments and at least 3x `trailing_mean_7d`",
        ),
    ]
}

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    /// Theme id.
    pub theme_id: i32,
    /// Day.
    pub day: NaiveDate,
    /// Label.
    pub label: String,
    /// Comments.
    pub comments: u64,
    /// negative / neutral / positive.
    pub sentiment: [u64; 3],
    /// staff / product / process complaint shares.
    pub complaints: [f64; 3],
    /// Mean of the 7 days before.
    pub trailing_mean_7d: f64,
    /// Spike flag.
    pub spike: bool,
}

/// The table's rows from comments already read.
pub fn daily_rows(rows: &[Row]) -> Vec<DailyRow> {
    let Some(last) = rows.iter().map(|r| r.event_time.date_naive()).max() else {
        return Vec::new();
    };
    let mut by: BTreeMap<i32, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        if let Some((id, _)) = &r.theme {
            by.entry(*id).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for (id, members) in by {
        let first = members
            .iter()
            .map(|r| r.event_time.date_naive())
            .min()
            .unwrap_or(last);
        let span = (last - first).num_days() as usize + 1;
        let mut days: Vec<Vec<&Row>> = vec![Vec::new(); span];
        for r in &members {
            days[(r.event_time.date_naive() - first).num_days() as usize].push(r);
        }
        let counts: Vec<u64> = days.iter().map(|d| d.len() as u64).collect();
        let spiky = spikes(&counts, first);
        let label = members
            .iter()
            .rev()
            .find_map(|r| r.theme.as_ref().map(|t| t.1.clone()))
            .unwrap_or_default();
        for (i, d) in days.iter().enumerate() {
            let day = first + Duration::days(i as i64);
            let n = d.len() as f64;
            let share = |f: fn(&Row) -> bool| {
                if d.is_empty() {
                    0.0
                } else {
                    d.iter().filter(|r| f(r)).count() as f64 / n
                }
            };
            let sent = |s: &str| {
                d.iter()
                    .filter(|r| r.sentiment.as_deref() == Some(s))
                    .count() as u64
            };
            let window = &counts[i.saturating_sub(7)..i];
            out.push(DailyRow {
                theme_id: id,
                day,
                label: label.clone(),
                comments: d.len() as u64,
                sentiment: [sent("negative"), sent("neutral"), sent("positive")],
                complaints: [
                    share(|r| r.blames_staff),
                    share(|r| r.blames_product),
                    share(|r| r.blames_process),
                ],
                trailing_mean_7d: if window.is_empty() {
                    0.0
                } else {
                    window.iter().sum::<u64>() as f64 / window.len() as f64
                },
                spike: spiky.contains(&day),
            });
        }
    }
    out
}

fn batch(rows: &[DailyRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let schema = Arc::new(Schema::new(
        columns()
            .into_iter()
            .map(|(n, t, _)| Field::new(n, t, false))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.theme_id),
        )),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|r| (r.day - epoch).num_days() as i32),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.label.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.comments as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.sentiment[0] as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.sentiment[1] as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.sentiment[2] as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.complaints[0]),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.complaints[1]),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.complaints[2]),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.trailing_mean_7d),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.spike).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, cols)
}

/// Rebuilds `theme_daily/theme_daily.parquet` from `comments/` (a
/// bucket's read from a local copy brought up to date first); returns its
/// path (the output root and the path under it) and the number of rows.
pub fn write_daily(store: &ThemeStore) -> Result<(String, usize), DailyError> {
    let out = store.output();
    let root = out
        .readable(&["comments", "mentions", "themes/assignments"])
        .map_err(crate::themes::store::StoreError::from)?;
    let mut comments = read_comments(&root, None, None)?;
    // Rows a refit regrouped count under its themes (see `assignments`).
    if let Some(a) = Assignments::read_latest(&root)? {
        let mut mentions = read_mentions(&root, None, None)?;
        a.apply(&mut comments, &mut mentions);
    }
    apply_curation(
        store.snapshot().as_deref(),
        None,
        comments.iter_mut().map(|r| &mut r.theme),
    );
    let rows = daily_rows(&comments);
    let b = batch(&rows).map_err(|e| DailyError::Write {
        path: DAILY.to_string(),
        message: e.to_string(),
    })?;
    crate::themes::store::write_parquet(out, DAILY, &b)?;
    Ok((
        format!("{}/{DAILY}", out.url().trim_end_matches('/')),
        rows.len(),
    ))
}

/// Days whose count is at least 5 and at least three times the mean of the
/// 7 days before (a theme that appears from nothing spikes at 5).
pub fn spikes(daily: &[u64], first: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    for (i, &c) in daily.iter().enumerate() {
        let from = i.saturating_sub(7);
        let window = &daily[from..i];
        let base = if window.is_empty() {
            0.0
        } else {
            window.iter().sum::<u64>() as f64 / window.len() as f64
        };
        if c >= 5 && c as f64 >= 3.0 * base {
            out.push(first + Duration::days(i as i64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn every_day_from_the_first_has_a_row_and_spikes_are_flagged() {
        let mut rows = Vec::new();
        let mut push = |day: u32, n: usize| {
            for i in 0..n {
                rows.push(Row {
                    id: format!("{day}-{i}"),
                    event_time: Utc.with_ymd_and_hms(2026, 10, day, 9, 0, 0).unwrap(),
                    sentiment: Some("negative".into()),
                    blames_product: i % 2 == 0,
                    theme: Some((4, "router".into())),
                    ..Row::default()
                });
            }
        };
        push(1, 1);
        push(3, 1);
        push(9, 6);
        let d = daily_rows(&rows);
        assert_eq!(d.len(), 9, "days 1..=9, zero days included");
        assert_eq!(d[1].comments, 0);
        let last = &d[8];
        assert_eq!((last.comments, last.sentiment[0]), (6, 6));
        assert!(last.spike);
        assert!((last.complaints[1] - 0.5).abs() < 1e-9);
        assert!((last.trailing_mean_7d - 1.0 / 7.0).abs() < 1e-9);
        assert!(!d[0].spike);
        assert_eq!(batch(&d).unwrap().num_rows(), 9);
    }

    #[test]
    fn spikes_need_volume_and_a_jump_over_the_baseline() {
        let first = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        assert_eq!(
            spikes(&[1, 1, 1, 1, 1, 1, 1, 9], first),
            vec![first + Duration::days(7)]
        );
        assert!(spikes(&[4, 4, 4, 4, 4, 4, 4, 6], first).is_empty());
        assert_eq!(spikes(&[0, 5], first), vec![first + Duration::days(1)]);
    }
}
