"""`mnist-arch report`: the top models next to the three iterations, optionally seed-confirmed."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from mnist_arch.errors import UsageError
from mnist_arch.trainer import DeviceData
from search.commands import SUMMARIES
from search.commands.args import add_data_args, add_study_args, non_negative_int, positive_int
from search.commands.progress import ConfirmationLines, wide_console
from search.results.confirmations import load_if_stored, rank_by_confirmation
from search.results.report import figures, report_rows, rich_table, winner_line, write_report
from search.results.winner import confirmed_winner
from search.run.confirmation import confirm_runs
from search.study.existing import open_existing_study
from search.study.storage import mask_url

DEFAULT_EPOCHS = 15


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help=SUMMARIES["report"],
        description="Tables and plots of a study, with its confirmed winner. --confirm-seeds N retrains "
        "the top K and the three iterations from scratch with N seeds and ranks them by mean validation "
        "accuracy; the runs are stored in the study and reused.",
    )
    study = parser.add_argument_group("study")
    add_study_args(study)
    study.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")
    study.add_argument("--top", type=positive_int, default=5, metavar="K", help="searched models shown (5)")
    study.add_argument(
        "--wide",
        action="store_true",
        help="every column in the terminal's table (default: the columns that fit 80 characters)",
    )
    confirmation = parser.add_argument_group("seed confirmation")
    confirmation.add_argument(
        "--confirm-seeds",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="retrain each model with seeds 0..N-1 and rank by mean validation accuracy "
        "(default: 0 = off, the table shows the search's confirmation runs; 5 is a good choice)",
    )
    confirmation.add_argument(
        "--epochs", type=positive_int, help="epochs of each confirmation run (default: the study's, else 15)"
    )
    add_data_args(confirmation)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = wide_console(args.wide)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    study = open_existing_study(args.storage, args.study)
    rows = report_rows(study, args.top)

    confirm_info = None
    if args.confirm_seeds:
        epochs = args.epochs or study.user_attrs.get("epochs") or DEFAULT_EPOCHS
        device = resolve_device(args.device)
        results = confirm_runs(
            study,
            [row.job for row in rows],
            lambda: DeviceData.from_mnist(load_mnist(args.data, args.subset), device),
            what=f"{len(rows)} models",
            seeds=args.confirm_seeds,
            epochs=epochs,
            subset=args.subset,
            progress=ConfirmationLines(console),
        )
        for row in rows:
            row.confirmation = results[row.label]
        rows = rank_by_confirmation(rows, lambda row: row.confirmation)
        confirm_info = {
            "seeds": args.confirm_seeds,
            "epochs": epochs,
            "subset": args.subset,
            "device": device.type,
        }
    elif (winner := confirmed_winner(study)) is not None:
        for row in rows:
            row.confirmation = load_if_stored(study, row.label, winner.seeds, winner.epochs, winner.subset)
        confirm_info = {
            "seeds": winner.seeds,
            "epochs": winner.epochs,
            "subset": winner.subset,
            "from_search": True,
        }

    console.print(rich_table(study, rows, wide=args.wide))
    console.print(winner_line(confirmed_winner(study)), highlight=False)
    with console.status("drawing plots"):
        figs = figures(study, rows)
    written = write_report(out, study, mask_url(args.storage), rows, figs, confirm_info)
    console.print("wrote " + ", ".join(str(p) for p in written) + f" and {out / 'plots'}/")
    return 0
