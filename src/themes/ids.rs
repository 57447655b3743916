//! Theme ids that stay unique when several writers share one output root.
//!
//! Every job instance of a consumer group, and every `verbatim themes
//! refit`, creates themes. Were each to count ids on from the model it
//! loaded, two instances would both call their next theme 58, and a
//! report over the shared root would add the Wi-Fi complaints of one to
//! the parcel complaints of the other. So a writer mints ids only from
//! blocks it has claimed: block `k` holds ids `k * BLOCK .. (k + 1) *
//! BLOCK` (block 0 starts at 1), and it is claimed by creating
//! `themes/ids/b<k>.json` only if nothing is there (an atomic create on a
//! folder and on S3-compatible stores), so two writers never hold one block.
//! An instance that stops cleanly hands back what it did not use
//! (`themes/ids/released/<first>-<end>.json`); the next writer to claim
//! takes a handed-back range over first, by creating
//! `themes/ids/resumed/<first>-<end>.json` only if nothing is there, so a
//! restarted job goes on numbering where it stopped. After a crash nothing
//! is handed back: the ids left in its blocks stay unused.

use std::collections::VecDeque;
use std::ops::Range;

use super::store::{StoreError, ThemeStore};

/// Ids per claimed block.
pub const BLOCK: u32 = 1000;
/// Where the claims live under the output root.
pub const CLAIMS: &str = "themes/ids";
/// Theme ids are `Int32` in the Parquet files.
const MAX_ID: u32 = i32::MAX as u32;
/// Claims tried before giving up (each lost race moves one block on).
const TRIES: usize = 64;

/// The ids a writer may still give to new themes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdPool {
    ranges: VecDeque<Range<u32>>,
}

impl IdPool {
    /// Takes the next id, if any is left.
    pub fn take(&mut self) -> Option<u32> {
        while let Some(r) = self.ranges.front_mut() {
            if let Some(id) = r.next() {
                return Some(id);
            }
            self.ranges.pop_front();
        }
        None
    }

    /// How many ids are left.
    pub fn left(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()
    }

    /// Adds another pool's ranges after this one's.
    pub fn absorb(&mut self, other: IdPool) {
        for r in other.ranges {
            self.add(r);
        }
    }

    /// Adds a claimed range.
    pub fn add(&mut self, r: Range<u32>) {
        if r.start < r.end {
            self.ranges.push_back(r);
        }
    }
}

/// The ids of block `k`.
fn block_range(k: u32) -> Range<u32> {
    (k * BLOCK).max(1)..((k + 1) * BLOCK).min(MAX_ID)
}

/// The claim file of block `k`.
fn claim_path(k: u32) -> String {
    format!("{CLAIMS}/b{k:07}.json")
}

/// The highest block claimed so far under the root.
fn last_claimed(store: &ThemeStore) -> Result<Option<u32>, StoreError> {
    Ok(store
        .output()
        .list(CLAIMS)?
        .iter()
        .filter_map(|l| {
            let name = l.path.rsplit('/').next()?;
            name.strip_prefix('b')?.strip_suffix(".json")?.parse().ok()
        })
        .max())
}

/// Handed-back ranges: `released/` names `<first>-<end>.json`.
const RELEASED: &str = "themes/ids/released";
/// Handed-back ranges taken over (one writer each).
const RESUMED: &str = "themes/ids/resumed";

/// A range's file name under [`RELEASED`] and [`RESUMED`].
fn range_name(r: &Range<u32>) -> String {
    format!("{:010}-{:010}.json", r.start, r.end)
}

/// Hands the unused ids of `pool` back (a clean stop).
pub fn release(store: &ThemeStore, pool: IdPool) -> Result<(), StoreError> {
    for r in pool.ranges.into_iter().filter(|r| r.start < r.end) {
        store
            .output()
            .put(&format!("{RELEASED}/{}", range_name(&r)), b"{}".to_vec())?;
    }
    Ok(())
}

