#!/usr/bin/env bash
# Fill .gpu/ with what the GPU machine lacks for tools/analysis/gpu_acceptance.py: it has Python
# 3.12, torch, numpy, opencv, matplotlib and pytest, but no OpenMMLab package and no network.
#   bash tools/analysis/prepare_gpu_wheels.sh     # here, once: about a minute, ~25 MB
# Carry .gpu with the run; there, from the checkout root:
#   source .gpu/env.sh && python tools/analysis/gpu_acceptance.py --out "$OUT"
# mmcv is built without its compiled ops (mmcv-lite): pretraining and classification need none.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WHEELS="$ROOT/.gpu/whl"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p "$WHEELS"

# Wheels for CPython 3.12 on x86-64 Linux (pure-Python ones match any platform). numpy 1.26 as
# in the project's venv (mmcv 2.1 and mmengine 0.10 predate numpy 2); pytest < 9 as in
# requirements/tests.txt, with its own plugin manager.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$WHEELS" \
  mmengine==0.10.7 mmpretrain==1.2.0 numpy==1.26.4 addict yapf termcolor platformdirs tomli \
  mat4py modelindex model-index ordered-set einops rich markdown-it-py mdurl pygments \
  importlib-metadata==8.7.0 zipp 'pytest>=8.4,<9' 'pluggy>=1.5,<2' iniconfig

if ! ls "$WHEELS"/mmcv_lite-2.1.0-*.whl >/dev/null 2>&1; then
  work="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$work"
  tar -xzf "$work/mmcv-2.1.0.tar.gz" -C "$work"
  (cd "$work/mmcv-2.1.0" && MMCV_WITH_OPS=0 "$PY" -m pip wheel -q --no-deps \
    --no-build-isolation . -w "$WHEELS")
  rm -rf "$work"
fi

cat > "$ROOT/.gpu/env.sh" <<'SH'
# On the GPU machine, from the checkout root:  source .gpu/env.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/conmim_site .gpu/whl/*.whl || return 1
export PYTHONPATH="/tmp/conmim_site:$PWD" PYTHONUNBUFFERED=1
SH
du -sh "$ROOT/.gpu"
