#!/usr/bin/env bash
# Issue 9's GPU measurement in one short run (< 8 minutes on an H100/H200, ViT-B/16 224², bf16):
#   1. the training step alone, ours eager vs the stock mmpretrain assembly, batch 64 and 128;
#   2. the same with ours compiled, plus the Runner mode (tools/train.py's path: data pipeline
#      on synthetic ImageNet-layout JPEGs, data preprocessor, optimiser wrapper, hooks,
#      logging; --amp -> bf16 without loss scaler on this GPU, compile=True), batch 64 and 128;
#   peak GPU memory and MFU in each; one JSON per run plus summary.json under $OUT.
#
# On the GPU machine (docs: ../shared/GPU.md), from the checkout root:
#   source .gpu/env.sh && bash tools/analysis/gpu_bench.sh
# CPU dry run at tiny sizes (checks every command and the summary, about a minute):
#   GPU_BENCH_TINY=1 OUT=/tmp/gpu_bench bash tools/analysis/gpu_bench.sh
set -uo pipefail
OUT=${OUT:-results/gpu_bench}
PY=${PYTHON:-python3}
BENCH=tools/analysis/benchmark_pretrain.py
mkdir -p "$OUT"

if [ -n "${GPU_BENCH_TINY:-}" ]; then
  SIZE=(--device cpu --amp none --arch tiny --num-layers 1 --img-size 32 --patch-size 8
        --hid-channels 32 --out-channels 16 --warmup 1 --iters 2 --memory none --workers 0
        --compile-backend ${COMPILE_BACKEND:-aot_eager})
  BATCHES=(2 4)
  LIMIT=${LIMIT:-240}
else
  SIZE=(--case vit-b-224-gpu --warmup 5 --iters 20)
  BATCHES=(64 128)
  LIMIT=${LIMIT:-150}  # seconds per command; 4 commands + JPEGs + start fit in 8 minutes
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
fi
"$PY" -c 'import torch, mmengine, mmpretrain; print("torch", torch.__version__,
  "mmengine", mmengine.__version__, "mmpretrain", mmpretrain.__version__)' | tee "$OUT/versions.txt"

run() {  # run NAME ARGS...: one benchmark process, its log and JSON under $OUT
  local name=$1; shift
  echo "=== $name ($(date +%T))"
  timeout "$LIMIT" "$PY" "$BENCH" "${SIZE[@]}" "$@" --json "$OUT/$name.json" \
    > "$OUT/$name.log" 2>&1
  local rc=$?
  grep -E '^ ?(ours|stock|runner|speedup)|AMP:|Traceback|Error:' "$OUT/$name.log" | tail -n 12
  [ $rc -eq 0 ] || echo "!!! $name failed (exit $rc, 124 = over ${LIMIT}s): see $OUT/$name.log"
}

for b in "${BATCHES[@]}"; do
  run "step_eager_b$b" --batch-size "$b" --mode step
  run "compiled_b$b" --batch-size "$b" --mode both --compile
done

"$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
summary = {}
for path in sorted(glob.glob(os.path.join(out, '*_b*.json'))):
    r = json.load(open(path))
    row = dict(batch=r.get('batch_size'), gpu=r.get('gpu'), flops_per_step=r.get('flops_per_step'))
    for side in ('ours', 'stock', 'runner'):
        if side in r:
            row[side] = {k: r[side].get(k) for k in
                         ('img_per_s', 'step_s', 'mfu', 'peak_mib', 'data_time_s', 'amp_dtype',
                          'loss_scaler', 'compile') if k in r[side]}
    row['speedup'], row['memory_ratio'] = r.get('speedup'), r.get('memory_ratio')
    summary[os.path.basename(path)[:-5]] = row
json.dump(summary, open(os.path.join(out, 'summary.json'), 'w'), indent=2)
for name, row in summary.items():
    print(name, json.dumps(row))
EOF
