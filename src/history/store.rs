//! One Kafka partition's complaint history: for each customer, the negative
//! mentions (target, time, offset, comment id) still inside the repeat
//! window, and its file under the output root:
//!
//! ```text
//! history/<topic>-p<partition>.parquet   customer_key, event_time, source_offset, target, comment_id
//! ```
//!
//! Customers are kept as a 64-bit key (the first 8 bytes of SHA-256 of the
//! `customer_id` column's value, itself a hash unless privacy says
//! otherwise), so the state holds no customer ids. The file is rewritten
//! before every file commit, so it is never behind the committed rows; it
//! may be ahead (a crash between the two), which lookups make harmless by
//! reading only entries at offsets below the comment being checked.

use bytes::Bytes;
use std::collections::HashMap;

use crate::sink::store::OutputStore;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

/// Errors reading or writing a history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read or written in the output store.
    #[error("{path}: {source}")]
    Store {
        /// The file, relative to the output root.
        path: String,
        /// The store's error.
        source: Box<crate::sink::store::StoreError>,
    },
    /// The file is not a history file this version can read.
    #[error("{path}: {message}. Fix: move the file away; the history restarts empty (repeats within the window are missed once)")]
    Format {
        /// The file, relative to the output root.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Key of the highest offset recorded, in the file's metadata.
const THROUGH_KEY: &str = "verbatim.history.through_offset";

/// The 64-bit key a customer is kept under.
pub fn customer_key(customer_id: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(customer_id.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Where a partition's history lives, relative to the output root.
pub fn history_path(topic: &str, partition: i32) -> String {
    format!(
        "history/{}-p{partition}.parquet",
        crate::sink::files::safe_topic(topic)
    )
}

/// One recorded negative mention.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// Event time, microseconds since the epoch.
    at: i64,
    /// Offset of the comment in its partition.
    offset: i64,
    /// Index into [`PartitionHistory::targets`].
    target: u16,
    /// The comment's id.
    id: Box<str>,
}

/// An earlier complaint found by [`PartitionHistory::earlier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earlier<'a> {
    /// The earlier comment's id.
    pub id: &'a str,
    /// Its event time, microseconds since the epoch.
    pub at: i64,
}

/// Negative mentions per customer, for one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionHistory {
    customers: HashMap<u64, Vec<Entry>>,
    /// Target names, interned (a handful per pipeline).
    targets: Vec<Arc<str>>,
    /// Highest offset recorded.
    through: Option<i64>,
    /// Newest event time recorded (micros).
    newest: i64,
}