/// Takes handed-back ranges over, lowest first, until `count` ids are in
/// `pool`.
fn resume(store: &ThemeStore, pool: &mut IdPool, count: u64) -> Result<(), StoreError> {
    let mut released: Vec<Range<u32>> = store
        .output()
        .list(RELEASED)?
        .iter()
        .filter_map(|l| {
            let name = l.path.rsplit('/').next()?.strip_suffix(".json")?;
            let (a, b) = name.split_once('-')?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .collect();
    released.sort_by_key(|r| r.start);
    for r in released {
        if pool.left() >= count {
            break;
        }
        let name = range_name(&r);
        if store
            .output()
            .put_if_absent(&format!("{RESUMED}/{name}"), b"{}".to_vec())?
        {
            // Taken over: no one need list it again (the marker stays, so
            // a writer that listed it before this delete cannot take it).
            store.output().delete(&format!("{RELEASED}/{name}"))?;
            pool.add(r);
        }
    }
    Ok(())
}

/// Claims at least `count` new ids: handed-back ranges first, then fresh
/// blocks, none below `floor` (one past the highest id the root's model
/// already knows, so ids minted before claims existed are never handed out
/// again). `who` goes into the claim file for whoever reads the folder.
pub fn claim(store: &ThemeStore, count: u64, floor: u32, who: &str) -> Result<IdPool, StoreError> {
    let mut pool = IdPool::default();
    resume(store, &mut pool, count.max(1))?;
    let first_allowed = if floor <= 1 { 0 } else { floor.div_ceil(BLOCK) };
    let mut tries = 0;
    while pool.left() < count.max(1) {
        let k = last_claimed(store)?.map_or(0, |k| k + 1).max(first_allowed);
        let range = block_range(k);
        if range.start >= MAX_ID || tries >= TRIES {
            return Err(StoreError::NoIds {
                path: claim_path(k),
                tries,
            });
        }
        tries += 1;
        let body = serde_json::json!({
            "first": range.start,
            "end": range.end,
            "claimed_by": who,
            "at": chrono::Utc::now().to_rfc3339(),
        });
        if store
            .output()
            .put_if_absent(&claim_path(k), body.to_string().into_bytes())?
        {
            pool.add(range);
        }
    }
    Ok(pool)
}

/// Who claims: the host and process, for the claim file.
pub fn claimant(role: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map_or_else(|| "unknown host".into(), |h| h.trim().to_string());
    format!("{role} on {host}, pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::store::OutputStore;

    fn store(dir: &std::path::Path) -> ThemeStore {
        ThemeStore::new(OutputStore::local(dir).unwrap())
    }

    #[test]
    fn a_pool_hands_out_its_ranges_in_order_and_runs_dry() {
        let mut p = IdPool::default();
        p.add(5..7);
        p.add(3..3);
        p.add(10..11);
        assert_eq!(p.left(), 3);
        let got: Vec<u32> = std::iter::from_fn(|| p.take()).collect();
        assert_eq!(got, [5, 6, 10]);
        assert_eq!(p.left(), 0);
    }

    #[test]
    fn writers_sharing_a_root_claim_disjoint_blocks() {
        let dir = tempfile::tempdir().unwrap();
        // Two writers with their own handles on one folder, racing.
        let handles: Vec<_> = (0..2)
            .map(|w| {
                let s = store(dir.path());
                std::thread::spawn(move || {
                    (0..5)
                        .map(|_| claim(&s, 1, 1, &format!("writer {w}")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<u32> = Vec::new();
        for h in handles {
            for mut pool in h.join().unwrap() {
                assert!(pool.left() == u64::from(BLOCK) || pool.left() == u64::from(BLOCK) - 1);
                ids.extend(std::iter::from_fn(|| pool.take()));
            }
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "an id was handed to two writers");
        assert_eq!(
            std::fs::read_dir(dir.path().join(CLAIMS)).unwrap().count(),
            10
        );
        // Block 0 starts at 1: there is no theme 0.
        assert_eq!(ids.first(), Some(&1));
    }

    #[test]
    fn a_clean_stop_hands_ids_back_and_one_writer_takes_them_over() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut p = claim(&s, 1, 1, "first run").unwrap();
        let used: Vec<u32> = (0..5).filter_map(|_| p.take()).collect();
        assert_eq!(used, [1, 2, 3, 4, 5]);
        release(&s, p).unwrap();
        // The restart goes on where the first run stopped...
        let mut again = claim(&s, 1, 6, "restart").unwrap();
        assert_eq!(again.take(), Some(6));
        // ...and a second writer does not get the same range.
        let mut other = claim(&s, 1, 6, "other").unwrap();
        assert_eq!(other.take(), Some(BLOCK));
        assert_eq!(
            std::fs::read_dir(dir.path().join(RELEASED))
                .unwrap()
                .count(),
            0,
            "a range taken over is no longer listed"
        );
    }

    #[test]
    fn claims_start_above_ids_already_minted_and_cover_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        // A root whose model reached id 420 before claims existed.
        let mut p = claim(&s, 2500, 421, "test").unwrap();
        assert!(p.left() >= 2500);
        assert_eq!(p.take(), Some(BLOCK));
        // The next claim moves past every block claimed so far.
        let mut q = claim(&s, 1, 1, "test").unwrap();
        assert_eq!(q.take(), Some(4 * BLOCK));
    }
}
