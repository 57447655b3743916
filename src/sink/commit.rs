//! The commit protocol: one create-if-absent marker per range, on a local
//! folder and on a bucket alike.
//!
//! A range's parts are written under unique staging names
//! (`_staging/<topic>-p<partition>/o<first>.<writer>.<table>.<day>.parquet`),
//! then, in [`commit_range`]:
//!
//! 1. each part is staged ([`OutputStore::stage`]: fsynced in place, or
//!    uploaded in chunks);
//! 2. the range's marker `_commits/<topic>-p<partition>/o<first:020>.json`
//!    is created **only if absent** (`PutMode::Create`: S3 and Azure
//!    `If-None-Match: *`, GCS generation 0, a hard link on a local disk). It
//!    lists the range's files, its last offset and the writer. Exactly one
//!    writer creates the marker for a start offset: a stale writer (a
//!    "zombie" that lost its partitions while frozen) that comes back with
//!    its old batch loses the race, removes its staging and stops, and is
//!    restarted to read its assignment again ([`SinkError::Fenced`]);
//! 3. the winner publishes: each staged part is renamed to its final name
//!    `<table>/dt=<day>/<topic>-p<partition>-o<first>-<last>-<i>of<n>.parquet`
//!    (server-side copy and delete on a bucket), so readers that glob
//!    `comments/**/*.parquet` only ever see committed ranges;
//! 4. staging left by writers that lost a race at or before this start is
//!    removed.
//!
//! Kafka offsets are committed after all of this, as a hint.
//!
//! [`recover`] reads the markers on assignment: it finishes a range whose
//! publish was cut short (a crash between 2 and 3), and resumes after the
//! last committed range. Folders written before markers existed (names
//! only) are still read by their names ([`super::files::scan_progress`]).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::files::{self, PartName, Table};
use super::store::{OutputStore, StoreError};
use super::{Resume, SinkError};

/// Folder of the commit markers.
pub const COMMITS: &str = "_commits";
/// Folder of staged parts not yet published.
pub const STAGING: &str = "_staging";

/// One file of a committed range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerFile {
    /// The table (`comments`, `rejected`, ...).
    pub table: String,
    /// Where it was staged.
    pub staging: String,
    /// Its final path, relative to the root.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The commit marker of one range: what makes the range committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Format version (1).
    pub version: u32,
    /// Topic, as in file names.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Incarnation of the partition's log (see [`PartName::epoch`]).
    pub epoch: u32,
    /// First offset of the range.
    pub first: i64,
    /// Last offset of the range.
    pub last: i64,
    /// The writer that committed it (a sink's random id).
    pub writer: String,
    /// When.
    pub committed_at: DateTime<Utc>,
    /// The range's files.
    pub files: Vec<MarkerFile>,
}

/// The folder name of a partition (and epoch) under `_commits/` and
/// `_staging/`: `<topic>-p<partition>` or `<topic>-p<partition>e<epoch>`.
pub fn partition_key(topic: &str, partition: i32, epoch: u32) -> String {
    let e = if epoch == 0 {
        String::new()
    } else {
        format!("e{epoch}")
    };
    format!("{}-p{partition}{e}", files::safe_topic(topic))
}

/// The epoch a `_commits/` folder name belongs to, if it is this partition's.
fn epoch_of_key(key: &str, topic: &str, partition: i32) -> Option<u32> {
    let rest = key.strip_prefix(&format!("{}-p{partition}", files::safe_topic(topic)))?;
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix('e')?.parse().ok().filter(|&e| e > 0)
}

/// Where the marker of the range starting at `first` goes.
pub fn marker_path(key: &str, first: i64) -> String {
    format!("{COMMITS}/{key}/o{first:020}.json")
}

/// The staging name of one part.
pub fn staging_path(key: &str, first: i64, writer: &str, table: Table, dt: NaiveDate) -> String {
    format!(
        "{STAGING}/{key}/o{first:020}.{writer}.{}.{}.parquet",
        table.dir(),
        dt.format("%Y-%m-%d")
    )
}

