#!/usr/bin/env bash
# One command for a CUDA machine: GPU tests, benchmarks of both engines, and real searches with each.
# Usage: scripts/gpu_check.sh [PHASE...]
#   default phases, in order of importance (about 6 minutes expected, 10 at the limits):
#     fused-recipe     a real search of space/recipe.toml (one shape) with --engine fused, 6-epoch trials
#     separate-recipe  the same with --engine separate: the two figures compare the engines in a search
#     bench            seed pipeline, single trial, 1 and 32 separate trials in flight, 32 and 128 fused
#     tests            tests/test_gpu.py and tests/test_gpu_fused.py
#     kernels          one bank layer as cuDNN fp32/TF32/bf16/channels_last, unfold + matmul, compiled
#     accuracy         iteration 3, 5 seeds x 15 epochs, separate runs against one fused bank
#   more: fused-search and separate-search (the default space, 15-epoch trials, each engine; the fused
#   one needs more than its 150 s), engines (every row of scripts/measure_engines.py), engines-mix
#   (eager vs graph and a mix of 64 draws), processes (16 processes), bench-fused (1 in flight, 32 and
#   128 fused), export (the fused-search winner re-evaluated in a fresh process), confirm (5-seed
#   report), workers (2 worker processes on one GPU)
# Logs and the BENCHMARKS.md rows go to $OUT (default /tmp/gpu_check). The table of figures is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 COLUMNS=160
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MNIST_ARCH_DATA="${MNIST_ARCH_DATA:-.data/mnist}"
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
cp BENCHMARKS.md "$OUT/BENCHMARKS.md" 2>/dev/null || true
status=0
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(fused-recipe separate-recipe bench tests kernels accuracy)

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

search() {  # search NAME ENGINE LIMIT ARGS...: a real search, new trials started for --timeout seconds
    local name=$1 engine=$2 limit=$3
    shift 3
    rm -f "/tmp/gpu-$name.db"
    step "$name" "$limit" python -m search.cli search --device cuda --engine "$engine" --concurrency auto \
        --trials 400 --storage "sqlite:////tmp/gpu-$name.db" "$@"
}

python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

for phase in "${phases[@]}"; do
    case $phase in
    fused-search) search fused-search fused 150 --epochs 15 --timeout 45 ;;
    separate-search) search separate-search separate 150 --epochs 15 --timeout 45 ;;
    fused-recipe) search fused-recipe fused 100 --space space/recipe.toml --epochs 6 --timeout 30 ;;
    separate-recipe) search separate-recipe separate 100 --space space/recipe.toml --epochs 6 --timeout 30 ;;
    bench-fused)
        step bench-fused 90 python -m search.cli bench --device cuda --epochs 2 --concurrency 1 \
            --fused 32,128 --out "$OUT/BENCHMARKS.md" ;;
    bench)
        step bench 150 python -m search.cli bench --device cuda --epochs 2 --concurrency 1,32 \
            --fused 32,128 --out "$OUT/BENCHMARKS.md" ;;
    tests)
        step tests 100 python -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_gpu_fused.py ;;
    kernels)
        step kernels 120 python scripts/measure_conv_kernels.py --device cuda --out "$OUT/BENCHMARKS.md" ;;
    engines)
        step engines 200 python scripts/measure_engines.py --device cuda --out "$OUT/BENCHMARKS.md" ;;
    engines-mix)
        step engines-mix 160 python scripts/measure_engines.py --device cuda --rows single,mix --mix 64 \
            --paddings none,1.5,2,inf --out "$OUT/BENCHMARKS.md" ;;
    accuracy | processes)
        step "$phase" 70 python scripts/measure_engines.py --device cuda --rows "$phase" \
            --out "$OUT/BENCHMARKS.md" ;;
    export)
        rm -rf /tmp/gpu-best
        step export 60 bash -c "python -m search.cli export --storage sqlite:////tmp/gpu-fused-search.db \
            --out /tmp/gpu-best && python -m search.cli evaluate --weights /tmp/gpu-best --json" ;;
    confirm)
        step confirm 150 python -m search.cli report --storage sqlite:////tmp/gpu-fused-search.db --top 1 \
            --confirm-seeds 5 --epochs 15 --device cuda --out /tmp/gpu-report
        cp /tmp/gpu-report/report.md "$OUT/report.md" 2>/dev/null || true ;;
    workers)
        rm -f /tmp/gpu-workers.db
        step workers 90 python -m search.cli search --workers 2 --device auto --concurrency 4 --epochs 2 \
            --trials 10 --subset 10000 --storage sqlite:////tmp/gpu-workers.db ;;
    *) echo "unknown phase: $phase"; exit 2 ;;
    esac
done

echo
echo "=== figures"
show() { [ -f "$OUT/$1.log" ] && grep -h -E "$2" "$OUT/$1.log" | sed "s/^/$1: /"; }
for name in fused-search separate-search fused-recipe separate-recipe; do
    show $name "model-epochs/s, up to|trained, .* pruned"
done
show bench-fused "^(device|seed pipeline|mnist-arch trainer|[0-9]+ trial\(s\) (in flight|fused)|speedup)"
show bench "^(device|seed pipeline|mnist-arch trainer|[0-9]+ trial\(s\) (in flight|fused)|speedup)"
show tests "passed|failed|error" | tail -1
show kernels "^\| 20"
show engines "^\| 20"
show engines-mix "^\| 20"
show accuracy "^\| 20"
show processes "^\| 20"
show export '"matches"'
show confirm "±" | head -8
exit $status