impl PartitionHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Customers with at least one entry.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Entries in all.
    pub fn entries(&self) -> usize {
        self.customers.values().map(Vec::len).sum()
    }

    /// Highest offset recorded.
    pub fn through(&self) -> Option<i64> {
        self.through
    }

    fn target_index(&mut self, target: &str) -> u16 {
        if let Some(i) = self.targets.iter().position(|t| &**t == target) {
            return i as u16;
        }
        self.targets.push(Arc::from(target));
        (self.targets.len() - 1) as u16
    }

    /// The customer's negative mentions of `target` within `window_us` of
    /// `at` (either side: a comment that arrives late still counts), read
    /// only from offsets before `offset`, oldest first.
    pub fn earlier(
        &self,
        customer: u64,
        target: &str,
        at: i64,
        offset: i64,
        window_us: i64,
    ) -> Vec<Earlier<'_>> {
        let Some(t) = self.targets.iter().position(|t| &**t == target) else {
            return Vec::new();
        };
        let mut out: Vec<Earlier<'_>> = self
            .customers
            .get(&customer)
            .into_iter()
            .flatten()
            .filter(|e| {
                e.target as usize == t && e.offset < offset && (e.at - at).abs() <= window_us
            })
            .map(|e| Earlier {
                id: &e.id,
                at: e.at,
            })
            .collect();
        out.sort_by_key(|e| e.at);
        out
    }

    /// Records the comment at `offset`: one entry per negative target
    /// (none: the comment only replaces what an earlier read of the same
    /// offset recorded, as a replay after a crash does).
    pub fn record(&mut self, customer: u64, targets: &[&str], at: i64, offset: i64, id: &str) {
        self.through = Some(self.through.map_or(offset, |t| t.max(offset)));
        if let Some(v) = self.customers.get_mut(&customer) {
            v.retain(|e| e.offset != offset);
            if v.is_empty() && targets.is_empty() {
                self.customers.remove(&customer);
            }
        }
        if targets.is_empty() {
            return;
        }
        self.newest = self.newest.max(at);
        let entries: Vec<Entry> = targets
            .iter()
            .map(|t| Entry {
                at,
                offset,
                target: self.target_index(t),
                id: id.into(),
            })
            .collect();
        let v = self.customers.entry(customer).or_default();
        v.extend(entries);
        // Most customers hold one or two entries: no spare capacity.
        v.shrink_to_fit();
    }

    /// Forgets entries older than the newest recorded event time minus
    /// `window_us`; returns how many went.
    pub fn prune(&mut self, window_us: i64) -> usize {
        let horizon = self.newest.saturating_sub(window_us);
        let mut gone = 0;
        self.customers.retain(|_, v| {
            let before = v.len();
            v.retain(|e| e.at >= horizon);
            gone += before - v.len();
            v.shrink_to_fit();
            !v.is_empty()
        });
        gone
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("customer_key", DataType::UInt64, false),
            Field::new("event_time_us", DataType::Int64, false),
            Field::new("source_offset", DataType::Int64, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("comment_id", DataType::Utf8, false),
        ]))
    }

    /// Writes the history to `path` in `store` whole (a local root writes a
    /// temporary file, fsyncs and renames it), sorted by customer so the
    /// file compresses and diffs well.
    pub fn save(&self, store: &OutputStore, path: &str) -> Result<(), HistoryError> {
        let fmt = |e: &dyn std::fmt::Display| HistoryError::Format {
            path: path.to_string(),
            message: e.to_string(),
        };
        let mut keys: Vec<u64> = self.customers.keys().copied().collect();
        keys.sort_unstable();
        let n = self.entries();
        let (mut ck, mut at, mut off) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut target, mut id) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for k in keys {
            for e in &self.customers[&k] {
                ck.push(k);
                at.push(e.at);
                off.push(e.offset);
                target.push(&*self.targets[e.target as usize]);
                id.push(&*e.id);
            }
        }
        let batch = RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(UInt64Array::from(ck)),
                Arc::new(Int64Array::from(at)),
                Arc::new(Int64Array::from(off)),
                Arc::new(StringArray::from(target)),
                Arc::new(StringArray::from(id)),
            ],
        )
        .map_err(|e| fmt(&e))?;
        let meta = vec![KeyValue::new(
            THROUGH_KEY.to_string(),
            self.through.map(|t| t.to_string()),
        )];
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(meta))
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut bytes = Vec::new();
        {
            let mut w = ArrowWriter::try_new(&mut bytes, Self::schema(), Some(props))
                .map_err(|e| fmt(&e))?;
            w.write(&batch).map_err(|e| fmt(&e))?;
            w.close().map_err(|e| fmt(&e))?;
        }
        store
            .put(path, bytes)
            .map_err(|source| HistoryError::Store {
                path: path.to_string(),
                source: Box::new(source),
            })
    }

    /// The highest offset a saved file records, from its footer alone;
    /// `None` when there is no file (or it records nothing).
    pub fn through_on_disk(store: &OutputStore, path: &str) -> Result<Option<i64>, HistoryError> {
        let Some(b) = Self::open(store, path)? else {
            return Ok(None);
        };
        Ok(Self::through_of(&b))
    }

    fn open(
        store: &OutputStore,
        path: &str,
    ) -> Result<Option<ParquetRecordBatchReaderBuilder<Bytes>>, HistoryError> {
        let bytes = match store.get_opt(path) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(source) => {
                return Err(HistoryError::Store {
                    path: path.to_string(),
                    source: Box::new(source),
                })
            }
        };
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .map(Some)
            .map_err(|e| HistoryError::Format {
                path: path.to_string(),
                message: e.to_string(),
            })
    }

    fn through_of(b: &ParquetRecordBatchReaderBuilder<Bytes>) -> Option<i64> {
        b.metadata()
            .file_metadata()
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == THROUGH_KEY)?
            .value
            .as_deref()?
            .parse()
            .ok()
    }

    /// Reads a saved history; an empty one when there is no file.
    pub fn load(store: &OutputStore, path: &str) -> Result<Self, HistoryError> {
        let mut h = Self::new();
        let Some(b) = Self::open(store, path)? else {
            return Ok(h);
        };
        let fmt = |message: String| HistoryError::Format {
            path: path.to_string(),
            message,
        };
        h.through = Self::through_of(&b);
        let rd = b.build().map_err(|e| fmt(e.to_string()))?;
        for batch in rd {
            let batch = batch.map_err(|e| fmt(e.to_string()))?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| fmt(format!("no column {name:?}")))
            };
            let (ck, at, off, target, id) = (
                col("customer_key")?.as_primitive_opt::<UInt64Type>(),
                col("event_time_us")?.as_primitive_opt::<Int64Type>(),
                col("source_offset")?.as_primitive_opt::<Int64Type>(),
                col("target")?.as_string_opt::<i32>(),
                col("comment_id")?.as_string_opt::<i32>(),
            );
            let (Some(ck), Some(at), Some(off), Some(target), Some(id)) = (ck, at, off, target, id)
            else {
                return Err(fmt("a column has the wrong type".into()));
            };
            for i in 0..batch.num_rows() {
                if ck.is_null(i) || target.is_null(i) || id.is_null(i) {
                    return Err(fmt(format!("row {i} has a null")));
                }
                let t = h.target_index(target.value(i));
                h.newest = h.newest.max(at.value(i));
                h.customers.entry(ck.value(i)).or_default().push(Entry {
                    at: at.value(i),
                    offset: off.value(i),
                    target: t,
                    id: id.value(i).into(),
                });
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn ids(e: Vec<Earlier<'_>>) -> Vec<&str> {
        e.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn earlier_complaints_match_customer_target_window_and_offset() {
        let mut h = PartitionHistory::new();
        let (ann, bob) = (customer_key("ann"), customer_key("bob"));
        h.record(ann, &["product"], 0, 10, "a1");
        h.record(ann, &["staff"], DAY, 11, "a2");
        h.record(bob, &["product"], DAY, 12, "b1");
        h.record(ann, &["product"], 5 * DAY, 13, "a3");
        let w = 30 * DAY;
        assert_eq!(ids(h.earlier(ann, "product", 8 * DAY, 20, w)), ["a1", "a3"]);
        assert_eq!(ids(h.earlier(ann, "staff", 8 * DAY, 20, w)), ["a2"]);
        assert!(h.earlier(ann, "price", 8 * DAY, 20, w).is_empty());
        assert_eq!(ids(h.earlier(bob, "product", 8 * DAY, 20, w)), ["b1"]);
        // Outside the window (either side), or not yet read at that offset.
        assert_eq!(ids(h.earlier(ann, "product", 32 * DAY, 20, w)), ["a3"]);
        assert!(h.earlier(ann, "product", -31 * DAY, 20, w).is_empty());
        assert_eq!(ids(h.earlier(ann, "product", 8 * DAY, 13, w)), ["a1"]);
        assert!(h
            .earlier(customer_key("cat"), "product", 0, 20, w)
            .is_empty());
    }

    #[test]
    fn a_replayed_offset_replaces_what_it_recorded() {
        let mut h = PartitionHistory::new();
        let ann = customer_key("ann");
        h.record(ann, &["product", "price"], 0, 10, "a1");
        assert_eq!(h.entries(), 2);
        // The same message read again after a crash, now with one target.
        h.record(ann, &["product"], 0, 10, "a1");
        assert_eq!(h.entries(), 1);
        // ... or with none: its entries go, and so does the customer.
        h.record(ann, &[], 0, 10, "a1");
        assert_eq!((h.entries(), h.customers()), (0, 0));
        assert_eq!(h.through(), Some(10));
    }

    #[test]
    fn pruning_keeps_only_the_window_behind_the_newest_entry() {
        let mut h = PartitionHistory::new();
        for d in 0..40 {
            h.record(
                customer_key(&format!("c{d}")),
                &["product"],
                d * DAY,
                d,
                "x",
            );
        }
        let gone = h.prune(30 * DAY);
        assert_eq!(gone, 9, "days 0..=8 are over 30 days before day 39");
        assert_eq!(h.customers(), 31);
    }

    #[test]
    fn a_saved_history_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = OutputStore::local(dir.path()).unwrap();
        let path = history_path("file:feedback.jsonl", 3);
        assert_eq!(path, "history/file_feedback.jsonl-p3.parquet");
        assert_eq!(
            PartitionHistory::through_on_disk(&store, &path).unwrap(),
            None
        );
        assert_eq!(PartitionHistory::load(&store, &path).unwrap().entries(), 0);
        let mut h = PartitionHistory::new();
        let ann = customer_key("ann");
        h.record(ann, &["product", "delivery"], DAY, 7, "a1");
        h.record(customer_key("bob"), &["staff"], 2 * DAY, 9, "b1");
        h.save(&store, &path).unwrap();
        assert_eq!(
            PartitionHistory::through_on_disk(&store, &path).unwrap(),
            Some(9)
        );
        let back = PartitionHistory::load(&store, &path).unwrap();
        assert_eq!((back.customers(), back.entries()), (2, 3));
        assert_eq!(back.through(), Some(9));
        assert_eq!(ids(back.earlier(ann, "delivery", DAY, 8, DAY)), ["a1"]);
        // A file that is not a history says how to recover.
        std::fs::write(dir.path().join(&path), b"not parquet").unwrap();
        let e = PartitionHistory::load(&store, &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("move the file away"), "{e}");
    }
}