/// The start offset and writer of a staging name.
fn parse_staging(name: &str) -> Option<(i64, &str)> {
    let file = name.rsplit('/').next()?;
    let mut it = file.split('.');
    let first = it.next()?.strip_prefix('o')?.parse().ok()?;
    Some((first, it.next()?))
}

/// A fresh writer id: 16 hex digits from the host, the process and the
/// clock, different for every sink.
pub fn writer_id() -> String {
    use sha2::{Digest, Sha256};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes(),
    );
    h.update(
        COUNT
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        h.update(host.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A part ready to commit: staged name, final name, rows, table.
pub(super) struct Staged {
    pub table: Table,
    pub staging: String,
    pub path: String,
    pub rows: u64,
}

fn store_err(e: StoreError) -> SinkError {
    SinkError::Store(Box::new(e))
}

/// Runs steps 1–4 for one range. On a lost race the staging is removed and
/// [`SinkError::Fenced`] returned.
pub(super) fn commit_range(
    store: &OutputStore,
    mut marker: Marker,
    parts: Vec<Staged>,
) -> Result<Marker, SinkError> {
    let key = partition_key(&marker.topic, marker.partition, marker.epoch);
    let key_path = marker_path(&key, marker.first);
    for p in &parts {
        let bytes = match store.stage(&p.staging) {
            Ok(b) => b,
            // Only a writer that committed a range from this start (or a
            // later one) removes others' staging: this one lost.
            Err(e) if e.is_not_found() && store.exists(&key_path).map_err(store_err)? => {
                return Err(fenced(store, &marker, &parts, &key_path));
            }
            Err(e) => return Err(store_err(e)),
        };
        marker.files.push(MarkerFile {
            table: p.table.dir().to_string(),
            staging: p.staging.clone(),
            path: p.path.clone(),
            rows: p.rows,
            bytes,
        });
    }
    crate::failpoint::hit("before_marker");
    let body = serde_json::to_vec_pretty(&marker).map_err(|e| SinkError::Marker {
        path: marker_path(&key, marker.first),
        message: e.to_string(),
    })?;
    let path = marker_path(&key, marker.first);
    if !store.put_if_absent(&path, body).map_err(store_err)? {
        // A create retried after a reply lost on the way back finds its own
        // marker: the range is ours. Anyone else's marker fences this writer.
        let own = read_marker(store, &path).is_ok_and(|m| m.writer == marker.writer);
        if !own {
            return Err(fenced(store, &marker, &parts, &path));
        }
        tracing::warn!(marker = %path, "the marker's create was retried and found already made by this writer");
    }
    store.sync_dirs([path.as_str()]).map_err(store_err)?;
    publish(store, &marker)?;
    sweep(store, &key, marker.first, &marker.writer)?;
    Ok(marker)
}

/// The error of a writer that lost the range to `path`'s marker, after
/// removing its staging (and spool files) as far as it can.
fn fenced(store: &OutputStore, marker: &Marker, parts: &[Staged], path: &str) -> SinkError {
    for p in parts {
        if let Err(e) = store.delete(&p.staging) {
            tracing::warn!(error = %e, file = %p.staging, "removing the staging of a lost range");
        }
        let _ = std::fs::remove_file(store.write_path(&p.staging));
    }
    let holder = read_marker(store, path)
        .map(|m| m.writer)
        .unwrap_or_else(|_| "unknown".into());
    SinkError::Fenced {
        topic: marker.topic.clone(),
        partition: marker.partition,
        first: marker.first,
        holder,
    }
}

/// Renames the marker's staged files to their final names; a file already
/// published (by this writer before a crash, or by a recovering instance) is
/// skipped.
pub fn publish(store: &OutputStore, marker: &Marker) -> Result<(), SinkError> {
    for (i, f) in marker.files.iter().enumerate() {
        match store.rename(&f.staging, &f.path) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                if !store.exists(&f.path).map_err(store_err)? {
                    return Err(SinkError::Marker {
                        path: marker_path(
                            &partition_key(&marker.topic, marker.partition, marker.epoch),
                            marker.first,
                        ),
                        message: format!(
                            "its file {} is neither staged nor published; the range's rows are lost from the files (they are still in Kafka from offset {}). Fix: restore the file from a backup, or delete this marker and every later one of the partition so the range is read again",
                            f.path, marker.first
                        ),
                    });
                }
            }
            Err(e) => return Err(store_err(e)),
        }
        if i == 0 {
            crate::failpoint::hit("mid_publish");
        }
    }
    store
        .sync_dirs(marker.files.iter().map(|f| f.path.as_str()))
        .map_err(store_err)
}

