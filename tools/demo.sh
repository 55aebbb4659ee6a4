#!/usr/bin/env bash
# Set up (or reuse) the environment, then pretrain ConMIM on the embedded Fashion-MNIST data:
#   bash tools/demo.sh [train.py args]      (work dir: work_dirs/conmim_vit-t-p4_fashion-mnist)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
.venv/bin/python tools/data/prepare_fashion_mnist.py --out data/fashion_mnist
exec .venv/bin/python tools/train.py configs/pretrain/conmim_vit-t-p4_fashion-mnist_demo.py "$@"
