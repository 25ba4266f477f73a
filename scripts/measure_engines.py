"""The engine options of one device, measured with this project's code, for BENCHMARKS.md.

Rows (iteration 3, full training pool unless --subset):
- one trial, eager steps; one trial, the step as a CUDA graph (s/epoch, median of the epochs after the
  first);
- N separate processes on the same device, one trial each (aggregate model-epochs/s over the span from
  the earliest second epoch to the last process's end);
- a mix of K random in-budget draws of the default space, as a search's first wave is: aggregate
  model-epochs/s as separate runs and as fused banks grouped with several padding limits (how much
  more arithmetic than its members need alone a bank may do), with the banks' count and padding;
- accuracy: S seeds for E epochs as separate runs (interleaved, as the concurrent search trains them)
  and as one fused bank: final test accuracy, mean and spread, and the difference of the means.

Prints a markdown table last; with --out it is also appended to that file under '## Engine options'.
Run: python scripts/measure_engines.py --device cuda --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_arch import DeviceData, get_iteration, load_mnist, train, train_together  # noqa: E402
from mnist_arch.fused import FusedBank, train_fused  # noqa: E402
from mnist_arch.members import Member, group_members, padded_arch  # noqa: E402
from mnist_arch.model import conv_macs  # noqa: E402
from mnist_arch.trainer import TrainingRun  # noqa: E402
from search.run.benchmark import _append_row, device_name  # noqa: E402
from space.budget import check_budget  # noqa: E402
from space.space import SearchSpace  # noqa: E402

HEADER = (
    "\n## Engine options\n\nWritten by `scripts/measure_engines.py`: iteration 3; single trials as s/epoch "
    "(median after the first epoch); separate processes as aggregate model-epochs/s (evaluation "
    "included); accuracy as final-epoch test accuracy over seeds.\n\n"
    "| date | device | torch | images | setup | result |\n|---|---|---|---|---|---|\n"
)

ONE_TRIAL = """
import json, sys, time, torch
from mnist_arch import DeviceData, get_iteration, load_mnist, train
data = DeviceData.from_mnist(load_mnist(sys.argv[1], int(sys.argv[2]) or None), torch.device(sys.argv[3]))
marks = []
def mark(stats):
    marks.append(time.time())
    return False
marks.append(time.time())
config = get_iteration("iteration-3").config
train(config, data, epochs=int(sys.argv[4]), seed=int(sys.argv[5]), on_epoch=mark)
print(json.dumps(marks))
"""


def single_trial(data: DeviceData, epochs: int, *, graph: bool) -> float:
    result = train(get_iteration("iteration-3").config, data, epochs=epochs, seed=0, use_graph=graph)
    return statistics.median(e.seconds for e in result.history[1:] or result.history)


def separate_processes(args: argparse.Namespace, count: int) -> float:
    """Aggregate model-epochs/s of `count` processes, each training one trial for --epochs epochs."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", ONE_TRIAL, str(args.data), str(args.subset or 0), args.device]
    procs = [
        subprocess.Popen([*command, str(args.epochs), str(seed)], env=env, stdout=subprocess.PIPE, text=True)
        for seed in range(count)
    ]
    marks = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    start = min(m[1] for m in marks)  # the end of each process's first epoch: warm-up and capture done
    end = max(m[-1] for m in marks)
    return count * (args.epochs - 1) / (end - start)


def random_mix(count: int, seed: int = 0) -> list:
    space, rng, configs = SearchSpace.load(None), random.Random(seed), []
    while len(configs) < count:
        config = space.random_config(rng)
        if check_budget(config.arch, space.spec.max_params).fits:
            configs.append(config)
    return configs


def mix_throughput(data: DeviceData, configs: list, max_padding: float | None, epochs: int = 2) -> tuple:
    """Model-epochs/s of `configs` trained together for `epochs` (the first untimed); separate runs
    when `max_padding` is None, else fused banks. Returns (rate, banks, padded/needed arithmetic)."""
    if max_padding is None:
        units = [TrainingRun(config, data, seed=seed) for seed, config in enumerate(configs)]
        banks, padding = len(units), 1.0
    else:
        members = [Member.start(config, data, seed=seed) for seed, config in enumerate(configs)]
        groups = group_members(members, len(members), max_padding)
        units = [FusedBank(group, data) for group in groups]
        needed = sum(conv_macs(config.arch) for config in configs)
        padded = sum(conv_macs(padded_arch([m.config.arch for m in g])) * len(g) for g in groups)
        banks, padding = len(units), padded / needed
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if epoch == 2:
            start = time.perf_counter()
        for unit in units:
            unit.begin_epoch(epoch) if max_padding is None else unit.begin_epoch()
        while not all(unit.epoch_done for unit in units):
            for unit in units:
                if not unit.epoch_done:
                    unit.step()
        for unit in units:
            unit.end_epoch()
    return len(configs) * (epochs - 1) / (time.perf_counter() - start), banks, padding