/// Removes staging of `key` left by other writers at or before `upto`:
/// their ranges lost to a marker that exists now.
fn sweep(store: &OutputStore, key: &str, upto: i64, own: &str) -> Result<(), SinkError> {
    for l in store.list(&format!("{STAGING}/{key}")).map_err(store_err)? {
        if let Some((first, writer)) = parse_staging(&l.path) {
            if first <= upto && writer != own {
                tracing::info!(file = %l.path, "removing staging a stale writer left");
                store.delete(&l.path).map_err(store_err)?;
            }
        }
    }
    Ok(())
}

fn read_marker(store: &OutputStore, path: &str) -> Result<Marker, SinkError> {
    let bytes = store.get(path).map_err(store_err)?;
    serde_json::from_slice(&bytes).map_err(|e| SinkError::Marker {
        path: path.to_string(),
        message: format!(
            "{e}. Fix: a marker is written whole or not at all; this one was changed by hand, restore it"
        ),
    })
}

/// The markers of one partition, per epoch, in offset order. Lists only
/// the partition's own folders (one request for the folder names, one per
/// epoch), so it costs the same however many partitions share the root.
pub fn markers(
    store: &OutputStore,
    topic: &str,
    partition: i32,
) -> Result<BTreeMap<u32, Vec<String>>, SinkError> {
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for key in store.folders(COMMITS).map_err(store_err)? {
        let Some(epoch) = epoch_of_key(&key, topic, partition) else {
            continue;
        };
        let paths: Vec<String> = store
            .list(&format!("{COMMITS}/{key}"))
            .map_err(store_err)?
            .into_iter()
            .map(|l| l.path)
            .filter(|p| p.ends_with(".json"))
            .collect();
        if !paths.is_empty() {
            out.insert(epoch, paths);
        }
    }
    Ok(out)
}

/// Where `(topic, partition)` stands: finishes a publish a crash cut
/// short, removes staging that can no longer commit and, for a local root,
/// the debris of folders written before markers existed.
pub fn recover(store: &OutputStore, topic: &str, partition: i32) -> Result<Resume, SinkError> {
    let markers = markers(store, topic, partition)?;
    let mut resume = Resume {
        next: None,
        epoch: 0,
    };
    // Ranges (epoch, first) that have a marker.
    let mut covered: HashSet<(u32, i64)> = HashSet::new();
    for (&epoch, paths) in &markers {
        let key = partition_key(topic, partition, epoch);
        let firsts: Vec<i64> = paths
            .iter()
            .filter_map(|p| {
                p.rsplit('/')
                    .next()?
                    .strip_prefix('o')?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        covered.extend(firsts.iter().map(|&f| (epoch, f)));
        // Staged parts: finish the publish of a marker that lists them;
        // remove those of ranges that lost or can never commit.
        let newest = match paths.last() {
            Some(p) => Some(read_marker(store, p)?),
            None => None,
        };
        let next = newest.as_ref().map(|m| m.last + 1);
        let mut finished: HashSet<i64> = HashSet::new();
        for l in store.list(&format!("{STAGING}/{key}")).map_err(store_err)? {
            let Some((first, _)) = parse_staging(&l.path) else {
                continue;
            };
            if finished.contains(&first) {
                continue;
            }
            if firsts.contains(&first) {
                let m = read_marker(store, &marker_path(&key, first))?;
                if m.files.iter().any(|f| f.staging == l.path) {
                    tracing::warn!(
                        topic,
                        partition,
                        first,
                        "finishing the publish of a committed range an earlier run left half done"
                    );
                    publish(store, &m)?;
                    finished.insert(first);
                    continue;
                }
            }
            // A start before the resume point can never win its marker.
            if next.is_some_and(|n| first < n) {
                store.delete(&l.path).map_err(store_err)?;
            }
        }
        if epoch >= resume.epoch {
            if let Some(n) = next {
                resume = Resume {
                    next: Some(n),
                    epoch,
                };
            }
        }
    }
    if let Some(root) = store.local_root() {
        // Folders written before markers: progress and debris by name.
        let legacy =
            files::scan_progress(root, topic, partition).map_err(|source| SinkError::Io {
                op: "scanning",
                path: root.to_path_buf(),
                source,
            })?;
        for d in &legacy.debris {
            let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if PartName::parse(name).is_some_and(|p| covered.contains(&(p.epoch, p.first))) {
                continue; // part of a committed range being published
            }
            tracing::warn!(file = %d.display(), topic, partition, "removing an uncommitted file left by an earlier crash");
            match std::fs::remove_file(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SinkError::Io {
                        op: "removing",
                        path: d.clone(),
                        source,
                    })
                }
            }
        }
        if let Some(n) = legacy.next_offset {
            if legacy.epoch > resume.epoch
                || (legacy.epoch == resume.epoch && resume.next.is_none_or(|r| n > r))
            {
                resume = Resume {
                    next: Some(n),
                    epoch: legacy.epoch,
                };
            }
        }
    }
    Ok(resume)
}

