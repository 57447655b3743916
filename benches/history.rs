//! Repeat-detection state: memory per customer and the cost of checking,
//! saving and loading it (issue 17: "sized for millions of customers").
//!
//! Streams synthetic complaints through one partition's history: N
//! customers, each with one negative mention, a fifth of them with a second
//! one about another target, a tenth with a repeat of the first. Prints
//! resident memory added per customer, ns per checked comment, and the
//! history file's size and save/load times. `cargo bench --bench history`
//! runs 1M customers; under `cargo test --benches` it runs 20k as a smoke
//! test.

use std::time::Instant;

use verbatim::history::store::{customer_key, PartitionHistory};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // As the `verbatim` binary does, before any thread starts.
    verbatim::metrics::memory::limit_heap_arenas();
    let benching = std::env::args().any(|a| a == "--bench");
    let customers: i64 = if benching { 1_000_000 } else { 20_000 };
    const DAY: i64 = 86_400_000_000;
    let window = 30 * DAY;
    let targets = ["product", "staff", "price", "delivery", "process"];
    // Keys first, so their memory is not counted as the history's.
    let keys: Vec<u64> = (0..customers)
        .map(|c| customer_key(&format!("{c:032x}")))
        .collect();
    let before = rss_kib();
    let mut h = PartitionHistory::new();
    let t = Instant::now();
    let mut offset = 0i64;
    let mut found = 0usize;
    let mut check = |h: &mut PartitionHistory, c: usize, target: &str, day: i64| {
        let at = day * DAY + c as i64;
        found += h.earlier(keys[c], target, at, offset, window).len();
        h.record(keys[c], &[target], at, offset, &format!("fb-0-{offset}"));
        offset += 1;
    };
    for c in 0..customers as usize {
        check(&mut h, c, targets[c % 5], (c % 20) as i64);
    }
    for c in (0..customers as usize).step_by(5) {
        check(&mut h, c, targets[(c + 1) % 5], 21);
    }
    for c in (0..customers as usize).step_by(10) {
        check(&mut h, c, targets[c % 5], 22);
    }
    let secs = t.elapsed().as_secs_f64();
    let after = rss_kib();
    let comments = offset;
    let per_customer = (after.saturating_sub(before) * 1024) as f64 / customers as f64;
    println!(
        "history: {} customers, {} entries from {comments} comments; {found} repeats found",
        h.customers(),
        h.entries()
    );
    println!(
        "  memory: +{:.1} MiB resident, {per_customer:.0} bytes per customer ({:.0} MiB per 1M)",
        after.saturating_sub(before) as f64 / 1024.0,
        per_customer * 1e6 / 1048576.0
    );
    println!(
        "  check + record: {:.0} ns per comment",
        secs * 1e9 / comments as f64
    );
    let dir = std::env::temp_dir().join(format!("verbatim-history-bench-{}", std::process::id()));
    let store = match verbatim::sink::store::OutputStore::local(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("opening {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    let path = "history/fb-p0.parquet";
    let t = Instant::now();
    h.prune(window);
    let pruned = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if let Err(e) = h.save(&store, path) {
        eprintln!("save failed: {e}");
        std::process::exit(1);
    }
    let saved = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.join(path))
        .map(|m| m.len())
        .unwrap_or(0);
    let t = Instant::now();
    let back = match PartitionHistory::load(&store, path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    let loaded = t.elapsed().as_secs_f64();
    println!(
        "  prune {:.0} ms, save {:.0} ms ({:.1} MiB file, {:.1} bytes per entry), load {:.0} ms",
        pruned * 1e3,
        saved * 1e3,
        size as f64 / 1048576.0,
        size as f64 / back.entries().max(1) as f64,
        loaded * 1e3
    );
    assert_eq!(back.entries(), h.entries(), "the file reads back whole");
    let _ = std::fs::remove_dir_all(&dir);
}
