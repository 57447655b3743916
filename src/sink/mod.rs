//! Parquet sink: appends each batch to per-partition open files and commits
//! them when they are big or old enough, or when the partition is revoked or
//! the job stops: one create-if-absent marker per range, then the files are
//! published under their final names ([`commit`]), on a local folder or a
//! bucket ([`store`]).
//!
//! The sink never talks to Kafka. The pipeline commits a partition's offset
//! only after [`ParquetSink::commit`] has returned the [`CommittedRange`],
//! so Kafka's committed offsets always trail the files (end-to-end acks).
//!
//! - [`store`]: the output root as an object store (folder, S3, GCS, Azure).
//! - [`commit`]: the commit protocol (markers, publish, recovery, fencing).
//! - [`files`]: final file names, and progress read from names in folders
//!   written before markers.
//! - [`schema`]: the columns of `comments/` and `rejected/`.
//! - [`dead_letter`]: the optional dead-letter topic for rejected messages.
//! - [`actions`]: the action queue (`actions/` and the optional action topic).
//! - [`producer`]: output topics whose deliveries gate the input commit.
//! - [`read`]: reading committed tables back, for the offline commands.

pub mod actions;
pub mod commit;
pub mod dead_letter;
pub mod files;
mod part;
pub mod producer;
pub mod read;
pub mod schema;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::EnabledStatistics;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::batch::CommentBatch;
use crate::comment::{Comment, Rejection, Response};
use crate::config::OutputConfig;
use crate::metrics::{Metrics, TableLabel};
use actions::ActionRules;
use files::{PartName, Table};
use part::Part;
use schema::Stamp;

/// Errors from writing or committing Parquet files.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A filesystem operation failed (disk full, permissions, ...).
    #[error("{op} {path}: {source}{}", fix_for_io(source))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("writing Parquet {path}: {source}{}", fix_for_parquet(source))]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The writer's error.
        source: parquet::errors::ParquetError,
    },
    /// Rows did not fit the table schema (a bug, never input).
    #[error("building a record batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The configured zstd level was refused.
    #[error("zstd level {0}: {1}")]
    Compression(i32, parquet::errors::ParquetError),
    /// The output store failed (after its own retries with backoff).
    #[error(transparent)]
    Store(Box<store::StoreError>),
    /// A commit marker could not be written or read back.
    #[error("commit marker {path}: {message}")]
    Marker {
        /// The marker.
        path: String,
        /// What is wrong, and the fix.
        message: String,
    },
    /// Another writer committed this range first: this instance held a
    /// partition the group had given to another (it was frozen, or cut off
    /// from the brokers, past its session). Its uncommitted rows are
    /// dropped; a restart reads the assignment again and nothing is lost or
    /// written twice.
    #[error(
        "{topic}/{partition}: the range from offset {first} was already committed by \
         writer {holder}; this instance had lost the partition (a stale member, e.g. \
         frozen past kafka session.timeout.ms). Its uncommitted rows were dropped. Fix: \
         none needed; restart it (Kubernetes does) and it rejoins the group"
    )]
    Fenced {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Start offset of the range.
        first: i64,
        /// The writer that holds the marker.
        holder: String,
    },
}

impl From<store::StoreError> for SinkError {
    fn from(e: store::StoreError) -> Self {
        SinkError::Store(Box::new(e))
    }
}

const DISK_FULL_FIX: &str = ". Fix: free space on the output volume (or point output.root at a larger one) and restart; uncommitted rows are read again from their source, so nothing is lost or written twice";

/// The fix for a filesystem error a user can act on ("" when there is none to give).
fn fix_for_io(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => DISK_FULL_FIX,
        ErrorKind::PermissionDenied => {
            ". Fix: give the job's user write access to output.root (and every folder under it)"
        }
        ErrorKind::ReadOnlyFilesystem => {
            ". Fix: output.root is on a read-only filesystem; mount it writable or choose another root"
        }
        _ => "",
    }
}

