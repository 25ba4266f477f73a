"""How to spend the CPU's cores on trials: one model at a time with every thread, several interleaved in one
process, or one process per core with a thread each; aggregate model-epochs/s in one run.

Each layout trains the same copies of iteration 3 (seeds 0..N-1) for the same epochs on the same images,
evaluating as a default search does (validation and test after the last epoch). Time runs from the start
of training to the end of the last copy; starting the extra processes (importing torch, loading the data)
is measured apart, as a search pays it once. The table goes to BENCHMARKS.md:
    python scripts/measure_cpu_layouts.py --data DIR [--subset 10000] [--epochs 2] [--copies 4] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_arch import DeviceData, get_iteration, load_mnist  # noqa: E402
from mnist_arch.trainer import Evaluation, train_together  # noqa: E402
from search.run.benchmark import append_table_rows, device_name  # noqa: E402

SECTION = "## CPU layouts"


def train_copies(data_dir: str | None, subset: int, epochs: int, seeds: list[int], threads: int) -> float:
    """Seconds to train iteration 3 with `seeds`, interleaved in this process on `threads` threads."""
    torch.set_num_threads(threads)
    data = DeviceData.from_mnist(load_mnist(data_dir, subset), torch.device("cpu"))
    config = get_iteration("iteration-3").config
    start = time.perf_counter()
    train_together(
        [(config, seed) for seed in seeds], data, epochs=epochs, evaluation=Evaluation.final_only(epochs)
    )
    return time.perf_counter() - start


def _worker(args: tuple, ready, go, results) -> None:  # noqa: ANN001 - multiprocessing handles
    data_dir, subset, epochs, seeds, threads = args
    torch.set_num_threads(threads)
    load_mnist(data_dir, subset)  # warm the import and the page cache before the clock starts
    ready.put(os.getpid())
    go.wait()
    results.put(train_copies(data_dir, subset, epochs, seeds, threads))


def in_processes(
    data_dir: str | None, subset: int, epochs: int, copies: int, processes: int
) -> tuple[float, float]:
    """(seconds of training, seconds of start-up) with `processes` processes of one thread each."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    started = time.perf_counter()
    workers = [
        context.Process(
            target=_worker,
            args=((data_dir, subset, epochs, list(range(p, copies, processes)), 1), ready, go, results),
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get()
    startup = time.perf_counter() - started
    start = time.perf_counter()
    go.set()
    for _ in workers:
        results.get()
    seconds = time.perf_counter() - start
    for worker in workers:
        worker.join()
    return seconds, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_ARCH_DATA)")
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    model_epochs = args.copies * args.epochs
    seeds = list(range(args.copies))
    train_copies(args.data, args.subset, args.epochs, seeds[:1], cores)  # warm-up, not counted
    sequential = sum(train_copies(args.data, args.subset, args.epochs, [seed], cores) for seed in seeds)
    interleaved = train_copies(args.data, args.subset, args.epochs, seeds, cores)
    layouts = [
        (f"1 process, {cores} threads, one trial at a time", sequential, 0.0),
        (f"1 process, {cores} threads, {args.copies} trials interleaved", interleaved, 0.0),
    ]
    if cores > 1:
        seconds, startup = in_processes(args.data, args.subset, args.epochs, args.copies, cores)
        layouts.append((f"{cores} processes, 1 thread each", seconds, startup))
    rows = []
    base = model_epochs / layouts[0][1]
    for name, seconds, startup in layouts:
        rate = model_epochs / seconds
        print(f"{name}: {rate:.3f} model-epochs/s ({rate / base:.2f}x), start-up {startup:.1f} s")
        rows.append(
            f"| {datetime.date.today()} | {device_name(torch.device('cpu'))} | {torch.__version__} | "
            f"{args.subset:,} | {args.epochs} | {args.copies} | {name} | {rate:.3f} | {rate / base:.2f}x "
            f"| {startup:.1f} |\n"
        )
    if args.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        path.write_text(append_table_rows(path.read_text(), f"\n{SECTION}\n", "".join(rows), HEADER))


HEADER = (
    f"\n{SECTION}\n\nWritten by `python scripts/measure_cpu_layouts.py --write`: N copies of iteration 3 "
    "trained in each layout of the CPU's cores, evaluated as a default search evaluates (after the last "
    "epoch); aggregate model-epochs per second from the start of training, against one trial at a time "
    "in the same run. Start-up is the extra processes' (torch import, data), paid once per search.\n\n"
    "| date | device | torch | images | epochs | copies | layout | model-epochs/s | vs one at a time "
    "| start-up s |\n|---|---|---|---|---|---|---|---|---|---|\n"
)


if __name__ == "__main__":
    main()
