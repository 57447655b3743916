//! Reading `actions/` and `responses/` back, and writing the statuses to
//! `action_status/action_status.parquet` (one snapshot, rewritten whole, so
//! an analyst's query always sees one consistent as-of moment).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::status::{compute, ActionRow, ResponseRow, Sla, StatusReport};
use crate::comment::Outcome;
use crate::sink::read::{committed_files_of, file_batches, string_list, ReadError};
use crate::sink::store::OutputStore;

/// The snapshot, relative to the output root.
pub const STATUS_FILE: &str = "action_status/action_status.parquet";

/// The tables the statuses are computed from.
pub const STATUS_INPUTS: [&str; 2] = ["actions", "responses"];

/// Where the snapshot is under a local output root.
pub fn status_path(root: &Path) -> PathBuf {
    root.join(STATUS_FILE)
}

/// A string column's value (`None` when absent or null).
fn text(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(name)?.as_string_opt::<i32>()?;
    (!c.is_null(i)).then(|| c.value(i).to_string())
}

fn time(b: &RecordBatch, name: &str, i: usize) -> Option<DateTime<Utc>> {
    let c = b
        .column_by_name(name)?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    (!c.is_null(i))
        .then(|| DateTime::from_timestamp_micros(c.value(i)))
        .flatten()
}

