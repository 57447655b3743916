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

/// Whether the int8 model is built (`bash models/setup.sh`); fails the
/// test when it is not and the set-up is required.
pub fn models_ready() -> bool {
    let ok = root()
        .join(".cache/models/all-MiniLM-L6-v2/model.int8.onnx")
        .is_file();
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
