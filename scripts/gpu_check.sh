#!/usr/bin/env bash
# One command for a CUDA machine: search quality first, then GPU tests, benchmarks of both engines.
# Usage: scripts/gpu_check.sh [PHASE...]
#   default phases, in order of importance (about 9 minutes expected):
#     readme           the README's GPU command as a new user runs it (default space, pruner and
#                      confirmation): its confirmed winner next to iteration 3, and the wall time
#     quality-8000     scripts/quality_bench.py: $QUALITY_MINUTES (default 6) minutes of new trials at
#                      --max-params 8000, then the top 5 and iteration 3 confirmed with 5 seeds
#   more: quality-5000 (the same at --max-params 5000), curves (record unpruned 15-epoch curves of the
#   default space for the pruner replay fixture, then replay every pruner over them),
#   fused-recipe / separate-recipe (real searches of space/recipe.toml with each engine, 6-epoch
#   trials), bench (seed pipeline, single trial, 1 and 32 separate trials in flight, 32 and 128 fused),
#   tests (tests/test_gpu*.py), kernels (one bank layer's formulations), accuracy (iteration 3, 5 seeds,
#   separate against fused), fused-search and separate-search (the default space, each engine),
#   engines, engines-mix, processes, bench-fused, export, confirm, workers
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
[ ${#phases[@]} -gt 0 ] || phases=(readme quality-8000)
QUALITY_MINUTES="${QUALITY_MINUTES:-6}"

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
    readme)
        rm -f /tmp/gpu-readme.db
        step readme 300 python -m search.cli search --device cuda --storage sqlite:////tmp/gpu-readme.db ;;
    quality-8000 | quality-5000)
        step "$phase" 590 python scripts/quality_bench.py --device cuda --minutes "$QUALITY_MINUTES" \
            --budgets "${phase#quality-}" --folder "/tmp/gpu-$phase" --out "$OUT/BENCHMARKS.md" ;;
    curves)
        rm -f /tmp/gpu-curves.db
        step curves 400 python -m search.cli search --device cuda --pruner none --curves --confirm-top 0 \
            --trials 400 --timeout 240 --storage sqlite:////tmp/gpu-curves.db --study curves
        cp tests/fixtures/h200_curves.json "$OUT/curves.json"
        step replay 200 bash -c "python scripts/replay_pruners.py --record sqlite:////tmp/gpu-curves.db:curves \
            --curves $OUT/curves.json && python scripts/replay_pruners.py --curves $OUT/curves.json \
            --out $OUT/BENCHMARKS.md" ;;
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
        step tests 100 python -m pytest -q -p no:cacheprovider tests/run/test_gpu.py tests/run/test_gpu_fused.py ;;
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
show readme "confirmed winner|iteration-3|model-epochs/s|trained, .* pruned"
for name in quality-8000 quality-5000; do show $name "^\| [0-9]"; done
show replay "^\| rungs"
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
