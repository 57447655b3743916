#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Sets up the tools the
# tests need, then runs every test; tools that are missing fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
bash models/setup.sh
export VERBATIM_PYTHON="$PWD/.cache/venv/bin/python"
export TANSU_BIN="$PWD/.cache/tools/tansu"
export VERBATIM_REQUIRE_SETUP=1
# Benches run once as smoke tests (small inputs, debug build), then every test.
cargo test --benches "$@"
cargo test --lib --bins --tests "$@"
# The torch backend (rust-bert over libtorch 2.4.0): built and held to the
# same sentence-transformers reference as the ONNX backend.
eval "$(bash .ci/setup-torch.sh)"
cargo test --features torch --test encoder "$@"
