#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv/ and install everything conmim_mm needs,
# offline-friendly: pinned torch/torchvision from the local disk, mmcv 2.1.0 built from source with
# its ops (the built wheel is cached outside the repository), the OpenMMLab libraries, the Debian
# data packages the demo and the tests read, and this package in editable mode.
#
#   bash tools/setup_env.sh          # idempotent; a second run on the same machine takes seconds
#
# Environment: CONMIM_CACHE (default ~/.cache/conmim_mm) holds the mmcv wheel; PYTHON (default
# python3.11 or python3) creates the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
CACHE="${CONMIM_CACHE:-$HOME/.cache/conmim_mm}"
PY_BOOT="${PYTHON:-$(command -v python3.11 || command -v python3)}"
MMCV_VERSION=2.1.0
STAMP="$VENV/.conmim_env_stamp"
# Everything that decides the environment's content; a change in any of these reinstalls.
want_stamp="$(cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.cfg" "$ROOT/requirements/"*.txt 2>/dev/null | sha256sum | cut -c1-16)"

log() { printf '[setup_env] %s\n' "$*" >&2; }

install_debian_data() {
  local missing=()
  for pkg in dataset-fashion-mnist labelme-examples; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian data packages: ${missing[*]}"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

build_mmcv_wheel() {
  # mmcv 2.1.0 has no wheel for torch 2.14: build it from the source package with its ops.
  # torch 2.14's headers need C++20, mmcv's setup.py forces c++14/c++17, so the flag is raised.
  mkdir -p "$CACHE/wheels"
  local work; work="$(mktemp -d)"
  log "building mmcv $MMCV_VERSION with ops from source (11 to 30 minutes on 2 cores; cached afterwards)"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work"
  tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
  sed -i -E 's/-std=c\+\+(14|17)/-std=c++20/g' "$work/mmcv-$MMCV_VERSION/setup.py"
  (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" \
    "$VENV/bin/pip" wheel -q --no-deps --no-build-isolation . -w "$work/dist")
  cp "$work"/dist/mmcv-*.whl "$CACHE/wheels/"
  rm -rf "$work"
}

install_debian_data

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV with $PY_BOOT"; "$PY_BOOT" -m venv "$VENV"; }
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)

log "installing torch 2.14.1 / torchvision 0.29.1 and build tools"
"${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${PIP[@]}" -r "$ROOT/requirements/build.txt"

if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  ls "$CACHE"/wheels/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1 || build_mmcv_wheel
  "${PIP[@]}" --no-deps "$CACHE"/wheels/mmcv-"$MMCV_VERSION"-*.whl
fi

log "installing the OpenMMLab libraries and their runtime dependencies"
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# The OpenMMLab packages pull the newest setuptools, which has no pkg_resources any more; mmengine's
# `mmseg::`/`mmdet::` config inheritance imports it, so the pin comes last.
"${PIP[@]}" -r "$ROOT/requirements/build.txt"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" - <<'PY'
import mmcv, mmcv.ops, mmengine, mmpretrain, mmseg, mmdet, torch, torchvision  # noqa: F401
import conmim_mm  # noqa: F401
print(f'[setup_env] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}')
PY
echo "$want_stamp" > "$STAMP"
