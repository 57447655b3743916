//! Theme-state memory: streams comments through the online theme model and
//! prints peak RSS after 20k and after 100k of them (issue 5: it must stay
//! flat, the state being centroids, counters and bounded reservoirs).
//!
//! The comments are synthetic so the bench needs no model: 300 latent topics
//! (random directions in 384-d, each with its own vocabulary), every comment
//! a noisy copy of one topic's direction with a sentence of its words. Under
//! `cargo test --benches` it runs 2k/10k as a smoke test.
//!
//! `cargo bench --bench themes`

use std::time::Instant;

use verbatim::cli::train::Rng;
use verbatim::config::ThemesConfig;
use verbatim::nlp::encoder::normalize;
use verbatim::themes::online::{ThemeInput, ThemeModel};

const DIM: usize = 384;
const TOPICS: usize = 300;
/// Comments per batch, as `batch.max_records`.
const BATCH: usize = 256;

/// Roughly normal (sum of four uniforms).
fn gauss(rng: &mut Rng) -> f32 {
    (0..4).map(|_| rng.unit()).sum::<f32>() - 2.0
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    // As the `verbatim` binary does, before any thread starts.
    verbatim::metrics::memory::limit_heap_arenas();
    let benching = std::env::args().any(|a| a == "--bench");
    let (first, total) = if benching {
        (20_000, 100_000)
    } else {
        (2_000, 10_000)
    };
    let mut rng = Rng(42);
    let topics: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| {
            let mut v: Vec<f32> = (0..DIM).map(|_| gauss(&mut rng)).collect();
            normalize(&mut v);
            v
        })
        .collect();
    let words: Vec<Vec<String>> = (0..TOPICS)
        .map(|t| (0..12).map(|w| format!("t{t}w{w}")).collect())
        .collect();
    let mut model = ThemeModel::new(ThemesConfig::default(), DIM);
    let t0 = Instant::now();
    let mut at_first = 0.0;
    // As the themes stage runs: batches of `batch.max_records` (256),
    // labels made again at the end of each.
    let mut batch: Vec<(Vec<f32>, String)> = Vec::with_capacity(BATCH);
    let mut batch_s = 0.0;
    for i in 0..total {
        let t = (rng.next_u64() % TOPICS as u64) as usize;
        let mut v: Vec<f32> = topics[t]
            .iter()
            .map(|x| x + 0.02 * gauss(&mut rng))
            .collect();
        normalize(&mut v);
        let text: Vec<&str> = (0..8)
            .map(|_| words[t][(rng.next_u64() % 12) as usize].as_str())
            .collect();
        batch.push((v, text.join(" ")));
        if batch.len() == BATCH || i + 1 == total || i + 1 == first {
            let r0 = Instant::now();
            let items: Vec<ThemeInput<'_>> = batch
                .iter()
                .map(|(v, t)| ThemeInput::comment(v, t))
                .collect();
            model.assign_batch(&items);
            batch_s += r0.elapsed().as_secs_f64();
            batch.clear();
        }
        if i + 1 == first {
            at_first = peak_rss_mib();
            println!(
                "themes bench: after {first} comments: peak RSS {at_first:.1} MiB, {} themes",
                model.themes().len()
            );
        }
    }
    let at_total = peak_rss_mib();
    println!(
        "themes bench: after {total} comments: peak RSS {at_total:.1} MiB, {} themes; {:.0} comments/s ({:.1} s of {:.1} s assigning and labelling, batches of {BATCH}); growth {:+.1}% (issue 5 allows 10%)",
        model.themes().len(),
        total as f64 / t0.elapsed().as_secs_f64(),
        batch_s,
        t0.elapsed().as_secs_f64(),
        100.0 * (at_total - at_first) / at_first
    );
}
