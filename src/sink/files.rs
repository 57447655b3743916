//! File layout of the output tables, and progress recovered from it.
//!
//! Progress lives in the file names. One *range* is the set of files written
//! for one Kafka partition between two commits: every message with an offset
//! in `[first, last]` is in exactly one of them (a comment row or a rejected
//! row). Its files are named
//!
//! ```text
//! <table>/dt=<YYYY-MM-DD>/<topic>-p<partition>-o<first:020>-<last:020>-<i>of<n>.parquet
//! ```
//!
//! and are written under a hidden temporary name, fsynced, then renamed; the
//! directory is fsynced after. A range counts only when all `n` parts are
//! present, so a crash half-way through renaming is detected and the partial
//! range deleted on recovery, then re-read from Kafka. The next offset to
//! consume is the last offset of the newest complete range plus one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

/// The tables a range's files belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `comments/`: one row per decoded comment.
    Comments,
    /// `rejected/`: one row per message that could not be decoded.
    Rejected,
    /// `mentions/`: one row per aspect of an analysed comment.
    Mentions,
    /// `actions/`: one row per comment in the action queue.
    Actions,
    /// `responses/`: one row per follow-up event.
    Responses,
}

impl Table {
    /// Folder name under the output root.
    pub fn dir(self) -> &'static str {
        match self {
            Table::Comments => "comments",
            Table::Rejected => "rejected",
            Table::Mentions => "mentions",
            Table::Actions => "actions",
            Table::Responses => "responses",
        }
    }

    /// Every table whose files carry offset ranges.
    pub const ALL: [Table; 5] = [
        Table::Comments,
        Table::Rejected,
        Table::Mentions,
        Table::Actions,
        Table::Responses,
    ];
}

/// The parsed name of a committed part file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartName {
    /// Topic (as written in the name; see [`safe_topic`]).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Incarnation of the partition's log: 0 until `kafka.on_offset_reset`
    /// restarted the partition on a new log (topic recreated, or retention
    /// passed the files); each reset adds one, and progress is read from the
    /// newest incarnation only. Written as `p3e1` (nothing for 0).
    pub epoch: u32,
    /// First offset of the range.
    pub first: i64,
    /// Last offset of the range.
    pub last: i64,
    /// 1-based part index.
    pub part: u32,
    /// Number of parts in the range.
    pub parts: u32,
}

impl PartName {
    /// The file name for this part.
    pub fn file_name(&self) -> String {
        format!(
            "{}-p{}{}-o{:020}-{:020}-{}of{}.parquet",
            self.topic,
            self.partition,
            epoch_tag(self.epoch),
            self.first,
            self.last,
            self.part,
            self.parts
        )
    }

    /// Parses a committed part's file name; `None` for anything else.
    pub fn parse(name: &str) -> Option<PartName> {
        let stem = name.strip_suffix(".parquet")?;
        // Parse from the right: the topic itself may contain '-'.
        let mut it = stem.rsplitn(5, '-');
        let part_of = it.next()?;
        let last = it.next()?;
        let first = it.next()?.strip_prefix('o')?;
        let partition = it.next()?.strip_prefix('p')?;
        let (partition, epoch) = match partition.split_once('e') {
            Some((p, e)) => (p, e.parse().ok().filter(|&e| e > 0)?),
            None => (partition, 0),
        };
        let topic = it.next()?;
        let (part, parts) = part_of.split_once("of")?;
        let p = PartName {
            topic: topic.to_string(),
            partition: partition.parse().ok()?,
            epoch,
            first: first.parse().ok()?,
            last: last.parse().ok()?,
            part: part.parse().ok()?,
            parts: parts.parse().ok()?,
        };
        (p.part >= 1 && p.part <= p.parts && p.first <= p.last && !p.topic.is_empty()).then_some(p)
    }
}

