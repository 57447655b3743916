//! Embedding throughput of both shipped models (all-MiniLM-L6-v2 and the
//! default multilingual-e5-small): every backend and precision, and the
//! Python peer (sentence-transformers, same model files, same sentences, same
//! prefix, same threads), measured in one run, each in its own process so
//! peak RSS is its own.
//!
//! Corpus: the first 2,000 texts of 10–60 words in
//! `../shared/data/labelled/mams_train.jsonl` (restaurant feedback).
//! Prints sentences/s, sentences per CPU-second, peak RSS, the ratio to the
//! peer, and int8's agreement with fp32 (mean/min cosine, top-10 neighbours).
//! Then, per model, the same texts through the whole pipeline (mock Kafka →
//! embeddings → analysis → Parquet) against bare embedding.
//!
//! `cargo bench --bench embed` (needs `bash models/setup.sh`; the peer needs
//! `bash .ci/setup-peer.sh`). Under `cargo test` it runs once on 100 texts.
//! `VERBATIM_BENCH_LANES`, `VERBATIM_BENCH_TOKEN_BUDGET` and
//! `VERBATIM_BENCH_MAX_ROWS` replace the defaults of `nlp.lanes`,
//! `nlp.token_budget` and `nlp.max_rows` for verbatim's engines, to compare
//! settings in one run. `VERBATIM_BENCH_MODEL` measures that model only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use verbatim::config::{Backend, NlpConfig, Precision};

const THREADS: usize = 2;