/// Staged parts of `(topic, partition)` not yet published, every epoch
/// (tests and `verbatim check` count them as debris).
pub fn staged(store: &OutputStore, topic: &str, partition: i32) -> Result<usize, SinkError> {
    let mut n = 0;
    for l in store.list(STAGING).map_err(store_err)? {
        let key = l.path.split('/').nth(1).unwrap_or("");
        if epoch_of_key(key, topic, partition).is_some() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn marker(first: i64, last: i64, writer: &str) -> Marker {
        Marker {
            version: 1,
            topic: "fb".into(),
            partition: 0,
            epoch: 0,
            first,
            last,
            writer: writer.into(),
            committed_at: Utc::now(),
            files: vec![],
        }
    }

    fn stage(store: &OutputStore, first: i64, last: i64, writer: &str) -> Vec<Staged> {
        let dt = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let key = partition_key("fb", 0, 0);
        let staging = staging_path(&key, first, writer, Table::Comments, dt);
        let w = store.write_path(&staging);
        std::fs::create_dir_all(w.parent().unwrap()).unwrap();
        std::fs::write(&w, format!("{writer} {first}-{last}")).unwrap();
        let name = PartName {
            topic: "fb".into(),
            partition: 0,
            epoch: 0,
            first,
            last,
            part: 1,
            parts: 1,
        };
        vec![Staged {
            table: Table::Comments,
            staging,
            path: format!("comments/dt=2026-01-01/{}", name.file_name()),
            rows: (last - first + 1) as u64,
        }]
    }

    fn stores(dir: &std::path::Path) -> Vec<OutputStore> {
        vec![
            OutputStore::local(&dir.join("local")).unwrap(),
            OutputStore::with_store(Arc::new(object_store::memory::InMemory::new()), dir).unwrap(),
        ]
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(partition_key("fb", 3, 0), "fb-p3");
        assert_eq!(partition_key("fb", 3, 2), "fb-p3e2");
        assert_eq!(epoch_of_key("fb-p3e2", "fb", 3), Some(2));
        assert_eq!(epoch_of_key("fb-p3", "fb", 3), Some(0));
        assert_eq!(epoch_of_key("fb-p30", "fb", 3), None);
        assert_eq!(epoch_of_key("fb-p3e0", "fb", 3), None);
        let dt = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let s = staging_path("fb-p3", 42, "abcd", Table::Rejected, dt);
        assert_eq!(
            s,
            "_staging/fb-p3/o00000000000000000042.abcd.rejected.2026-01-02.parquet"
        );
        assert_eq!(parse_staging(&s), Some((42, "abcd")));
        assert_ne!(writer_id(), writer_id());
    }

    #[test]
    fn a_stale_writer_loses_the_race_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            // The new owner and a zombie both built a range from offset 100.
            let zombie = stage(&store, 100, 149, "zombie");
            let owner = stage(&store, 100, 179, "owner");
            let won = commit_range(&store, marker(100, 179, "owner"), owner).unwrap();
            assert_eq!(won.files.len(), 1);
            let lost = commit_range(&store, marker(100, 149, "zombie"), zombie).unwrap_err();
            match lost {
                SinkError::Fenced { first, holder, .. } => {
                    assert_eq!((first, holder.as_str()), (100, "owner"))
                }
                e => panic!("{e}"),
            }
            // One published file, the owner's; no staging left.
            let files = store.list("comments").unwrap();
            assert_eq!(files.len(), 1);
            assert_eq!(store.get(&files[0].path).unwrap(), b"owner 100-179");
            assert_eq!(staged(&store, "fb", 0).unwrap(), 0);
            let r = recover(&store, "fb", 0).unwrap();
            assert_eq!(r.next, Some(180));
        }
    }

    #[test]
    fn a_marker_create_retried_after_a_lost_reply_is_still_ours() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            let parts = stage(&store, 0, 9, "me");
            // The first attempt reached the store; its reply did not reach us.
            let mine = serde_json::to_vec(&marker(0, 9, "me")).unwrap();
            assert!(store
                .put_if_absent(&marker_path(&partition_key("fb", 0, 0), 0), mine)
                .unwrap());
            let m = commit_range(&store, marker(0, 9, "me"), parts).unwrap();
            assert_eq!(m.files.len(), 1);
            assert_eq!(store.list("comments").unwrap().len(), 1, "published");
        }
    }

    #[test]
    fn concurrent_writers_commit_each_range_exactly_once() {
        // Eight writers race for the same start, over and over, on one store.
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            let mut next = 0i64;
            for round in 0..5 {
                let winners: Vec<bool> = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..8)
                        .map(|w| {
                            let store = store.clone();
                            s.spawn(move || {
                                let writer = format!("w{round}x{w}");
                                let last = next + 10 + w as i64;
                                let parts = stage(&store, next, last, &writer);
                                commit_range(&store, marker(next, last, &writer), parts).is_ok()
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                assert_eq!(winners.iter().filter(|w| **w).count(), 1, "round {round}");
                let r = recover(&store, "fb", 0).unwrap();
                next = r.next.unwrap();
            }
            assert_eq!(markers(&store, "fb", 0).unwrap()[&0].len(), 5);
            assert_eq!(store.list("comments").unwrap().len(), 5);
        }
    }

    #[test]
    fn recovery_finishes_a_half_published_range() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            let parts = stage(&store, 0, 9, "a");
            let mut m = marker(0, 9, "a");
            let p = &parts[0];
            m.files.push(MarkerFile {
                table: "comments".into(),
                staging: p.staging.clone(),
                path: p.path.clone(),
                rows: 10,
                bytes: 0,
            });
            store.stage(&p.staging).unwrap();
            // The crash came after the marker, before the rename.
            let key = partition_key("fb", 0, 0);
            assert!(store
                .put_if_absent(&marker_path(&key, 0), serde_json::to_vec(&m).unwrap())
                .unwrap());
            assert!(store.list("comments").unwrap().is_empty());
            // A staged part of a writer that never won is kept while it could.
            stage(&store, 10, 19, "b");
            store
                .stage(&staging_path(
                    &key,
                    10,
                    "b",
                    Table::Comments,
                    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                ))
                .unwrap();
            let r = recover(&store, "fb", 0).unwrap();
            assert_eq!((r.next, r.epoch), (Some(10), 0));
            assert_eq!(store.list("comments").unwrap().len(), 1);
            assert_eq!(staged(&store, "fb", 0).unwrap(), 1, "o10 may still win");
        }
    }
}