/// A topic as it appears in file names: Kafka topic names are already
/// `[a-zA-Z0-9._-]`; anything else (file backfills) is mapped onto that set.
pub fn safe_topic(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `dt=` folder of a table for a date.
pub fn partition_dir(root: &Path, table: Table, dt: NaiveDate) -> PathBuf {
    root.join(table.dir())
        .join(format!("dt={}", dt.format("%Y-%m-%d")))
}

/// How an epoch appears after the partition number: nothing for 0, `e2` for 2.
fn epoch_tag(epoch: u32) -> String {
    if epoch == 0 {
        String::new()
    } else {
        format!("e{epoch}")
    }
}

/// The hidden in-progress name of a part being written. Starts with '.', so
/// Hive-style readers (Spark, Trino, DuckDB's `*.parquet` globs) skip it.
pub fn temp_name(topic: &str, partition: i32, epoch: u32, first: i64, table: Table) -> String {
    format!(
        ".{}-p{}{}-o{:020}.{}.inprogress",
        safe_topic(topic),
        partition,
        epoch_tag(epoch),
        first,
        table.dir()
    )
}

/// What the files on disk say about one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Offset to resume from (last offset of the newest complete range + 1),
    /// or `None` if no complete range exists.
    pub next_offset: Option<i64>,
    /// Number of complete ranges found (every epoch).
    pub complete_ranges: usize,
    /// The newest epoch with a complete range (0 when none); `next_offset`
    /// is read from this epoch's ranges only.
    pub epoch: u32,
    /// Parts of incomplete ranges and leftover temporary files (crash debris).
    pub debris: Vec<PathBuf>,
}

/// The parts of one range found on disk.
#[derive(Default)]
struct RangeParts {
    /// Number of parts the names say the range has.
    expected: u32,
    /// Part indexes seen.
    seen: Vec<u32>,
    /// Their paths.
    paths: Vec<PathBuf>,
}

/// Reads the progress of `(topic, partition)` from the file names under `root`.
pub fn scan_progress(root: &Path, topic: &str, partition: i32) -> io::Result<Progress> {
    let topic = safe_topic(topic);
    let temp_prefixes = [
        format!(".{topic}-p{partition}-o"),
        format!(".{topic}-p{partition}e"),
    ];
    let mut ranges: BTreeMap<(u32, i64, i64), RangeParts> = BTreeMap::new();
    let mut debris = Vec::new();
    for table in Table::ALL {
        let tdir = root.join(table.dir());
        let Ok(dts) = fs::read_dir(&tdir) else {
            continue;
        };
        for dt in dts {
            let dt = dt?;
            if !dt.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(dt.path())? {
                let f = f?;
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                if temp_prefixes.iter().any(|t| name.starts_with(t.as_str()))
                    && name.ends_with(".inprogress")
                {
                    debris.push(f.path());
                    continue;
                }
                let Some(p) = PartName::parse(name) else {
                    continue;
                };
                if p.topic != topic || p.partition != partition {
                    continue;
                }
                let e = ranges.entry((p.epoch, p.first, p.last)).or_default();
                e.expected = e.expected.max(p.parts);
                e.seen.push(p.part);
                e.paths.push(f.path());
            }
        }
    }
    let mut next = None;
    let mut epoch = 0;
    let mut complete = 0;
    // Keys sort by epoch first: a newer epoch's ranges replace the older's.
    for (
        (e, _, last),
        RangeParts {
            expected,
            mut seen,
            paths,
        },
    ) in ranges
    {
        seen.sort_unstable();
        seen.dedup();
        if seen.len() as u32 == expected {
            complete += 1;
            if e > epoch {
                epoch = e;
                next = None;
            }
            next = Some(next.map_or(last + 1, |n: i64| n.max(last + 1)));
        } else {
            debris.extend(paths);
        }
    }
    Ok(Progress {
        next_offset: next,
        complete_ranges: complete,
        epoch,
        debris,
    })
}

/// Creates `dir` (and parents) and makes the new entries durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = vec![];
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// fsyncs a directory, so renames and creations inside it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// One record batch as the bytes of a whole Parquet file (default writer
/// settings), for small snapshot tables written with [`write_atomic`].
pub fn parquet_bytes(
    batch: &arrow::record_batch::RecordBatch,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut bytes = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)?;
    w.write(batch)?;
    w.close()?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename,
/// fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A name of this write's own: instances sharing a folder write the
    // same files (`themes/state.json`), and with one `.tmp` name the first
    // rename took the second writer's file away. Listings skip `*.tmp`.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers racing on one file each leave a whole file, never an error
    /// (one shared temporary name let a rename take another's file away).
    #[test]
    fn racing_atomic_writes_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let handles: Vec<_> = (0..4u8)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        write_atomic(&path, &[w; 4096]).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn file");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }

    fn part(first: i64, last: i64, i: u32, n: u32) -> PartName {
        PartName {
            topic: "feed-back.v2".into(),
            partition: 3,
            epoch: 0,
            first,
            last,
            part: i,
            parts: n,
        }
    }

    #[test]
    fn names_round_trip_with_dashes_in_topic() {
        let p = part(0, 99, 2, 3);
        let n = p.file_name();
        assert_eq!(
            n,
            "feed-back.v2-p3-o00000000000000000000-00000000000000000099-2of3.parquet"
        );
        assert_eq!(PartName::parse(&n), Some(p));
        assert_eq!(PartName::parse("other.parquet"), None);
        assert_eq!(
            PartName::parse("t-p1-o5-4-1of1.parquet"),
            None,
            "first > last"
        );
        assert_eq!(
            PartName::parse("t-p1-o1-4-3of2.parquet"),
            None,
            "part > parts"
        );
    }

    #[test]
    fn a_newer_epoch_replaces_the_older_progress() {
        let p = PartName {
            epoch: 2,
            ..part(0, 9, 1, 1)
        };
        let n = p.file_name();
        assert_eq!(
            n,
            "feed-back.v2-p3e2-o00000000000000000000-00000000000000000009-1of1.parquet"
        );
        assert_eq!(PartName::parse(&n), Some(p));
        assert_eq!(
            PartName::parse("t-p1e0-o1-4-1of1.parquet"),
            None,
            "e0 is written as nothing"
        );
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // The old log reached offset 149; after a reset the new one is at 19.
        touch(
            r,
            Table::Comments,
            "2026-01-01",
            &part(0, 149, 1, 1).file_name(),
        );
        let new = PartName {
            epoch: 1,
            ..part(0, 19, 1, 1)
        };
        touch(r, Table::Comments, "2026-01-02", &new.file_name());
        // A temporary file of the new epoch is debris too; p30 is another partition.
        let tmp = touch(
            r,
            Table::Comments,
            "2026-01-02",
            &temp_name("feed-back.v2", 3, 1, 20, Table::Comments),
        );
        touch(
            r,
            Table::Comments,
            "2026-01-02",
            &temp_name("feed-back.v2", 30, 0, 20, Table::Comments),
        );
        let p = scan_progress(r, "feed-back.v2", 3).unwrap();
        assert_eq!(
            (p.next_offset, p.epoch, p.complete_ranges),
            (Some(20), 1, 2)
        );
        assert_eq!(p.debris, vec![tmp]);
    }

    #[test]
    fn safe_topic_maps_odd_chars() {
        assert_eq!(
            safe_topic("file:my feedback.jsonl"),
            "file_my_feedback.jsonl"
        );
        assert_eq!(safe_topic("ok.topic-1_x"), "ok.topic-1_x");
    }

    fn touch(root: &Path, table: Table, dt: &str, name: &str) -> PathBuf {
        let d = root.join(table.dir()).join(format!("dt={dt}"));
        fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        fs::write(&p, b"x").unwrap();
        p
    }

    #[test]
    fn progress_counts_only_complete_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // range 0..=9 complete across two tables
        touch(
            r,
            Table::Comments,
            "2026-01-01",
            &part(0, 9, 1, 2).file_name(),
        );
        touch(
            r,
            Table::Rejected,
            "2026-01-02",
            &part(0, 9, 2, 2).file_name(),
        );
        // range 10..=19 complete
        touch(
            r,
            Table::Comments,
            "2026-01-01",
            &part(10, 19, 1, 1).file_name(),
        );
        // range 20..=29 crashed after 1 of 2 renames
        let orphan = touch(
            r,
            Table::Comments,
            "2026-01-03",
            &part(20, 29, 1, 2).file_name(),
        );
        // a temp file of this partition, and one of another partition
        let tmp = touch(
            r,
            Table::Comments,
            "2026-01-03",
            &temp_name("feed-back.v2", 3, 0, 30, Table::Comments),
        );
        touch(
            r,
            Table::Comments,
            "2026-01-03",
            &temp_name("feed-back.v2", 4, 0, 30, Table::Comments),
        );
        // another partition's files do not count
        let mut other = part(100, 200, 1, 1);
        other.partition = 4;
        touch(r, Table::Comments, "2026-01-01", &other.file_name());

        let p = scan_progress(r, "feed-back.v2", 3).unwrap();
        assert_eq!(p.next_offset, Some(20));
        assert_eq!(p.complete_ranges, 2);
        let mut debris = p.debris.clone();
        debris.sort();
        let mut want = vec![orphan, tmp];
        want.sort();
        assert_eq!(debris, want);
    }

    #[test]
    fn empty_root_has_no_progress() {
        let dir = tempfile::tempdir().unwrap();
        let p = scan_progress(&dir.path().join("nope"), "t", 0).unwrap();
        assert_eq!(p, Progress::default());
    }
}