fn fix_for_parquet(e: &parquet::errors::ParquetError) -> &'static str {
    if e.to_string().contains("No space left on device") {
        DISK_FULL_FIX
    } else {
        ""
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A Kafka partition, as the sink keys its open files.
pub type TopicPartition = (String, i32);

/// The files of one range after they were committed.
#[derive(Debug, Clone)]
pub struct CommittedRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset covered.
    pub first: i64,
    /// Last offset covered.
    pub last: i64,
    /// Final paths of the committed files, relative to the output root.
    pub files: Vec<String>,
    /// Comment rows in the range.
    pub comment_rows: u64,
    /// Rejected rows in the range.
    pub rejected_rows: u64,
    /// Action rows in the range.
    pub action_rows: u64,
    /// Response rows in the range.
    pub response_rows: u64,
}

impl CommittedRange {
    /// The offset to commit to Kafka: the next one to consume.
    pub fn next_offset(&self) -> i64 {
        self.last + 1
    }
}

struct OpenRange {
    /// The partition's epoch when the range opened (see [`PartName::epoch`]).
    epoch: u32,
    first: i64,
    last: i64,
    /// Kafka timestamps (ms) of the range's messages, for the end-to-end latency.
    kafka_ms: Vec<i64>,
    opened: Instant,
    files: BTreeMap<(Table, NaiveDate), Part>,
}

impl OpenRange {
    fn bytes(&self) -> u64 {
        self.files.values().map(Part::bytes).sum()
    }

    fn writers(&self) -> usize {
        self.files.values().filter(|p| p.has_writer()).count()
    }
}

/// Writes `comments/` and `rejected/` under one output root.
pub struct ParquetSink {
    store: store::OutputStore,
    /// This sink's writer id, in its staging names and markers.
    writer: String,
    max_file_bytes: u64,
    max_age: Duration,
    max_buffered_bytes: usize,
    spill_bytes: usize,
    props: WriterProperties,
    stamp: Stamp,
    open: HashMap<TopicPartition, OpenRange>,
    /// Each assigned partition's epoch (0 when absent).
    epochs: HashMap<TopicPartition, u32>,
    actions: Option<ActionRules>,
    metrics: Metrics,
}

/// Row groups are closed early when their buffered size passes this, which
/// bounds the memory of every open file.
const MAX_ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Open Parquet writers (each costs ~100 KB per column whatever it holds)
/// past which partitions are committed early, most writers first.
const MAX_OPEN_WRITERS: usize = 48;

