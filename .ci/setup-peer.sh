#!/usr/bin/env bash
# The Python peer for benches/embed.rs and tests/fixtures/make_reference.py:
# sentence-transformers on PyTorch (CPU use of PyPI's torch 2.4.0 wheel),
# in .cache/peer-venv. About 5 GB with its CUDA dependencies; not needed by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.cache/peer-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.4.0 sentence-transformers==3.0.1 transformers==4.44.2 numpy==1.26.4
fi
echo "peer: ok ($VENV)"