/// The models measured, the default last.
const MODELS: [&str; 2] = ["all-MiniLM-L6-v2", "multilingual-e5-small"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(n: usize) -> Vec<String> {
    let p = root().join("../shared/data/labelled/mams_train.jsonl");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .filter(|t| (10..=60).contains(&t.split_whitespace().count()))
        .take(n)
        .collect()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn nlp_cfg(model: &str, backend: Backend, precision: Precision) -> NlpConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let defaults = NlpConfig::default();
    NlpConfig {
        model: model.to_string(),
        backend,
        precision,
        models_dir: root().join("models"),
        cache_dir: root().join(".cache/models"),
        onnxruntime_library: root().join(".cache/onnxruntime/libonnxruntime.so"),
        heads_dir: root().join("models/heads"),
        threads: THREADS,
        // `nlp.lanes`, to compare against the default (one per thread).
        lanes: env("VERBATIM_BENCH_LANES").unwrap_or(defaults.lanes),
        token_budget: env("VERBATIM_BENCH_TOKEN_BUDGET").unwrap_or(defaults.token_budget),
        max_rows: env("VERBATIM_BENCH_MAX_ROWS").unwrap_or(defaults.max_rows),
        ..defaults
    }
}

/// Child mode: embed the corpus with one model and engine, write vectors,
/// print JSON.
fn worker(model: &str, engine: &str, corpus_path: &Path, out: &Path) {
    let (backend, precision) = match engine {
        "onnx-int8" => (Backend::Onnx, Precision::Int8),
        "onnx-fp32" => (Backend::Onnx, Precision::Fp32),
        "torch" => (Backend::Torch, Precision::Fp32),
        other => panic!("unknown engine {other}"),
    };
    let texts: Vec<String> = std::fs::read_to_string(corpus_path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cfg = nlp_cfg(model, backend, precision);
    let mut op = verbatim::nlp::embed_operator(&cfg).expect("model set-up");
    // Tokenization alone, the same way the stage does it (rayon, all cores).
    let files = verbatim::nlp::model::ModelFiles::open(&cfg).unwrap();
    let tok = verbatim::nlp::tokenize::TextTokenizer::from_file(&files.tokenizer, 256)
        .unwrap()
        .with_prefix(&files.manifest.prefix);
    tok.encode_batch(&refs[..64.min(refs.len())]).unwrap();
    let t = Instant::now();
    let toks = tok.encode_batch(&refs).unwrap();
    let tokenize_s = t.elapsed().as_secs_f64();
    let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
    let plan = verbatim::nlp::embed::plan_sub_batches(&lengths, cfg.token_budget, cfg.max_rows);
    let padded_sorted = verbatim::nlp::embed::padded_tokens(&lengths, &plan);
    let unsorted: Vec<Vec<usize>> = (0..lengths.len())
        .collect::<Vec<_>>()
        .chunks(32)
        .map(<[usize]>::to_vec)
        .collect();
    let padded_unsorted = verbatim::nlp::embed::padded_tokens(&lengths, &unsorted);
    op.embed_texts(&refs[..64.min(refs.len())]).unwrap(); // warm-up
    let (t0, c0) = (Instant::now(), cpu_seconds());
    // The stream hands the stage batches (`batch.max_records`), not the
    // whole corpus: VERBATIM_BENCH_CHUNK=256 embeds it that way.
    let chunk = std::env::var("VERBATIM_BENCH_CHUNK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(refs.len())
        .max(1);
    let vecs: Vec<Vec<f32>> = refs
        .chunks(chunk)
        .flat_map(|c| op.embed_texts(c).unwrap())
        .collect();
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let mut f = std::fs::File::create(out).unwrap();
    for v in &vecs {
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    println!(
        "{}",
        serde_json::json!({"engine": format!("verbatim {engine}"), "prefix": files.manifest.prefix, "n": texts.len(), "wall_s": wall, "cpu_s": cpu,
            "peak_rss_mib": peak_rss_mib(), "tokenize_s": tokenize_s, "tokens": lengths.iter().sum::<usize>(),
            "padded_sorted": padded_sorted, "padded_unsorted_32": padded_unsorted})
    );
}

fn read_vecs(p: &Path, dim: usize) -> Vec<Vec<f32>> {
    let b = std::fs::read(p).unwrap();
    b.chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect::<Vec<_>>()
        .chunks(dim)
        .map(<[f32]>::to_vec)
        .collect()
}

fn top10(vecs: &[Vec<f32>], i: usize) -> Vec<usize> {
    let mut s: Vec<(f32, usize)> = vecs
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, v)| (verbatim::nlp::encoder::cosine(&vecs[i], v), j))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.into_iter().take(10).map(|x| x.1).collect()
}

fn main() {
    // As the `verbatim` binary does, before any thread starts.
    verbatim::metrics::memory::limit_heap_arenas();
    let args: Vec<String> = std::env::args().collect();
    if let Ok(engine) = std::env::var("VERBATIM_BENCH_WORKER") {
        let model = std::env::var("VERBATIM_BENCH_MODEL").unwrap_or_else(|_| MODELS[0].into());
        worker(&model, &engine, Path::new(&args[1]), Path::new(&args[2]));
        return;
    }
    let missing: Vec<&str> = MODELS
        .iter()
        .copied()
        .filter(|m| {
            !root()
                .join(format!(".cache/models/{m}/model.int8.onnx"))
                .is_file()
        })
        .collect();
    if !missing.is_empty() {
        let required = std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "run `bash models/setup.sh` first ({missing:?} missing)"
        );
        eprintln!("embed bench: skipped, run `bash models/setup.sh` first ({missing:?} missing)");
        return;
    }
    let benching = args.iter().any(|a| a == "--bench");
    let n = if benching { 2000 } else { 100 };
    let texts = corpus(n);
    let dir = tempfile::tempdir().unwrap();
    let corpus_path = dir.path().join("corpus.txt");
    std::fs::write(&corpus_path, texts.join("\n")).unwrap();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    println!(
        "embed bench: {} sentences ({:.1} words avg), {THREADS} threads, models {}",
        texts.len(),
        words as f64 / texts.len() as f64,
        MODELS.join(", ")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let only = std::env::var("VERBATIM_BENCH_MODEL").ok();
    for model in MODELS {
        if only.as_deref().is_none_or(|m| m == model) {
            bench_model(model, &args[0], &texts, &corpus_path, dir.path(), &rt);
        }
    }
}

/// Runs every engine and the peer on one model, then the pipeline, and
/// prints the table.
fn bench_model(
    model: &str,
    exe: &str,
    texts: &[String],
    corpus_path: &Path,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) {
    println!("\n{model}:");
    let mut engines = vec!["onnx-int8", "onnx-fp32"];
    if cfg!(feature = "torch") {
        engines.push("torch");
    }
    let mut results = Vec::new();
    for e in &engines {
        let out = dir.join(format!("{model}-{e}.f32"));
        let o = Command::new(exe)
            .env("VERBATIM_BENCH_WORKER", e)
            .env("VERBATIM_BENCH_MODEL", model)
            .arg(corpus_path)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{model} {e}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(o.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        results.push((e.to_string(), v, out));
    }
    let prefix = results[0].1["prefix"].as_str().unwrap_or("").to_string();
    let peer_py = root().join(".cache/peer-venv/bin/python");
    if peer_py.is_file() {
        let out = dir.join(format!("{model}-peer.f32"));
        let o = Command::new(&peer_py)
            .arg(root().join("benches/peer_embed.py"))
            .arg(root().join(".cache/models").join(model))
            .arg(corpus_path)
            .arg(THREADS.to_string())
            .arg(&out)
            .arg(&prefix)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "peer: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = o
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .unwrap()
            .to_vec();
        results.push(("peer".into(), serde_json::from_slice(&line).unwrap(), out));
    } else {
        println!(
            "  (no Python peer: run `bash .ci/setup-peer.sh` to measure sentence-transformers)"
        );
    }
    let peer_rate = results
        .iter()
        .find(|r| r.0 == "peer")
        .map(|r| r.1["n"].as_f64().unwrap() / r.1["wall_s"].as_f64().unwrap());
    println!(
        "  {:<44} {:>12} {:>16} {:>13} {:>9}",
        "engine", "sentences/s", "per CPU-second", "peak RSS MiB", "vs peer"
    );
    for (_, v, _) in &results {
        let n = v["n"].as_f64().unwrap();
        let rate = n / v["wall_s"].as_f64().unwrap();
        let per_cpu = n / v["cpu_s"].as_f64().unwrap().max(1e-9);
        let ratio = peer_rate
            .map(|p| format!("{:.2}x", rate / p))
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<44} {:>12.1} {:>16.1} {:>13.0} {:>9}",
            v["engine"].as_str().unwrap(),
            rate,
            per_cpu,
            v["peak_rss_mib"].as_f64().unwrap(),
            ratio
        );
    }
    let r0 = &results[0].1;
    println!(
        "  tokenization: {:.3} s for the corpus = {:.1}% of int8 embedding time; {} real tokens, padded {} sorted by length vs {} in arrival-order batches of 32",
        r0["tokenize_s"].as_f64().unwrap(),
        100.0 * r0["tokenize_s"].as_f64().unwrap() / r0["wall_s"].as_f64().unwrap(),
        r0["tokens"],
        r0["padded_sorted"],
        r0["padded_unsorted_32"]
    );
    // int8 against fp32 on this corpus.
    let int8 = read_vecs(&results[0].2, 384);
    let fp32 = read_vecs(&results[1].2, 384);
    let cos: Vec<f32> = int8
        .iter()
        .zip(&fp32)
        .map(|(a, b)| verbatim::nlp::encoder::cosine(a, b))
        .collect();
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    let min = cos.iter().cloned().fold(1.0, f32::min);
    let probe = int8.len().min(200);
    let agree: f64 = (0..probe)
        .map(|i| {
            let a = top10(&int8, i);
            let b = top10(&fp32, i);
            a.iter().filter(|x| b.contains(x)).count() as f64 / 10.0
        })
        .sum::<f64>()
        / probe as f64;
    println!("  int8 vs fp32: mean cosine {mean:.4}, min {min:.4}, top-10 neighbour agreement {agree:.2} (first {probe} sentences)");
    for (name, _, out) in results.iter().skip(2) {
        let other = read_vecs(out, 384);
        let c: Vec<f32> = other
            .iter()
            .zip(&fp32)
            .map(|(a, b)| verbatim::nlp::encoder::cosine(a, b))
            .collect();
        println!(
            "  {name} vs onnx fp32: min cosine {:.6}",
            c.iter().cloned().fold(1.0, f32::min)
        );
    }
    assert!(
        mean >= 0.985,
        "{model}: int8 mean cosine {mean} under 0.985: fp32 must become the default"
    );

    // The whole pipeline on the same texts: mock Kafka -> decode -> batch ->
    // embed (onnx int8) -> Parquet, timed from start until every row is
    // durable and the job has stopped.
    let bare = results[0].1["n"].as_f64().unwrap() / results[0].1["wall_s"].as_f64().unwrap();
    // Three passes over the corpus (distinct ids), so start-up is a small
    // part, cut to whole batches (`batch.max_records` = 256) so the last one
    // does not sit out `batch.max_wait_ms`.
    let mut stream: Vec<String> = (0..3).flat_map(|_| texts.iter().cloned()).collect();
    stream.truncate(stream.len() / 256 * 256);
    // Without comment analysis first: the embedding cost analysis is
    // measured against.
    let out = dir.join(model);
    let (_, _, plain) = rt.block_on(pipeline_rate(
        model,
        &stream,
        &out.join("plain"),
        Analysis::Off,
    ));
    // With analysis as shipped, clauses of contrastive sentences encoded
    // on their own as well; then without that, for the spine's own cost.
    let (overall, steady, with) = rt.block_on(pipeline_rate(
        model,
        &stream,
        &out.join("analysed"),
        Analysis::On,
    ));
    let (_, steady_sentences, _) = rt.block_on(pipeline_rate(
        model,
        &stream,
        &out.join("sentences"),
        Analysis::WithoutClauses,
    ));
    let (_, steady_pieces, pieces) = rt.block_on(pipeline_rate(
        model,
        &stream,
        &out.join("pieces"),
        Analysis::PiecesOnly,
    ));
    let added = (with.embed + with.analyze - plain.embed) / plain.embed;
    println!(
        "  comment analysis: embed stage {:.2} s without analysis; {:.2} s embed (token vectors kept, offsets tracked, clauses joined by \"but\" encoded apart too) + {:.2} s analyze with it: the analyze stage is {:.0}% of the embed stage; embed + analyze is {:+.0}% against embedding alone (the budget is +35%)",
        plain.embed,
        with.embed,
        with.analyze,
        100.0 * with.analyze / with.embed,
        100.0 * added
    );
    let steady = match steady {
        Some(s) => format!(
            "steady state (first batch written -> last row durable) {s:.1} comments/s = {:.0}% of bare int8 embedding{}",
            100.0 * s / bare,
            peer_rate.map(|p| format!(", {:.2}x the peer's bare embedding", s / p)).unwrap_or_default()
        ),
        None => "steady state: n/a (the stream was one batch)".to_string(),
    };
    println!(
        "  pipeline (mock Kafka -> embeddings int8 -> analysis -> Parquet), {} comments: {overall:.1} comments/s from start (model load and group join included) = {:.0}% of bare; {steady}",
        stream.len(),
        100.0 * overall / bare,
    );
    if let Some(s) = steady_pieces {
        println!(
            "  pipeline with nlp.encode_whole = false (a comment with clauses encoded apart is encoded only as its pieces): steady state {s:.1} comments/s = {:.0}% of bare int8 embedding; embed stage {:.2} s",
            100.0 * s / bare,
            pieces.embed
        );
    }
    if let Some(s) = steady_sentences {
        println!(
            "  pipeline with nlp.encode_clauses = false (no clause encoded on its own): steady state {s:.1} comments/s = {:.0}% of bare int8 embedding",
            100.0 * s / bare
        );
    }
}

/// How the pipeline bench runs comment analysis.
#[derive(Clone, Copy, PartialEq)]
enum Analysis {
    /// Embeddings only.
    Off,
    /// As shipped: clauses joined by "but" also encoded on their own.
    On,
    /// Analysis from the whole comments' vectors only.
    WithoutClauses,
    /// Clauses encoded apart, and such comments not encoded whole.
    PiecesOnly,
}

/// Seconds spent in the NLP stages of one pipeline run.
struct StageTimes {
    embed: f64,
    analyze: f64,
}

/// (comments/s from start, comments/s from the first written batch to the
/// end — `None` when the first batch was the whole stream, stage times).
async fn pipeline_rate(
    model: &str,
    texts: &[String],
    dir: &Path,
    analysis: Analysis,
) -> (f64, Option<f64>, StageTimes) {
    let analyze = analysis != Analysis::Off;
    use verbatim::source::kafka_mock::{produce_all, MockKafka};
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let msgs: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                (i % 3) as i32,
                None,
                serde_json::json!({"id": i.to_string(), "text": t})
                    .to_string()
                    .into_bytes(),
            )
        })
        .collect();
    produce_all(mock.bootstrap_servers(), "fb", msgs)
        .await
        .unwrap();
    let mut cfg = verbatim::config::PipelineConfig {
        kafka: Some(verbatim::config::KafkaConfig::new(
            mock.bootstrap_servers(),
            vec!["fb".into()],
            "bench",
        )),
        nlp: Some(NlpConfig {
            analyze,
            encode_clauses: matches!(analysis, Analysis::On | Analysis::PiecesOnly),
            encode_whole: analysis != Analysis::PiecesOnly,
            ..nlp_cfg(model, Backend::Onnx, Precision::Int8)
        }),
        ..Default::default()
    };
    cfg.output.root = dir.join("pipeline-out");
    let metrics = verbatim::metrics::Metrics::new();
    let m = metrics.clone();
    let written = metrics.comments.clone();
    let n = texts.len() as u64;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let first = std::sync::Arc::new(std::sync::Mutex::new(None::<(Instant, u64)>));
    let first_w = first.clone();
    let shutdown = async move {
        loop {
            let w = written.get();
            if w > 0 {
                let mut f = first_w.lock().unwrap();
                if f.is_none() {
                    *f = Some((Instant::now(), w));
                }
            }
            if w >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let s = verbatim::pipeline::PipelineBuilder::new(cfg)
        .metrics(metrics)
        .run_kafka(shutdown)
        .await
        .unwrap();
    assert_eq!(s.comments, n);
    let (end, cpu) = (Instant::now(), cpu_seconds() - c0);
    let stages: Vec<String> = [
        "language",
        "redact",
        "flags",
        "embed",
        "analyze",
        "themes",
        "sink_write",
        "sink_commit",
        "offset_commit",
    ]
    .iter()
    .map(|st| format!("{st} {:.2} s", m.stage_total(st)))
    .collect();
    println!(
        "  pipeline{} stages over {:.2} s ({cpu:.1} CPU-seconds, {:.2} cores busy): {}",
        match analysis {
            Analysis::Off => " (analysis off)",
            Analysis::On => "",
            Analysis::WithoutClauses => " (clauses not encoded apart)",
            Analysis::PiecesOnly => " (comments with clauses encoded apart not encoded whole)",
        },
        (end - t0).as_secs_f64(),
        cpu / (end - t0).as_secs_f64(),
        stages.join(", ")
    );
    let (t1, c1) = first.lock().unwrap().unwrap_or((t0, 0));
    let steady = (c1 < n).then(|| (n - c1) as f64 / (end - t1).as_secs_f64());
    let times = StageTimes {
        embed: m.stage_total("embed"),
        analyze: m.stage_total("analyze"),
    };
    (n as f64 / (end - t0).as_secs_f64(), steady, times)
}
