//! Helpers the command-line and model tests share: where the repository
//! is, whether CI requires every set-up piece, and running the `verbatim`
//! binary. (The Kafka helpers live in `tests/common`.)
#![allow(dead_code)]

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

/// Whether this CPU multiplies int8 exactly in ONNX Runtime: AVX-512 VNNI,
/// or AVX-VNNI (the Xeon with AMX and the Zen 4 EPYC the committed weights were
/// made and checked on). On AVX2 alone MLAS's u8·s8 kernel (vpmaddubsw)
/// saturates pairs of products, so int8 features, and what is trained on
/// them, differ in the last digits.
pub fn int8_is_exact_here() -> bool {
    // CPUID, as ONNX Runtime reads it (and as QEMU emulates it).
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