def accuracy(data: DeviceData, seeds: int, epochs: int) -> tuple[list[float], list[float]]:
    jobs = [(get_iteration("iteration-3").config, seed) for seed in range(seeds)]
    separate = train_together(jobs, data, epochs=epochs, in_flight=seeds)
    fused = train_fused(jobs, data, epochs=epochs)
    return [r.history[-1].test_acc for r in separate], [r.history[-1].test_acc for r in fused]


def mix_rows(data: DeviceData, count: int, paddings: str) -> list[tuple[str, str]]:
    rows = []
    configs = random_mix(count)
    for text in paddings.split(","):
        max_padding = None if text == "none" else float(text)
        rate, banks, padding = mix_throughput(data, configs, max_padding)
        if max_padding is None:
            how, detail = "separate runs", ""
        else:
            how, detail = (
                f"fused, padding limit {max_padding:g}",
                f" ({banks} banks, {padding:.2f}x the arithmetic)",
            )
        rows.append((f"{count} random in-budget draws, {how}", f"{rate:.2f} model-epochs/s{detail}"))
        print(f"{rows[-1][0]}: {rows[-1][1]}", flush=True)
    return rows


def accuracy_rows(data: DeviceData, seeds: int, epochs: int) -> list[tuple[str, str]]:
    rows = []
    separate, fused = accuracy(data, seeds, epochs)
    for name, accs in (("separate runs", separate), ("one fused bank", fused)):
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(
            (
                f"iteration 3, {seeds} seeds x {epochs} epochs, {name}",
                f"test {100 * statistics.mean(accs):.2f} ± {100 * spread:.2f} %, min {100 * min(accs):.2f} %",
            )
        )
    difference = 100 * (statistics.mean(fused) - statistics.mean(separate))
    rows.append(("fused minus separate, mean test accuracy", f"{difference:+.2f} points"))
    print(*(f"{name}: {value}" for name, value in rows), sep="\n", flush=True)
    return rows


ROWS = ("single", "processes", "mix", "accuracy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default=os.environ.get("MNIST_ARCH_DATA"))
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the timed single trials")
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--mix", type=int, default=32, help="random draws trained together")
    parser.add_argument(
        "--paddings", default="none,1.25,1.5,2,inf", help="padding limits of the mix; none: separate runs"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--accuracy-epochs", type=int, default=15)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which rows, of {', '.join(ROWS)}")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    wanted = set(args.rows.split(","))
    if not wanted <= set(ROWS):
        parser.error(f"--rows takes some of {', '.join(ROWS)}")
    device = torch.device(args.device)
    data = DeviceData.from_mnist(load_mnist(args.data, args.subset), device)
    images = len(data.train_y)
    rows = []

    if "single" in wanted:
        eager = single_trial(data, args.epochs, graph=False)
        rows.append(("one trial, eager steps", f"{eager:.2f} s/epoch ({1 / eager:.2f} model-epochs/s)"))
        if device.type == "cuda":
            graph = single_trial(data, args.epochs, graph=True)
            rows.append(
                ("one trial, step as a CUDA graph", f"{graph:.2f} s/epoch ({1 / graph:.2f} model-epochs/s)")
            )
            ratio = eager / graph
            rows.append(("graph vs eager", f"{ratio:.2f}x"))
        print(*(f"{name}: {value}" for name, value in rows), sep="\n", flush=True)
    if "processes" in wanted:
        started = time.perf_counter()
        rate = separate_processes(args, args.processes)
        rows.append(
            (f"{args.processes} separate processes, one trial each", f"{rate:.2f} model-epochs/s in total")
        )
        print(
            f"{rows[-1][0]}: {rows[-1][1]} ({time.perf_counter() - started:.0f} s with start-up)", flush=True
        )
    if "mix" in wanted:
        rows += mix_rows(data, args.mix, args.paddings)
    if "accuracy" in wanted:
        rows += accuracy_rows(data, args.seeds, args.accuracy_epochs)

    prefix = f"| {datetime.date.today()} | {device_name(device)} | {torch.__version__} | {images:,} |"
    rows_text = "".join(f"{prefix} {name} | {value} |\n" for name, value in rows)
    if args.out is not None:
        text = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(_append_row(text, "\n## Engine options\n", rows_text, HEADER))
    print()
    print(HEADER.split("\n\n")[-1] + rows_text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
