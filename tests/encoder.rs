//! The inference engine against the sentence-transformers reference of
//! each shipped model (tests/fixtures/reference_embeddings*.json, made by
//! make_reference.py): tokenization parity (with the model's prefix), fp32
//! and int8 vectors, bad text, and the errors a missing or broken set-up
//! gives.
//!
//! Needs `bash models/setup.sh`; without it the tests skip, unless
//! `VERBATIM_REQUIRE_SETUP=1` (set by .ci/test.sh), where they fail.

use std::path::{Path, PathBuf};

use verbatim::config::{NlpConfig, Precision};
use verbatim::nlp::encoder::cosine;
use verbatim::nlp::{embed_operator, NlpError};

mod support;
use support::root;

/// Every shipped model and its reference file.
const MODELS: [(&str, &str); 2] = [
    ("all-MiniLM-L6-v2", "reference_embeddings.json"),
    ("multilingual-e5-small", "reference_embeddings_e5.json"),
];

fn cfg(precision: Precision) -> Option<NlpConfig> {
    model_cfg(MODELS[0].0, precision)
}

fn model_cfg(model: &str, precision: Precision) -> Option<NlpConfig> {
    let c = NlpConfig {
        model: model.to_string(),
        precision,
        models_dir: root().join("models"),
        cache_dir: root().join(".cache/models"),
        onnxruntime_library: root().join(".cache/onnxruntime/libonnxruntime.so"),
        ..NlpConfig::default()
    };
    if c.cache_dir.join(model).join("model.int8.onnx").is_file() {
        return Some(c);
    }
    let required = std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1");
    assert!(!required, "model files missing: run `bash models/setup.sh`");
    eprintln!("skipping: run `bash models/setup.sh` for the model tests");
    None
}

struct Reference {
    sentences: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn reference(file: &str) -> Reference {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures").join(file)).unwrap(),
    )
    .unwrap();
    let nums = |x: &serde_json::Value| -> Vec<f32> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap() as f32)
            .collect()
    };
    Reference {
        sentences: v["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        input_ids: v["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect(),
        embeddings: v["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(nums)
            .collect(),
    }
}

/// The tokenizer as the pipeline opens it (the manifest's prefix in front)
/// gives Python's ids, English and Russian, for every model.
#[test]
fn tokenizer_matches_python() {
    for (model, file) in MODELS {
        let Some(c) = model_cfg(model, Precision::Fp32) else {
            return;
        };
        let files = verbatim::nlp::model::ModelFiles::open(&c).unwrap();
        let t = verbatim::nlp::open_tokenizer(&files).unwrap();
        let r = reference(file);
        for (s, want) in r.sentences.iter().zip(&r.input_ids) {
            assert_eq!(&t.encode(s).unwrap().ids, want, "{model}: {s}");
        }
    }
}

/// Offsets stay in characters of the text itself when a prefix is read in
/// front of it: the prefix's tokens get (0, 0), like special tokens.
#[test]
fn prefix_tokens_carry_no_span() {
    let Some(c) = model_cfg(MODELS[1].0, Precision::Fp32) else {
        return;
    };
    let files = verbatim::nlp::model::ModelFiles::open(&c).unwrap();
    assert_eq!(files.manifest.prefix, "query: ");
    let t = verbatim::nlp::open_tokenizer(&files)
        .unwrap()
        .with_offsets(true);
    let text = "Мастер был вежливый, but the router is dead.";
    let tokens = t.encode(text).unwrap();
    let chars: Vec<char> = text.chars().collect();
    let spans: Vec<String> = tokens
        .offsets
        .iter()
        .filter(|(a, b)| b > a)
        .map(|&(a, b)| chars[a as usize..b as usize].iter().collect())
        .collect();
    assert!(spans.iter().all(|s| !s.contains("query")), "{spans:?}");
    assert_eq!(
        spans.first().map(String::as_str),
        Some("Мастер"),
        "{spans:?}"
    );
    assert!(spans.iter().any(|s| s.trim() == "router"), "{spans:?}");
}

/// Every reference sentence must come out at cosine >= 0.9999.
fn assert_parity(c: &NlpConfig, what: &str) {
    let mut op = embed_operator(c).unwrap();
    let file = MODELS
        .iter()
        .find(|(m, _)| *m == c.model)
        .map(|(_, f)| *f)
        .unwrap();
    let r = reference(file);
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let got = op.embed_texts(&texts).unwrap();
    for ((s, g), w) in texts.iter().zip(&got).zip(&r.embeddings) {
        let cos = cosine(g, w);
        assert!(cos >= 0.9999, "{what} cosine {cos} for {s:?}");
    }
}

#[test]
fn fp32_matches_sentence_transformers() {
    for (model, _) in MODELS {
        let Some(c) = model_cfg(model, Precision::Fp32) else {
            return;
        };
        assert_parity(&c, &format!("{model} onnx fp32"));
    }
}

#[cfg(feature = "torch")]
#[test]
fn torch_matches_sentence_transformers() {
    for (model, _) in MODELS {
        let Some(mut c) = model_cfg(model, Precision::Fp32) else {
            return;
        };
        c.backend = verbatim::config::Backend::Torch;
        assert_parity(&c, &format!("{model} torch"));
    }
}

#[cfg(not(feature = "torch"))]
#[test]
fn torch_backend_absent_says_how_to_build_it() {
    let Some(mut c) = cfg(Precision::Fp32) else {
        return;
    };
    c.backend = verbatim::config::Backend::Torch;
    let e = err(&c);
    assert!(e.contains("--features torch"), "{e}");
}

#[test]
fn int8_stays_close() {
    for (model, file) in MODELS {
        let Some(c) = model_cfg(model, Precision::Int8) else {
            return;
        };
        let mut op = embed_operator(&c).unwrap();
        let r = reference(file);
        let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
        let got = op.embed_texts(&texts).unwrap();
        let cos: Vec<f32> = got
            .iter()
            .zip(&r.embeddings)
            .map(|(g, w)| cosine(g, w))
            .collect();
        let mean = cos.iter().sum::<f32>() / cos.len() as f32;
        eprintln!(
            "{model} int8 vs sentence-transformers: mean cosine {mean:.4}, min {:.4}",
            cos.iter().cloned().fold(1.0, f32::min)
        );
        assert!(mean >= 0.985, "{model} int8 mean cosine {mean}");
    }
}

/// Lanes run sub-batches side by side on one session: the vectors must be
/// exactly those of one sub-batch at a time (the heads were trained on
/// them), in input order, token vectors included.
#[test]
fn lanes_give_the_same_vectors_in_order() {
    let Some(mut c) = cfg(Precision::Int8) else {
        return;
    };
    let texts: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "comment {i}: the engineer was kind {} but the app crashed",
                "again ".repeat(i % 7)
            )
        })
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut run = |lanes: usize| {
        c.threads = 2;
        c.lanes = lanes;
        // Small sub-batches, so 40 texts make several for the lanes.
        c.token_budget = 64;
        embed_operator(&c)
            .unwrap()
            .encode_texts(&texts, true, &mut |_| {})
            .unwrap()
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.len(), texts.len());
    assert!(one.iter().all(|e| !e.tokens.is_empty()));
    assert_eq!(one, two);
}

