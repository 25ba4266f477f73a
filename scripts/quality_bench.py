"""Search quality: a search of fixed wall-clock budget, confirmed, next to iteration 3 in the same study.

    python scripts/quality_bench.py --device cuda --minutes 10 --out BENCHMARKS.md       # the GPU figure
    python scripts/quality_bench.py --device cpu --minutes 2 --subset 2000 --epochs 3   # a CPU-sized one

For each budget (--budgets, default 8000,5000) it runs a search (`search.search`, what `mnist-arch
search` runs, with its printing) in a new SQLite study that
starts new trials for --minutes, then confirms the top --confirm-top searched models and iteration 3
with --confirm-seeds seeds each (final-epoch accuracy; the winner is the best mean validation
accuracy, test accuracy is only reported). The table, printed last, gives the confirmed winner's
parameters and mean ± std test accuracy next to iteration 3's; with --out it replaces the
"Search quality" section of that markdown file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.replay_pruners import replace_section  # noqa: E402
from search import SearchSettings, search  # noqa: E402
from search.commands.progress import SearchLines, wide_console  # noqa: E402
from search.results.winner import confirmed_winner  # noqa: E402

SECTION = "## Search quality"  # its own: the replay's writer owns "## Pruner replay"

SECTION = "## Search quality"


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor() or platform.machine()


def run_search(storage: str, budget: int, args: argparse.Namespace) -> float:
    settings = SearchSettings(
        study="quality",
        storage=storage,
        device=args.device,
        max_params=budget,
        epochs=args.epochs,
        trials=args.trials,
        timeout=60 * args.minutes,
        confirm_top=args.confirm_top,
        confirm_seeds=args.confirm_seeds,
        seed=args.seed,
        subset=args.subset,
        data=args.data,
    )
    print(settings, flush=True)
    start = time.monotonic()
    with SearchLines(wide_console()) as lines:
        result = search(settings, lines)
    if result.exit_code != 0:
        raise SystemExit(f"the search for --max-params {budget} ended with exit code {result.exit_code}")
    return time.monotonic() - start


def pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f} %"


def row(storage: str, budget: int, seconds: float, args: argparse.Namespace) -> str:
    study = optuna.load_study(study_name="quality", storage=storage)
    trained = sum(
        t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        and "rejected" not in t.user_attrs
        and "baseline" not in t.user_attrs
        for t in study.get_trials(deepcopy=False)
    )
    winner = confirmed_winner(study)
    if winner is None:
        return f"| {budget:,} | {seconds:.0f} s | {trained} | no confirmed winner | - | - | - |"
    reference = winner.reference
    ref_test = pct(reference.test_mean, reference.test_std) if reference else "-"
    gap = f"{100 * (winner.test_mean - reference.test_mean):+.2f}" if reference else "-"
    return (
        f"| {budget:,} | {seconds:.0f} s | {trained} | {winner.label}, {winner.n_params:,} params, "
        f"val {pct(winner.val_mean, winner.val_std)} | {pct(winner.test_mean, winner.test_std)} | "
        f"{ref_test} | {gap} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=10.0, help="new trials start for this long")
    parser.add_argument("--budgets", default="8000,5000", help="--max-params values, one search each")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--subset", type=int, help="training images (default: the whole pool)")
    parser.add_argument("--trials", type=int, default=10000, help="upper bound; the time ends a search")
    parser.add_argument("--confirm-top", type=int, default=5)
    parser.add_argument("--confirm-seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_ARCH_DATA)")
    parser.add_argument("--folder", help="where the studies go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="markdown file whose quality section is replaced")
    args = parser.parse_args()

    folder = Path(args.folder or tempfile.mkdtemp(prefix="quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        storage = f"sqlite:///{folder / f'quality-{budget}.db'}"
        seconds = run_search(storage, budget, args)
        rows.append(row(storage, budget, seconds, args))
    scale = f"{args.subset:,} training images" if args.subset else "the full 55,000-image pool"
    body = "\n".join(
        [
            f"`python scripts/quality_bench.py --device {args.device} --minutes {args.minutes:g}"
            + (f" --subset {args.subset}" if args.subset else "")
            + f" --epochs {args.epochs} --confirm-top {args.confirm_top} --confirm-seeds {args.confirm_seeds}"
            + f" --budgets {args.budgets}`: on {device_name(args.device)} (torch {torch.__version__}), "
            f"{args.epochs}-epoch trials on {scale}, new trials for {args.minutes:g} min, then the top "
            f"{args.confirm_top} searched models and iteration-3 confirmed with {args.confirm_seeds} "
            "seeds (final epoch; the winner is the best mean validation accuracy). Time is the whole "
            "command, confirmation included.",
            "",
            "| budget | time | searched trials | confirmed winner | its test accuracy | iteration-3 test "
            "| difference (points) |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print()
    print(body)
    if args.out:
        replace_section(args.out, body, SECTION)


if __name__ == "__main__":
    main()