/// Every committed row of `actions/`.
pub fn read_actions(root: &Path) -> Result<Vec<ActionRow>, ReadError> {
    let mut out = Vec::new();
    for path in committed_files_of(root, "actions", None, None)? {
        for b in file_batches(&path)? {
            let priority = b
                .column_by_name("priority")
                .and_then(|c| c.as_primitive_opt::<Int32Type>().cloned());
            for i in 0..b.num_rows() {
                let (Some(comment_id), Some(event_time)) =
                    (text(&b, "comment_id", i), time(&b, "event_time", i))
                else {
                    continue;
                };
                out.push(ActionRow {
                    comment_id,
                    priority: priority
                        .as_ref()
                        .filter(|p| !p.is_null(i))
                        .map_or(4, |p| p.value(i).clamp(1, 4) as u8),
                    event_time,
                    staff_id: text(&b, "staff_id", i),
                    location: text(&b, "location", i),
                    channel: text(&b, "channel", i),
                    product: text(&b, "product", i),
                    customer_id: text(&b, "customer_id", i),
                    flags: string_list(&b, "flags", i).unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

/// Every committed row of `responses/`.
pub fn read_responses(root: &Path) -> Result<Vec<ResponseRow>, ReadError> {
    let mut out = Vec::new();
    for path in committed_files_of(root, "responses", None, None)? {
        for b in file_batches(&path)? {
            for i in 0..b.num_rows() {
                let (Some(response_id), Some(comment_id), Some(responded_at), Some(outcome)) = (
                    text(&b, "response_id", i),
                    text(&b, "comment_id", i),
                    time(&b, "responded_at", i),
                    text(&b, "outcome", i).and_then(|o| Outcome::parse(&o)),
                ) else {
                    continue;
                };
                out.push(ResponseRow {
                    response_id,
                    comment_id,
                    responded_at,
                    outcome,
                    channel: text(&b, "channel", i),
                    agent: text(&b, "agent", i),
                });
            }
        }
    }
    Ok(out)
}

/// Reads both tables under `root` and computes the statuses as of `as_of`.
pub fn status_of(root: &Path, sla: &Sla, as_of: DateTime<Utc>) -> Result<StatusReport, ReadError> {
    let actions = read_actions(root)?;
    let responses = read_responses(root)?;
    Ok(compute(&actions, &responses, sla, as_of))
}

/// `(name, type, nullable, meaning)` of every `action_status` column.
pub fn status_columns() -> Vec<(&'static str, DataType, bool, &'static str)> {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    vec![
        ("comment_id", DataType::Utf8, false, "The queued comment (joins to `actions.comment_id`, `responses.comment_id`)"),
        ("priority", DataType::Int32, false, "1 urgent … 4 low"),
        ("status", DataType::Utf8, false, "open (not answered, not yet due), overdue (not answered, past due), answered (the customer was reached) or resolved"),
        ("event_time", ts(), false, "When the customer wrote: the SLA clock starts here"),
        ("due_at", ts(), false, "`event_time` plus `[actions.sla]` of its priority"),
        ("first_response_at", ts(), true, "The first event that reached the customer (contacted, resolved, declined)"),
        ("hours_to_first_response", DataType::Float64, true, "Hours from `event_time` to it (0 when the event is dated earlier)"),
        ("within_sla", DataType::Boolean, true, "First answer by `due_at`; false when overdue; null while open and not yet due"),
        ("attempts", DataType::UInt32, false, "Events seen for it, `no_answer` included, a repeated `response_id` once"),
        ("last_outcome", DataType::Utf8, true, "Outcome of its latest event"),
        ("response_channel", DataType::Utf8, true, "Channel of the first answer"),
        ("response_agent", DataType::Utf8, true, "Agent of the first answer"),
        ("staff_id", DataType::Utf8, true, "The comment's `staff_id`"),
        ("location", DataType::Utf8, true, "The comment's `location`"),
        ("channel", DataType::Utf8, true, "The comment's `channel`"),
        ("product", DataType::Utf8, true, "The comment's `product`"),
        ("customer_id", DataType::Utf8, true, "The comment's `customer_id`"),
        ("as_of", ts(), false, "The moment these statuses hold for"),
    ]
}

/// The snapshot as one record batch.
pub fn status_batch(r: &StatusReport) -> Result<RecordBatch, arrow::error::ArrowError> {
    let a = &r.actions;
    let s = |f: &dyn Fn(&super::status::ActionStatus) -> Option<String>| -> ArrayRef {
        Arc::new(a.iter().map(f).collect::<StringArray>())
    };
    let t = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let schema = Arc::new(Schema::new(
        status_columns()
            .into_iter()
            .map(|(n, ty, null, _)| Field::new(n, ty, null))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = vec![
        s(&|x| Some(x.action.comment_id.clone())),
        Arc::new(
            a.iter()
                .map(|x| i32::from(x.action.priority))
                .collect::<Int32Array>(),
        ),
        s(&|x| Some(x.status.as_str().to_string())),
        t(a.iter()
            .map(|x| Some(x.action.event_time.timestamp_micros()))
            .collect()),
        t(a.iter()
            .map(|x| Some(x.due_at.timestamp_micros()))
            .collect()),
        t(a.iter()
            .map(|x| x.first_response_at.map(|f| f.timestamp_micros()))
            .collect()),
        Arc::new(
            a.iter()
                .map(|x| x.hours_to_first_response)
                .collect::<Float64Array>(),
        ),
        Arc::new(a.iter().map(|x| x.within_sla).collect::<BooleanArray>()),
        Arc::new(a.iter().map(|x| x.attempts).collect::<UInt32Array>()),
        s(&|x| x.last_outcome.map(|o| o.as_str().to_string())),
        s(&|x| x.first_response.as_ref().and_then(|f| f.0.clone())),
        s(&|x| x.first_response.as_ref().and_then(|f| f.1.clone())),
        s(&|x| x.action.staff_id.clone()),
        s(&|x| x.action.location.clone()),
        s(&|x| x.action.channel.clone()),
        s(&|x| x.action.product.clone()),
        s(&|x| x.action.customer_id.clone()),
        t(vec![Some(r.as_of.timestamp_micros()); a.len()]),
    ];
    RecordBatch::try_new(schema, cols)
}

/// Writes the snapshot whole to [`STATUS_FILE`] in `store` (a local root
/// writes a temporary file, fsyncs and renames it); returns its path
/// relative to the root.
pub fn write_status(store: &OutputStore, r: &StatusReport) -> Result<&'static str, ReadError> {
    let perr = |e: &dyn std::fmt::Display| ReadError::Parquet {
        path: STATUS_FILE.into(),
        message: e.to_string(),
    };
    let batch = status_batch(r).map_err(|e| perr(&e))?;
    let bytes = crate::sink::files::parquet_bytes(&batch).map_err(|e| perr(&e))?;
    store.put(STATUS_FILE, bytes)?;
    Ok(STATUS_FILE)
}
