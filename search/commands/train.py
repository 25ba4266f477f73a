"""`mnist-arch train`: train one config from scratch and write an export folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from mnist_arch.trainer import DeviceData, EpochStats, train
from search.commands import SUMMARIES
from search.commands.args import add_data_args, positive_int, seed_int
from search.export.artifacts import state_dict_bytes
from search.export.config_file import ExportedConfig, resolve_config
from search.export.export import versions, write_export
from search.export.output_paths import check_output_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help=SUMMARIES["train"],
        description="Trains a config.json (from `export`, or hand-written) or an iteration by name with "
        "the search's trainer, and writes the same export folder (config.json, weights.pt, summary.txt).",
    )
    parser.add_argument(
        "--config",
        required=True,
        metavar="FILE|NAME",
        help="config.json, an export folder, or a reference's name (mnist-arch baselines)",
    )
    parser.add_argument("--epochs", type=positive_int, default=15, help="epochs (default: 15)")
    parser.add_argument("--seed", type=seed_int, default=0, help="weights, order and rotation seed (0)")
    parser.add_argument("--out", metavar="DIR", help="export folder (default: runs/<config name>-seed<seed>)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    add_data_args(parser.add_argument_group("data and device"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    # Check everything before the minutes of training.
    source, origin = resolve_config(args.config)
    out = Path(args.out) if args.out is not None else Path("runs") / f"{_name(origin)}-seed{args.seed}"
    check_output_folder(out, "--out", force=args.force)
    device = resolve_device(args.device)
    mnist = load_mnist(args.data, args.subset)
    console.print(
        f"training {escape(origin)} ({source.n_params:,} parameters) for {args.epochs} epochs, "
        f"seed {args.seed}, on {len(mnist.train_labels):,} images ({device})"
    )
    data = DeviceData.from_mnist(mnist, device)

    progress = Progress(
        TextColumn("epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    task = progress.add_task("", total=args.epochs)

    def on_epoch(stats: EpochStats) -> bool:
        progress.console.print(
            f"epoch {stats.epoch:>3}: lr {stats.lr:.4g}, loss {stats.train_loss:.4f}, "
            f"val {100 * stats.val_acc:.2f}%, test {100 * stats.test_acc:.2f}%, {stats.seconds:.1f} s"
        )
        progress.advance(task)
        return False

    with progress:
        result = train(source.config, data, epochs=args.epochs, seed=args.seed, on_epoch=on_epoch)
    last = result.history[-1]
    exported = ExportedConfig(
        source.config,
        source.n_params,
        source.max_params,
        {"val_acc": last.val_acc, "test_acc": last.test_acc},
        {
            "epochs": args.epochs,
            "seed": args.seed,
            "subset": args.subset,
            "device": device.type,
            "source": origin,
            **versions(),
        },
        dataset=mnist.identity.to_dict() if mnist.identity is not None else None,
    )
    written = write_export(out, exported, state_dict_bytes(result.model), result.history, force=args.force)
    console.print(
        f"test accuracy {100 * last.test_acc:.2f}% after {args.epochs} epochs; "
        f"wrote {escape(str(out))}: {', '.join(written)}"
    )
    return 0


def _name(origin: str) -> str:
    path = Path(origin)
    return path.parent.name if path.name == "config.json" and path.parent.name else path.stem