#[test]
fn bad_text_never_panics_and_long_text_is_flagged() {
    let Some(c) = cfg(Precision::Int8) else {
        return;
    };
    let mut op = embed_operator(&c).unwrap();
    let long = "The engineer was lovely but the app keeps crashing. ".repeat(2000); // ~100 kB
    let mut batch = verbatim::batch::CommentBatch::default();
    for (i, t) in [
        "",
        "   ",
        "😀😀😀🙏",
        "\u{7}\u{1b}[31mred\u{0}",
        "Связь 📶 plus English and 中文",
        long.as_str(),
    ]
    .iter()
    .enumerate()
    {
        batch.comments.push(verbatim::comment::Comment::new(
            verbatim::comment::SourceCoords {
                topic: "t".into(),
                partition: 0,
                offset: i as i64,
                kafka_timestamp: None,
            },
            i.to_string(),
            t.to_string(),
            chrono::Utc::now(),
            chrono::Utc::now(),
        ));
    }
    use verbatim::nlp::Operator;
    let metrics = verbatim::metrics::Metrics::new();
    op.on_start(&metrics).unwrap();
    op.process_batch(&mut batch).unwrap();
    // One inference observation per sub-batch (lanes or not).
    let lengths: Vec<usize> = batch
        .comments
        .iter()
        .map(|c| c.nlp.token_count.unwrap() as usize)
        .collect();
    let subs = verbatim::nlp::embed::plan_sub_batches(&lengths, c.token_budget, c.max_rows).len();
    let page = metrics.render();
    let count = page
        .lines()
        .find_map(|l| l.strip_prefix("verbatim_inference_seconds_count "))
        .unwrap_or_else(|| panic!("no inference histogram in\n{page}"));
    assert_eq!(count.trim().parse::<usize>().unwrap(), subs);
    assert!(subs >= 2, "the long comment has a sub-batch of its own");
    for c in &batch.comments {
        let e = c.nlp.embedding.as_ref().unwrap();
        assert_eq!(e.len(), 384);
        assert!(e.iter().all(|x| x.is_finite()));
        assert!(c.nlp.token_count.unwrap() <= 256);
    }
    assert_eq!(batch.comments[5].nlp.truncated, Some(true));
    assert_eq!(batch.comments[5].nlp.token_count, Some(256));
    assert_eq!(batch.comments[0].nlp.truncated, Some(false));
    assert_eq!(
        batch.comments[0].nlp.embedding_model.as_deref(),
        Some("all-MiniLM-L6-v2 onnx int8")
    );
}

fn err(c: &NlpConfig) -> String {
    match embed_operator(c) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn set_up_errors_name_the_fix() {
    let Some(good) = cfg(Precision::Int8) else {
        return;
    };
    // Missing ONNX Runtime library.
    let c = NlpConfig {
        onnxruntime_library: PathBuf::from("/nonexistent/libonnxruntime.so"),
        ..good.clone()
    };
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        let e = err(&c);
        assert!(
            e.contains("ONNX Runtime library") && e.contains("models/setup.sh"),
            "{e}"
        );
    }
    // Wrong model directory.
    let c = NlpConfig {
        cache_dir: PathBuf::from("/nonexistent/models"),
        ..good.clone()
    };
    let e = err(&c);
    assert!(
        e.contains("/nonexistent/models/all-MiniLM-L6-v2") && e.contains("models/setup.sh"),
        "{e}"
    );
    // Corrupt and missing ONNX file, in a copy of the model folder.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("all-MiniLM-L6-v2");
    copy_dir(&good.cache_dir.join("all-MiniLM-L6-v2"), &copy);
    std::fs::write(copy.join("model.int8.onnx"), b"garbage").unwrap();
    let c = NlpConfig {
        cache_dir: dir.path().to_path_buf(),
        ..good.clone()
    };
    let e = err(&c);
    assert!(
        e.contains("corrupt") && e.contains("model.int8.onnx") && e.contains("models/setup.sh"),
        "{e}"
    );
    std::fs::remove_file(copy.join("model.int8.onnx")).unwrap();
    let e = err(&c);
    assert!(
        e.contains("missing") && e.contains("model.int8.onnx"),
        "{e}"
    );
    assert!(matches!(embed_operator(&c), Err(NlpError::Model(_))));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
