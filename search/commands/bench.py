"""`mnist-arch bench`: epoch time of the trainer against the seed-style pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from search.benchmark import append_markdown, run_benchmark
from search.commands.args import add_data_args, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time the trainer against the seed-style pipeline",
        description="Times epochs of iteration 3 with mnist-arch's trainer and with the seed-style "
        "pipeline (torchvision + PIL rotation + DataLoader) in one run.",
    )
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs of each (default: 3)")
    parser.add_argument("--out", default="BENCHMARKS.md", help="markdown file to append the row to")
    add_data_args(parser.add_argument_group("data and device"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    data = load_mnist(args.data, args.subset)
    result = run_benchmark(data, device, args.epochs)
    append_markdown(result, Path(args.out))
    print(f"device: {result.device_name}; {result.images:,} training images, {result.epochs} epochs")
    print(f"seed pipeline: {result.seed_sec_per_epoch:.2f} s/epoch")
    print(
        f"mnist-arch trainer: {result.project_sec_per_epoch:.2f} s/epoch"
        + (" (CUDA graph)" if result.graph else "")
    )
    print(f"results appended to {args.out}")
    print(f"speedup vs seed pipeline: {result.speedup:.2f}x")
    return 0