impl ParquetSink {
    /// A sink writing to `store` with the settings of `cfg`.
    pub fn new(
        cfg: &OutputConfig,
        store: store::OutputStore,
        stamp: Stamp,
        metrics: Metrics,
    ) -> Result<Self, SinkError> {
        let level = ZstdLevel::try_new(cfg.zstd_level)
            .map_err(|e| SinkError::Compression(cfg.zstd_level, e))?;
        // Float vectors: no dictionary (it never pays off and costs time),
        // byte-stream-split so zstd finds the repeated exponent bytes, no stats.
        let embedding = ColumnPath::new(vec!["embedding".into(), "list".into(), "item".into()]);
        let props = WriterProperties::builder()
            .set_column_dictionary_enabled(embedding.clone(), false)
            .set_column_encoding(embedding.clone(), Encoding::BYTE_STREAM_SPLIT)
            .set_column_statistics_enabled(embedding, EnabledStatistics::None)
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(cfg.row_group_rows))
            .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
            .set_created_by(format!("verbatim {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "verbatim.schema_version".into(),
                    schema::SCHEMA_VERSION.to_string(),
                ),
                KeyValue::new("verbatim.pipeline".into(), stamp.pipeline.clone()),
                KeyValue::new(
                    "verbatim.pipeline_version".into(),
                    stamp.pipeline_version.clone(),
                ),
            ]))
            .build();
        Ok(Self {
            store,
            writer: commit::writer_id(),
            max_file_bytes: cfg.max_file_bytes,
            max_age: Duration::from_secs(cfg.max_file_age_secs),
            max_buffered_bytes: usize::try_from(cfg.max_buffered_bytes).unwrap_or(usize::MAX),
            spill_bytes: Part::SPILL_BYTES,
            props,
            stamp,
            open: HashMap::new(),
            epochs: HashMap::new(),
            actions: None,
            metrics,
        })
    }

    /// A sink writing to the store `cfg` names (see [`store::OutputStore::open`]).
    pub fn open(cfg: &OutputConfig, stamp: Stamp, metrics: Metrics) -> Result<Self, SinkError> {
        let store = store::OutputStore::open(cfg)?;
        Self::new(cfg, store, stamp, metrics)
    }

    /// Also writes `actions/`: one row per comment these rules queue.
    pub fn with_actions(mut self, rules: ActionRules) -> Self {
        self.actions = Some(rules);
        self
    }

    /// The output store.
    pub fn store(&self) -> &store::OutputStore {
        &self.store
    }

    /// Recovers where `(topic, partition)` stands (see [`commit::recover`]),
    /// first dropping anything this sink still has open for it.
    pub fn recover(&mut self, topic: &str, partition: i32) -> Result<Resume, SinkError> {
        self.abort(&(topic.to_string(), partition));
        commit::recover(&self.store, topic, partition)
    }

    /// Names the partition's next ranges with this epoch: the one its files
    /// were recovered at, or one more after `kafka.on_offset_reset` moved
    /// it to a new log.
    pub fn set_epoch(&mut self, tp: TopicPartition, epoch: u32) {
        self.epochs.insert(tp, epoch);
    }

    /// Appends a processed batch to the open files of its partitions.
    pub fn write(&mut self, batch: &CommentBatch) -> Result<(), SinkError> {
        crate::failpoint::hit("sink_write");
        // Offsets and Kafka timestamps per partition, over comments and
        // rejections alike.
        let mut bounds: HashMap<(&str, i32), (i64, i64, Vec<i64>)> = HashMap::new();
        let all = batch
            .comments
            .iter()
            .map(|c| &c.coords)
            .chain(batch.rejected.iter().map(|r| &r.coords))
            .chain(batch.responses.iter().map(|r| &r.coords));
        for c in all {
            let e = bounds.entry((c.topic.as_str(), c.partition)).or_insert((
                c.offset,
                c.offset,
                Vec::new(),
            ));
            e.0 = e.0.min(c.offset);
            e.1 = e.1.max(c.offset);
            e.2.extend(c.kafka_timestamp.map(|t| t.timestamp_millis()));
        }
        for ((topic, partition), (lo, hi, stamps)) in bounds {
            let tp = (topic.to_string(), partition);
            let epoch = self.epochs.get(&tp).copied().unwrap_or(0);
            let r = self.open.entry(tp).or_insert_with(|| OpenRange {
                epoch,
                first: lo,
                last: hi,
                kafka_ms: Vec::new(),
                opened: Instant::now(),
                files: BTreeMap::new(),
            });
            r.first = r.first.min(lo);
            r.last = r.last.max(hi);
            r.kafka_ms.extend(stamps);
        }

        let mut comment_groups: BTreeMap<(&str, i32, NaiveDate), Vec<&Comment>> = BTreeMap::new();
        for c in &batch.comments {
            comment_groups
                .entry((c.coords.topic.as_str(), c.coords.partition, c.event_date()))
                .or_default()
                .push(c);
        }
        // One mentions row per aspect, beside its comment (same range, same day).
        let mut mention_groups: BTreeMap<(&str, i32, NaiveDate), Vec<&Comment>> = BTreeMap::new();
        for c in &batch.comments {
            if c.nlp.aspects.as_ref().is_some_and(|a| !a.is_empty()) {
                mention_groups
                    .entry((c.coords.topic.as_str(), c.coords.partition, c.event_date()))
                    .or_default()
                    .push(c);
            }
        }
        let mut rejected_groups: BTreeMap<(&str, i32, NaiveDate), Vec<&Rejection>> =
            BTreeMap::new();
        for r in &batch.rejected {
            rejected_groups
                .entry((
                    r.coords.topic.as_str(),
                    r.coords.partition,
                    r.ingest_time.date_naive(),
                ))
                .or_default()
                .push(r);
        }
        for ((topic, partition, dt), rows) in comment_groups {
            let rb = schema::comments_batch(&rows, &self.stamp)?;
            self.append(topic, partition, Table::Comments, dt, rb)?;
            self.metrics.comments.inc_by(rows.len() as u64);
        }
        for ((topic, partition, dt), rows) in rejected_groups {
            let rb = schema::rejected_batch(&rows, &self.stamp)?;
            self.append(topic, partition, Table::Rejected, dt, rb)?;
        }
        for ((topic, partition, dt), rows) in mention_groups {
            let rb = schema::mentions_batch(&rows, &self.stamp)?;
            self.append(topic, partition, Table::Mentions, dt, rb)?;
        }
        // Follow-up events by the day they happened.
        let mut response_groups: BTreeMap<(&str, i32, NaiveDate), Vec<&Response>> = BTreeMap::new();
        for r in &batch.responses {
            response_groups
                .entry((
                    r.coords.topic.as_str(),
                    r.coords.partition,
                    r.at.date_naive(),
                ))
                .or_default()
                .push(r);
        }
        for ((topic, partition, dt), rows) in response_groups {
            let rb = schema::responses_batch(&rows, &self.stamp)?;
            self.append(topic, partition, Table::Responses, dt, rb)?;
        }
        if let Some(rules) = self.actions.take() {
            let res = self.write_actions(batch, &rules);
            self.actions = Some(rules);
            res?;
        }
        self.relieve()
    }

    /// Bytes of rows held in memory, over every open part.
    pub fn buffered_bytes(&self) -> usize {
        self.open
            .values()
            .flat_map(|r| r.files.values())
            .map(Part::buffered_bytes)
            .sum()
    }

    /// Keeps the rows held in memory under `output.max_buffered_bytes` by
    /// writing the biggest parts' rows to their temporary files (row groups
    /// close early; nothing is committed).
    fn relieve(&mut self) -> Result<(), SinkError> {
        let mut total = self.buffered_bytes();
        while total > self.max_buffered_bytes {
            let Some(biggest) = self
                .open
                .values_mut()
                .flat_map(|r| r.files.values_mut())
                .max_by_key(|p| p.buffered_bytes())
            else {
                break;
            };
            let before = biggest.buffered_bytes();
            biggest.flush(&self.props)?;
            let after = biggest.buffered_bytes();
            if after >= before {
                break;
            }
            total -= before - after;
        }
        self.metrics.sink_buffered_bytes.set(total as i64);
        Ok(())
    }

    fn write_actions(
        &mut self,
        batch: &CommentBatch,
        rules: &ActionRules,
    ) -> Result<(), SinkError> {
        let mut groups: BTreeMap<(&str, i32, NaiveDate), Vec<_>> = BTreeMap::new();
        for c in &batch.comments {
            if let Some(a) = rules.action(c) {
                groups
                    .entry((c.coords.topic.as_str(), c.coords.partition, c.event_date()))
                    .or_default()
                    .push((c, a));
            }
        }
        for ((topic, partition, dt), rows) in groups {
            let rb = schema::actions_batch(&rows, &self.stamp)?;
            self.append(topic, partition, Table::Actions, dt, rb)?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        topic: &str,
        partition: i32,
        table: Table,
        dt: NaiveDate,
        rb: RecordBatch,
    ) -> Result<(), SinkError> {
        let Some(range) = self.open.get_mut(&(topic.to_string(), partition)) else {
            return Ok(()); // bounds were registered above for every row's partition
        };
        let part = match range.files.entry((table, dt)) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let key = commit::partition_key(topic, partition, range.epoch);
                let staging = commit::staging_path(&key, range.first, &self.writer, table, dt);
                let tmp = self.store.write_path(&staging);
                if let Some(dir) = tmp.parent() {
                    files::create_dir_durable(dir).map_err(io_err("creating", dir))?;
                }
                let schema = match table {
                    Table::Comments => schema::comments_schema(self.stamp.embedding_dim),
                    Table::Rejected => schema::rejected_schema(),
                    Table::Mentions => schema::mentions_schema(self.stamp.mention_embedding_dim),
                    Table::Actions => schema::actions_schema(),
                    Table::Responses => schema::responses_schema(),
                };
                v.insert(Part::new(tmp, staging, schema))
            }
        };
        part.append(rb, &self.props, self.spill_bytes)
    }

    /// Partitions whose open files reached `max_file_bytes` or
    /// `max_file_age_secs`, and, while more than [`MAX_OPEN_WRITERS`]
    /// Parquet writers are open, those holding the most writers.
    pub fn due(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self
            .open
            .iter()
            .filter(|(_, r)| r.opened.elapsed() >= self.max_age || r.bytes() >= self.max_file_bytes)
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut writers: usize = self
            .open
            .iter()
            .filter(|(tp, _)| !v.contains(tp))
            .map(|(_, r)| r.writers())
            .sum();
        if writers > MAX_OPEN_WRITERS {
            let mut by_writers: Vec<_> = self
                .open
                .iter()
                .filter(|(tp, _)| !v.contains(tp))
                .map(|(tp, r)| (r.writers(), tp))
                .collect();
            by_writers.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            for (n, tp) in by_writers {
                if writers <= MAX_OPEN_WRITERS {
                    break;
                }
                writers -= n;
                v.push(tp.clone());
            }
        }
        v.sort();
        v
    }

    /// Partitions with open (uncommitted) files.
    pub fn open_partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.open.keys().cloned().collect();
        v.sort();
        v
    }

    /// Commits the open files of one partition (see [`commit`]): closes
    /// each, stages it, creates the range's marker if no other writer did,
    /// then publishes the files under their final names. Returns `None` if
    /// the partition had nothing open, [`SinkError::Fenced`] if another
    /// writer committed the range first.
    pub fn commit(&mut self, tp: &TopicPartition) -> Result<Option<CommittedRange>, SinkError> {
        let Some(range) = self.open.remove(tp) else {
            return Ok(None);
        };
        let parts = range.files.len() as u32;
        let mut staged = Vec::with_capacity(range.files.len());
        for (i, ((table, dt), f)) in range.files.into_iter().enumerate() {
            let rows = f.rows;
            let staging = f.finish(&self.props)?;
            let name = PartName {
                topic: files::safe_topic(&tp.0),
                partition: tp.1,
                epoch: range.epoch,
                first: range.first,
                last: range.last,
                part: i as u32 + 1,
                parts,
            };
            staged.push(commit::Staged {
                table,
                staging,
                path: format!(
                    "{}/dt={}/{}",
                    table.dir(),
                    dt.format("%Y-%m-%d"),
                    name.file_name()
                ),
                rows,
            });
        }
        let marker = commit::Marker {
            version: 1,
            topic: files::safe_topic(&tp.0),
            partition: tp.1,
            epoch: range.epoch,
            first: range.first,
            last: range.last,
            writer: self.writer.clone(),
            committed_at: chrono::Utc::now(),
            files: Vec::new(),
        };
        let marker = match commit::commit_range(&self.store, marker, staged) {
            Ok(m) => m,
            Err(e) => {
                if matches!(e, SinkError::Fenced { .. }) {
                    self.metrics.commits_fenced.inc();
                }
                return Err(e);
            }
        };
        let mut done = CommittedRange {
            topic: tp.0.clone(),
            partition: tp.1,
            first: range.first,
            last: range.last,
            files: Vec::with_capacity(marker.files.len()),
            comment_rows: 0,
            rejected_rows: 0,
            action_rows: 0,
            response_rows: 0,
        };
        for f in &marker.files {
            self.metrics
                .files
                .get_or_create(&TableLabel {
                    table: f.table.clone(),
                })
                .inc();
            self.metrics.bytes.inc_by(f.bytes);
            match f.table.as_str() {
                "comments" => done.comment_rows += f.rows,
                "rejected" => done.rejected_rows += f.rows,
                "actions" => done.action_rows += f.rows,
                "responses" => done.response_rows += f.rows,
                _ => {}
            }
            done.files.push(f.path.clone());
        }
        let now = chrono::Utc::now();
        for ms in &range.kafka_ms {
            let secs = (now.timestamp_millis() - ms).max(0) as f64 / 1000.0;
            self.metrics.end_to_end_seconds.observe(secs);
        }
        self.metrics.last_commit_time.set(now.timestamp());
        self.metrics
            .sink_buffered_bytes
            .set(self.buffered_bytes() as i64);
        crate::failpoint::hit("after_publish");
        Ok(Some(done))
    }

    /// Commits every open partition.
    pub fn commit_all(&mut self) -> Result<Vec<CommittedRange>, SinkError> {
        let mut out = Vec::new();
        for tp in self.open_partitions() {
            out.extend(self.commit(&tp)?);
        }
        Ok(out)
    }

    /// Drops a partition's open files without committing (its assignment was
    /// lost: another consumer now owns those offsets).
    pub fn abort(&mut self, tp: &TopicPartition) {
        if let Some(range) = self.open.remove(tp) {
            range.files.into_values().for_each(Part::discard);
        }
        self.metrics
            .sink_buffered_bytes
            .set(self.buffered_bytes() as i64);
    }
}

