//! Helpers the command-line and model tests share: where the repository
//! is, whether CI requires every set-up piece, and running the `verbatim`
//! binary. (The Kafka helpers live in `tests/common`.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether CI asked for every set-up piece (`VERBATIM_REQUIRE_SETUP=1`,
/// set by .ci/test.sh): a missing one then fails a test instead of
/// skipping it.
pub fn required() -> bool {
    std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1")
}

/// Whether both models' int8 graphs are built (`bash models/setup.sh`);
/// fails the test when they are not and the set-up is required.
pub fn models_ready() -> bool {
    let ok = ["all-MiniLM-L6-v2", "multilingual-e5-small"]
        .iter()
        .all(|m| {
            root()
                .join(".cache/models")
                .join(m)
                .join("model.int8.onnx")
                .is_file()
        });
    assert!(
        ok || !required(),
        "model files missing: run `bash models/setup.sh`"
    );
    ok
}

/// The `verbatim` binary, run from the repository root, logging warnings
/// and errors only.
pub fn verbatim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_verbatim"));
    c.current_dir(root()).env("VERBATIM_LOG", "warn");
    c
}

/// Runs `cmd`, which must succeed (the panic shows its stdout and stderr
/// otherwise), and returns its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Python of the test venv (`VERBATIM_PYTHON`, else `python3`) if it can
/// import `module`; fails the test when it cannot and the set-up is required.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("VERBATIM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&candidate)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{} cannot import {module}; run `bash .ci/setup.sh`",
            candidate.display()
        );
        eprintln!("skipping: no python with {module} (bash .ci/test.sh sets it up)");
        return None;
    }
    Some(candidate)
}

/// The metric names in README's metric table (its first column).
pub fn readme_metrics() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("### Metrics")
        .expect("README has a Metrics section");
    let section = &readme[start..];
    let end = section[4..].find("\n#").map_or(section.len(), |i| i + 4);
    let names: Vec<String> = section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `verbatim_"))
        .filter_map(|l| l.split(['`', '{']).next())
        .map(|n| format!("verbatim_{n}"))
        .collect();
    assert!(names.len() >= 20, "README lists {} metrics", names.len());
    names
}

/// Whether this machine computes `model`'s int8 vectors as the machine that
/// made the committed artifacts checked byte for byte (retrained heads, the
/// demo's theme snapshot): the sha256 of its int8 vectors of the first 256
/// rows of `tests/fixtures/team_labelled.jsonl`, encoded in one call as
/// `train-flags` encodes them, equals the one recorded for the model in
/// `tests/fixtures/int8_fingerprints.toml`. CPU flags do not tell: on AVX2
/// alone MLAS's u8·s8 kernel saturates pairs of products, and an AMD EPYC
/// (Zen 4, AVX-512 VNNI) gave e5 vectors other than the Xeon's (stop 41;
/// MiniLM's were the same). Where they differ, this machine's sha is
/// printed, and tests compare by direction instead of bytes. Hashed once
/// per model and test binary.
pub fn int8_matches_committed(model: &str) -> bool {
    static SEEN: std::sync::Mutex<BTreeMap<String, bool>> = std::sync::Mutex::new(BTreeMap::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    *seen
        .entry(model.to_string())
        .or_insert_with(|| int8_fingerprint_matches(model))
}

fn int8_fingerprint_matches(model: &str) -> bool {
    use sha2::{Digest, Sha256};
    let cfg = verbatim::config::NlpConfig {
        model: model.into(),
        models_dir: root().join("models"),
        cache_dir: root().join(".cache/models"),
        onnxruntime_library: root().join(".cache/onnxruntime/libonnxruntime.so"),
        ..Default::default()
    };
    let rows = std::fs::read_to_string(root().join("tests/fixtures/team_labelled.jsonl")).unwrap();
    let texts: Vec<String> = rows
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .take(256)
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = verbatim::nlp::embed_operator(&cfg)
        .unwrap()
        .embed_texts(&refs)
        .unwrap();
    let mut sha = Sha256::new();
    for x in vectors.iter().flatten() {
        sha.update(x.to_le_bytes());
    }
    let here = format!("{:x}", sha.finalize());
    let recorded: toml::Value = toml::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/int8_fingerprints.toml")).unwrap(),
    )
    .unwrap();
    let same = recorded.get(model).and_then(|v| v.as_str()) == Some(here.as_str());
    if !same {
        eprintln!(
            "{model}: this machine's int8 vectors (sha256 {here}) are not those the committed artifacts were made from; comparing by direction, not bytes"
        );
    }
    same
}
