#!/usr/bin/env bash
# One command for a CUDA machine: GPU tests, the concurrent benchmark, and a real concurrent search.
# Each step is time-limited; logs (and the BENCHMARKS.md rows) go to $OUT (default /tmp/gpu_check).
# The last lines printed are the table of figures.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 COLUMNS=160
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MNIST_ARCH_DATA="${MNIST_ARCH_DATA:-.data/mnist}"
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
status=0

step() {  # step NAME SECONDS COMMAND...: run, tee the log, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || status=1
}

python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

# (a) graph capture, streams equal to independent runs, OOM fails alone, memory cap
step gpu-tests 150 python -m pytest -q -p no:cacheprovider tests/test_gpu.py

# (b) seed pipeline, single trial, and 1/8/32 trials in flight
cp BENCHMARKS.md "$OUT/BENCHMARKS.md" 2>/dev/null || true
step bench 200 python -m search.cli bench --device cuda --epochs 3 --concurrency 1,8,32 --out "$OUT/BENCHMARKS.md"

# (c) a real search, storage and pruning included, on the full data: 15 epochs, new trials for 150 s
rm -f /tmp/gpu.db
step search 240 python -m search.cli search --device cuda --concurrency auto --epochs 15 --trials 60 \
    --timeout 150 --storage sqlite:////tmp/gpu.db

# (d) the winner's CUDA-graph-trained weights, exported and re-evaluated in a fresh process: exact
rm -rf /tmp/gpu-best
step export 60 bash -c "python -m search.cli export --storage sqlite:////tmp/gpu.db --out /tmp/gpu-best \
    && python -m search.cli evaluate --weights /tmp/gpu-best --json"

# (e) seed confirmation: the winner and the three iterations, 5 seeds, 15 epochs, full training set
step confirm 150 python -m search.cli report --storage sqlite:////tmp/gpu.db --top 1 --confirm-seeds 5 \
    --epochs 15 --device cuda --out /tmp/gpu-report
cp /tmp/gpu-report/report.md "$OUT/report.md" 2>/dev/null || true

# (f) two worker processes sharing one GPU, each with trials in flight
rm -f /tmp/gpu-workers.db
step workers 90 python -m search.cli search --workers 2 --device auto --concurrency 4 --epochs 2 --trials 10 \
    --subset 10000 --storage sqlite:////tmp/gpu-workers.db

echo
echo "=== figures"
grep -h -E "^(device|seed pipeline|mnist-arch trainer|[0-9]+ trial\(s\) in flight|speedup)" "$OUT/bench.log"
grep -h -E "model-epochs/s, up to" "$OUT/search.log" | sed 's/^/search: /'
grep -h -E "^[0-9]+ passed|passed|failed" "$OUT/gpu-tests.log" | tail -1 | sed 's/^/gpu tests: /'
grep -h -E '"matches"' "$OUT/export.log" | sed 's/^/export: /'
grep -h -E "±" "$OUT/confirm.log" | head -8 | sed 's/^/confirm: /'
exit $status
