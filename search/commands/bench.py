"""`mnist-arch bench`: epoch time of the trainer against the seed-style pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from search.commands import SUMMARIES
from search.commands.args import add_data_args, bounded_int, positive_int
from search.export.output_paths import check_output_file
from search.run.benchmark import ConcurrentLevel, append_markdown, run_benchmark


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help=SUMMARIES["bench"],
        description="Times epochs of iteration 3 with mnist-arch's trainer and with the seed-style "
        "pipeline (torchvision + PIL rotation + DataLoader) in one run; with --concurrency, also the "
        "aggregate model-epochs/s of K copies trained at once in one process, and with --fused, of K "
        "copies fused into one network.",
    )
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs of each (default: 3)")
    parser.add_argument("--out", default="BENCHMARKS.md", help="markdown file to append the row to")
    parser.add_argument(
        "--concurrency",
        type=concurrency_levels,
        default=(),
        metavar="K,...",
        help="also time K copies trained at once in one process, for each K (e.g. 1,4,16,32)",
    )
    parser.add_argument(
        "--fused",
        type=concurrency_levels,
        default=(),
        metavar="K,...",
        help="also time K copies trained as one fused network (grouped convolutions), for each K",
    )
    add_data_args(parser.add_argument_group("data and device"))
    parser.set_defaults(run=run)


MAX_LEVEL = 1024  # copies of iteration 3 in one process; 128 already fill an H200


def concurrency_levels(text: str) -> tuple[int, ...]:
    """'1,4,16' -> (1, 4, 16): integers from 1 to MAX_LEVEL, each once, in the order given."""
    levels = tuple(
        bounded_int(part.strip(), 1, MAX_LEVEL, f"a comma-separated list of integers from 1 to {MAX_LEVEL}")
        for part in text.split(",")
    )
    if len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(f"each level once, got {text!r}")
    return levels


def run(args: argparse.Namespace) -> int:
    check_output_file(Path(args.out), "--out")  # before minutes of benchmarking
    device = resolve_device(args.device)
    data = load_mnist(args.data, args.subset)
    result = run_benchmark(data, device, args.epochs, args.concurrency, args.fused)
    append_markdown(result, Path(args.out))
    print(f"device: {result.device_name}; {result.images:,} training images, {result.epochs} epochs")
    print(f"seed pipeline: {result.seed_sec_per_epoch:.2f} s/epoch")
    print(
        f"mnist-arch trainer: {result.project_sec_per_epoch:.2f} s/epoch"
        + ("" if result.step == "eager" else f" ({result.step})")
    )
    for level in result.levels:
        print(level_line(level, "in flight"))
    for level in result.fused:
        print(level_line(level, "fused"))
    print(f"results appended to {args.out}")
    print(f"speedup vs seed pipeline: {result.speedup:.2f}x")
    return 0


def level_line(level: ConcurrentLevel, how: str) -> str:
    """E.g. '32 trial(s) fused: 10.2 model-epochs/s, peak 20 MiB per trial'."""
    memory = ""
    if level.bytes_per_trial is not None:
        memory = f", peak {level.bytes_per_trial / 2**20:.0f} MiB per trial"
    return f"{level.concurrency} trial(s) {how}: {level.model_epochs_per_second:.3g} model-epochs/s{memory}"