/// The stamp for a pipeline (name and version tag), with no embedding column;
/// the pipeline builder sets `embedding_dim` once the model is loaded.
pub fn stamp_for(cfg: &crate::config::PipelineConfig) -> Stamp {
    Stamp {
        pipeline: cfg.name.clone(),
        pipeline_version: cfg.version_tag(),
        embedding_dim: None,
        mention_embedding_dim: None,
    }
}

/// Where a partition stands in its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The next offset to consume, or `None` if nothing was committed.
    pub next: Option<i64>,
    /// The epoch of that progress (see [`PartName::epoch`]).
    pub epoch: u32,
}

/// Recovers where `(topic, partition)` stands from the commit markers (and
/// the names of files written before markers) in `store`, finishing a
/// publish a crash cut short and removing debris (see [`commit::recover`]).
pub fn recover_partition(
    store: &store::OutputStore,
    topic: &str,
    partition: i32,
) -> Result<Resume, SinkError> {
    commit::recover(store, topic, partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_and_permission_errors_name_the_fix() {
        let full = SinkError::Io {
            op: "writing",
            path: PathBuf::from("out/comments/x.parquet"),
            source: std::io::Error::from_raw_os_error(28), // ENOSPC
        };
        let m = full.to_string();
        assert!(m.contains("No space left on device"), "{m}");
        assert!(m.contains("Fix: free space on the output volume"), "{m}");
        let denied = SinkError::Io {
            op: "creating",
            path: PathBuf::from("/root/out"),
            source: std::io::Error::from_raw_os_error(13), // EACCES
        };
        assert!(denied
            .to_string()
            .contains("Fix: give the job's user write access"));
        let other = SinkError::Io {
            op: "renaming",
            path: PathBuf::from("a"),
            source: std::io::Error::other("odd"),
        };
        assert!(!other.to_string().contains("Fix"), "no fix to give");
    }
    use crate::comment::{RejectReason, SourceCoords};
    use chrono::{TimeZone, Utc};
    use std::fs::File;

    fn coords(p: i32, o: i64) -> SourceCoords {
        SourceCoords {
            topic: "fb".into(),
            partition: p,
            offset: o,
            kafka_timestamp: None,
        }
    }

    fn comment(p: i32, o: i64, day: u32) -> Comment {
        let t = Utc.with_ymd_and_hms(2026, 2, day, 12, 0, 0).unwrap();
        Comment::new(coords(p, o), format!("c{p}-{o}"), "fine".into(), t, t)
    }

    fn sink(root: &Path) -> ParquetSink {
        let cfg = OutputConfig {
            root: root.to_path_buf(),
            ..OutputConfig::default()
        };
        ParquetSink::open(&cfg, stamp_for(&Default::default()), Metrics::new()).unwrap()
    }

    #[test]
    fn commit_names_all_parts_and_progress_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        let mut b = CommentBatch::default();
        b.comments.push(comment(0, 10, 1));
        b.comments.push(comment(0, 11, 2));
        b.rejected.push(Rejection {
            coords: coords(0, 12),
            key: None,
            raw: b"x".to_vec(),
            reason: RejectReason::NotJson,
            message: "m".into(),
            ingest_time: Utc::now(),
        });
        b.comments.push(comment(1, 5, 1));
        s.write(&b).unwrap();
        assert_eq!(s.open_partitions().len(), 2);
        // Nothing visible before commit.
        assert_eq!(
            files::scan_progress(dir.path(), "fb", 0)
                .unwrap()
                .next_offset,
            None
        );
        let r = s.commit(&("fb".into(), 0)).unwrap().unwrap();
        assert_eq!((r.first, r.last, r.files.len()), (10, 12, 3));
        assert_eq!((r.comment_rows, r.rejected_rows), (2, 1));
        assert!(r.files.iter().all(|f| dir.path().join(f).exists()));
        assert_eq!(
            files::scan_progress(dir.path(), "fb", 0)
                .unwrap()
                .next_offset,
            Some(13)
        );
        assert_eq!(
            files::scan_progress(dir.path(), "fb", 1)
                .unwrap()
                .next_offset,
            None
        );

        // A reader sees what was written.
        let f = File::open(dir.path().join(&r.files[0])).unwrap();
        let rd = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = rd.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 1);
    }

    #[test]
    fn staging_of_a_crashed_writer_goes_once_a_range_from_its_start_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        s.spill_bytes = 0; // every row goes to its staging file at once
        let mut b = CommentBatch::default();
        b.comments.push(comment(0, 0, 1));
        s.write(&b).unwrap();
        assert_eq!(inprogress(dir.path()), 1);
        // A second sink (a restarted process) recovers: the staging file
        // may still belong to a live writer, so it stays...
        let mut s2 = sink(dir.path());
        assert_eq!(s2.recover("fb", 0).unwrap().next, None);
        assert_eq!(inprogress(dir.path()), 1);
        // ...until a range from its start is committed by someone else.
        s2.write(&b).unwrap();
        s2.commit(&("fb".into(), 0)).unwrap().unwrap();
        assert_eq!(inprogress(dir.path()), 0);
        // The first writer comes back and loses: nothing of it is published.
        let e = s.commit(&("fb".into(), 0)).unwrap_err();
        assert!(matches!(e, SinkError::Fenced { first: 0, .. }), "{e}");
        assert!(e.to_string().contains("Fix: none needed"), "{e}");
        assert_eq!(s.metrics.commits_fenced.get(), 1);
        assert_eq!(s2.recover("fb", 0).unwrap().next, Some(1));
        let files: Vec<_> = walk(&dir.path().join("comments"));
        assert_eq!(files.len(), 1, "{files:?}");
        s.abort(&("fb".into(), 0));
        assert!(s.open_partitions().is_empty());
    }

    #[test]
    fn due_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OutputConfig {
            root: dir.path().to_path_buf(),
            max_file_bytes: 1024,
            ..OutputConfig::default()
        };
        let mut s =
            ParquetSink::open(&cfg, stamp_for(&Default::default()), Metrics::new()).unwrap();
        let mut b = CommentBatch::default();
        for o in 0..2000 {
            let mut c = comment(0, o, 1);
            c.text = format!("comment number {o} with some words to take space");
            b.comments.push(c);
        }
        s.write(&b).unwrap();
        assert_eq!(s.due(), vec![("fb".to_string(), 0)]);
    }

    /// Staged parts not yet published.
    fn inprogress(dir: &Path) -> usize {
        walk(&dir.join(commit::STAGING)).len()
    }

    #[test]
    fn straggler_days_stay_in_memory_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        let mut b = CommentBatch::default();
        for day in 1..=28 {
            b.comments.push(comment(0, day as i64, day));
        }
        s.write(&b).unwrap();
        // 28 days of a few rows: no writer, no temporary file.
        assert_eq!(inprogress(dir.path()), 0);
        assert!(s.buffered_bytes() > 0);
        let r = s.commit(&("fb".into(), 0)).unwrap().unwrap();
        assert_eq!((r.files.len(), r.comment_rows), (28, 28));
        assert!(r.files.iter().all(|f| dir.path().join(f).exists()));
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(inprogress(dir.path()), 0);
    }

    #[test]
    fn the_memory_budget_writes_rows_out_early_without_committing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OutputConfig {
            root: dir.path().to_path_buf(),
            max_buffered_bytes: 1024 * 1024,
            ..OutputConfig::default()
        };
        let mut s =
            ParquetSink::open(&cfg, stamp_for(&Default::default()), Metrics::new()).unwrap();
        let mut next = 0;
        for _ in 0..20 {
            let mut b = CommentBatch::default();
            for _ in 0..500 {
                let mut c = comment(0, next, 1 + (next % 3) as u32);
                c.text = format!("comment {next} {}", "words to take some space ".repeat(8));
                b.comments.push(c);
                next += 1;
            }
            s.write(&b).unwrap();
            assert!(
                s.buffered_bytes() <= 1024 * 1024,
                "{} bytes buffered",
                s.buffered_bytes()
            );
        }
        assert!(s.due().is_empty(), "nothing is committed early");
        assert!(inprogress(dir.path()) > 0, "rows went to temporary files");
        let r = s.commit(&("fb".into(), 0)).unwrap().unwrap();
        assert_eq!((r.first, r.last, r.comment_rows), (0, 9_999, 10_000));
        let mut rows = 0;
        let mut groups = 0;
        for f in &r.files {
            let f = File::open(dir.path().join(f)).unwrap();
            let meta = parquet::file::reader::SerializedFileReader::new(f).unwrap();
            use parquet::file::reader::FileReader;
            groups += meta.metadata().num_row_groups();
            rows += meta.metadata().file_metadata().num_rows();
        }
        assert_eq!(rows, 10_000);
        assert!(groups > 3, "row groups were closed early: {groups}");
    }

    #[test]
    fn too_many_open_writers_make_the_busiest_partitions_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        s.spill_bytes = 0; // every part opens its writer
        let mut b = CommentBatch::default();
        // Partition 0: 28 days; partition 1: 20 days; partition 2: 5 days.
        for (p, days) in [(0, 28), (1, 20), (2, 5)] {
            for day in 1..=days {
                b.comments.push(comment(p, day as i64, day));
            }
        }
        s.write(&b).unwrap();
        // 53 writers > 48: the partition with 28 goes first, then 25 remain.
        assert_eq!(s.due(), vec![("fb".to_string(), 0)]);
        s.commit(&("fb".into(), 0)).unwrap();
        assert!(s.due().is_empty());
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    out.extend(walk(&path));
                } else {
                    out.push(path);
                }
            }
        }
        out
    }
}
