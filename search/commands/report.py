"""`mnist-arch report`: the top models next to the three iterations, optionally seed-confirmed."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from mnist_arch.errors import UsageError
from mnist_arch.trainer import DeviceData, EpochStats
from search.commands.args import add_data_args, add_study_args, non_negative_int, positive_int
from search.confirm import ConfirmJob, confirm, missing_seeds
from search.existing import open_existing_study
from search.report import figures, rank_by_confirmation, report_rows, rich_table, write_report
from search.storage import mask_url

DEFAULT_EPOCHS = 15


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.md and report.html: top models next to the three iterations",
        description="Tables and plots of a study. --confirm-seeds N retrains the top K and the three "
        "iterations from scratch with N seeds; the runs are stored in the study and reused.",
    )
    study = parser.add_argument_group("study")
    add_study_args(study)
    study.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")
    study.add_argument("--top", type=positive_int, default=5, metavar="K", help="searched models shown (5)")
    confirmation = parser.add_argument_group("seed confirmation")
    confirmation.add_argument(
        "--confirm-seeds",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="retrain each model with seeds 0..N-1 (default: 0 = off; 5 is a good choice)",
    )
    confirmation.add_argument(
        "--epochs", type=positive_int, help="epochs of each confirmation run (default: the study's, else 15)"
    )
    add_data_args(confirmation)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    study = open_existing_study(args.storage, args.study)
    rows = report_rows(study, args.top)

    confirm_info = None
    if args.confirm_seeds:
        epochs = args.epochs or study.user_attrs.get("epochs") or DEFAULT_EPOCHS
        jobs = [row.job for row in rows]
        todo = missing_seeds(study, jobs, args.confirm_seeds, epochs, args.subset)
        device = resolve_device(args.device)
        data = None
        if todo:
            mnist = load_mnist(args.data, args.subset)
            data = DeviceData.from_mnist(mnist, device)
            console.print(
                f"confirming {len(jobs)} models with {args.confirm_seeds} seeds: {len(todo)} runs of "
                f"{epochs} epochs on {len(mnist.train_labels):,} images ({device}); stored runs are reused"
            )
        results = _confirm_with_progress(
            console, study, jobs, data, args.confirm_seeds, epochs, args.subset, len(todo)
        )
        for row in rows:
            row.confirmation = results[row.label]
        rows = rank_by_confirmation(rows)
        confirm_info = {
            "seeds": args.confirm_seeds,
            "epochs": epochs,
            "subset": args.subset,
            "device": device.type,
        }

    console.print(rich_table(study, rows))
    with console.status("drawing plots"):
        figs = figures(study, rows)
    written = write_report(out, study, mask_url(args.storage), rows, figs, confirm_info)
    console.print("wrote " + ", ".join(str(p) for p in written) + f" and {out / 'plots'}/")
    return 0


def _confirm_with_progress(console, study, jobs, data, seeds, epochs, subset, runs):  # noqa: ANN001, ANN202
    progress = Progress(
        TextColumn("confirmation"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    )
    if runs == 0:
        return confirm(study, jobs, data, seeds=seeds, epochs=epochs, subset=subset)
    task = progress.add_task("", total=runs * epochs)

    def on_epoch(job: ConfirmJob, seed: int, stats: EpochStats) -> None:
        progress.update(
            task,
            advance=1,
            description=f"{job.label} seed {seed} epoch {stats.epoch}/{epochs} "
            f"test {100 * stats.test_acc:.2f}%",
        )

    with progress:
        return confirm(study, jobs, data, seeds=seeds, epochs=epochs, subset=subset, on_epoch=on_epoch)
