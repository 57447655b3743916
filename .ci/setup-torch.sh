#!/usr/bin/env bash
# libtorch 2.4.0 for the `torch` feature (rust-bert 0.23 / tch 0.17), from
# PyPI wheels pinned by sha256, CPU libraries only:
#   .cache/libtorch/{include,lib}   LIBTORCH for the build (libc10, libtorch_cpu,
#                                   libtorch, libgomp: tch then links no CUDA)
#   .cache/libtorch/runtime         libcudart.so.12 and libcupti.so.12, which
#                                   libtorch_cpu.so needs at run time
# Prints the environment to export. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache"
LT="$CACHE/libtorch"
if [ ! -f "$LT/.complete" ]; then
  mkdir -p "$CACHE/downloads"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux1_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$CACHE/downloads" torch==2.4.0 nvidia-cuda-runtime-cu12==12.1.105 nvidia-cuda-cupti-cu12==12.1.105
  sha256sum -c --quiet <<SUMS
e743adadd8c8152bb8373543964551a7cb7cc20ba898dc8f9c0cdbe47c283de0  $CACHE/downloads/torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl
6e258468ddf5796e25f1dc591a31029fa317d97a0a94ed93468fc86301d61e40  $CACHE/downloads/nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl
e54fde3983165c624cb79254ae9818a456eb6e87a7fd4d56a2352c24ee542d7e  $CACHE/downloads/nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl
SUMS
  rm -rf "$LT" && mkdir -p "$LT/lib" "$LT/runtime"
  python3 - "$CACHE/downloads" "$LT" <<'PY'
import os, sys, zipfile, glob
dl, lt = sys.argv[1], sys.argv[2]
keep = {"libc10.so", "libtorch_cpu.so", "libtorch.so"}
with zipfile.ZipFile(glob.glob(f"{dl}/torch-2.4.0-*.whl")[0]) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("torch/include/") and not n.endswith("/"):
            dest = os.path.join(lt, n[len("torch/"):])
        elif n.startswith("torch/lib/") and (base in keep or base.startswith("libgomp")):
            dest = os.path.join(lt, "lib", base)
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(n) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
for pkg, lib in (("nvidia_cuda_runtime_cu12", "libcudart.so.12"), ("nvidia_cuda_cupti_cu12", "libcupti.so.12")):
    with zipfile.ZipFile(glob.glob(f"{dl}/{pkg}-*.whl")[0]) as z:
        name = next(n for n in z.namelist() if n.endswith("/" + lib))
        with open(os.path.join(lt, "runtime", lib), "wb") as out:
            out.write(z.read(name))
PY
  touch "$LT/.complete"
fi
echo "export LIBTORCH=$LT LIBTORCH_CXX11_ABI=0 LD_LIBRARY_PATH=$LT/lib:$LT/runtime\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
