"""`mnist-arch search`: run (or resume) a study. The search is `search.run.pipeline.search`; this module
parses its options and prints its progress and results."""

from __future__ import annotations

import argparse

import optuna
from rich.console import Console

from search.commands import SUMMARIES
from search.commands.args import (
    MAX_WORKERS,
    add_data_args,
    add_study_args,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
    worker_count,
)
from search.commands.progress import SearchLines, wide_console
from search.results.table import fault_lines, result_table
from search.results.winner import Winner
from search.run.capacity import AUTO_CONCURRENCY, FUSED_AUTO_CONCURRENCY
from search.run.interrupts import Interrupted, interrupts_as_exceptions
from search.run.pipeline import ENGINE_CHOICES, search
from search.run.settings import SearchSettings
from search.study.study import BASELINE_CHOICES, OBJECTIVES, PRUNERS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help=SUMMARIES["search"],
        description="Search architectures and recipes under the parameter budget. Running the same "
        "command again resumes the study until it holds --trials trained trials.",
    )
    study = parser.add_argument_group("study")
    add_study_args(study)
    study.add_argument(
        "--trials",
        type=positive_int,
        default=50,
        help="trained trials (complete or pruned) the study should hold; the three "
        "baselines count, over-budget draws do not (default: 50)",
    )
    study.add_argument(
        "--timeout", type=positive_float, metavar="S", help="stop starting new trials after S seconds"
    )
    study.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="rungs",
        help="rungs (default): stop a trial only at a fifth, a third and two thirds of the epochs, when "
        "its best accuracy so far is more than two standard errors below the top third of every trial "
        "there (pruned ones at their last value), baselines never; median: below the median of the "
        "others at every epoch after epochs // 5; hyperband; none",
    )
    study.add_argument(
        "--objective",
        choices=tuple(OBJECTIVES),
        default="val",
        help="val: accuracy on the held-out validation split (default); test: the "
        "exercise's usual, optimistic choice",
    )
    study.add_argument(
        "--baselines",
        choices=BASELINE_CHOICES,
        default="iterations",
        help="references trained first in a new study: the three hand-designed iterations (default), "
        "all references (`mnist-arch baselines`), or none",
    )
    study.add_argument("--no-baselines", action="store_true", help="the same as --baselines none")
    study.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seeds the sampler and every trial's training (trial seed = S + trial number; default: 0)",
    )
    study.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        metavar="N",
        help=f"worker processes sharing the study, 1 to {MAX_WORKERS} (default: on the CPU one per core, "
        "each with one thread, when the search trains at least 200,000 image-epochs (trials x epochs x "
        "images), which repays starting them; else 1). With --device auto "
        "they spread over the visible GPUs; --device cuda:0,cuda:1 pins one worker per listed GPU. Run "
        "the same command on other machines with one --storage postgresql://... to search together",
    )
    study.add_argument(
        "--artifacts",
        metavar="DIR",
        help="folder for each complete trial's weights, layer table and learning curve "
        "(default: beside a SQLite file, e.g. mnist_arch.artifacts)",
    )
    study.add_argument(
        "--wide",
        action="store_true",
        help="every column in the result table (default: the columns that fit 80 characters)",
    )
    space = parser.add_argument_group("space and budget")
    space.add_argument("--space", metavar="FILE", help="TOML file overriding the default space")
    space.add_argument(
        "--max-params", type=positive_int, metavar="P", help="parameter budget (default: the space's, 8000)"
    )
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive_int, default=15, help="epochs per trial (15)")
    training.add_argument(
        "--concurrency",
        type=concurrency_arg,
        default=None,
        metavar="K",
        help="trials trained at once in this process: a number, or auto (default: auto, which is "
        f"up to {AUTO_CONCURRENCY} on CUDA ({FUSED_AUTO_CONCURRENCY} with the fused engine), capped by free "
        "memory, and 1 on CPU)",
    )
    training.add_argument(
        "--curves",
        action="store_true",
        help="measure validation and test accuracy after every epoch, for per-epoch curves in the "
        "dashboard and the report (default: validation only where the pruner decides and at the end, "
        "test at the end, which leaves training most of the time)",
    )
    training.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="how trials in flight train: separate (each its own model; on CUDA its own graph and "
        "stream), fused (trials with one batch size and depth after the pool as one network of "
        "grouped convolutions, padded to the widest; new trials join at epoch boundaries), or auto "
        "(default: fused on CUDA when the space fixes the architecture, else separate)",
    )
    add_data_args(training)
    confirmation = parser.add_argument_group(
        "confirmation",
        "after the search, the top K searched trials are retrained from scratch with seeds 0..N-1 on the "
        "study's data and epochs (iteration-3 too when the study has baselines); the best mean validation "
        "accuracy is the confirmed winner. Runs are stored in the study and reused",
    )
    confirmation.add_argument(
        "--confirm-top",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="searched trials to confirm (default: sized to the search, up to 5; 0 turns confirmation off)",
    )
    confirmation.add_argument(
        "--confirm-seeds",
        type=positive_int,
        default=None,
        metavar="N",
        help="seeds per confirmed model in the first round (default: sized to the search, up to 2)",
    )
    confirmation.add_argument(
        "--confirm-rounds",
        type=positive_int,
        default=None,
        metavar="R",
        help="successive halving over seeds: each round after the first keeps the better half (by mean "
        "validation accuracy) and doubles their seeds (1: every model gets --confirm-seeds). Given none "
        "of the three, the confirmation is the largest of top 5 x 2 seeds then the best 3 x 4, top 4 x 2 "
        "then 2 x 4, top 3 x 2, top 2 x 2, top 1 x 2, top 1 x 1 that costs at most half of the search's "
        "model-epochs (--trials x --epochs before it, what it trained after); given any, the others "
        "default to 5, 2 and 2",
    )
    parser.set_defaults(run=run)


def concurrency_arg(text: str) -> int | None:
    """'auto' -> None; else a positive integer."""
    return None if text == "auto" else positive_int(text)


def run(args: argparse.Namespace) -> int:
    console = wide_console(args.wide)
    settings = SearchSettings.from_args(args)
    with interrupts_as_exceptions():
        try:
            with SearchLines(console) as lines:
                result = search(settings, lines)
        except Interrupted as error:
            console.print(f"interrupted ({error}): the running trial is marked failed. {_RESUME}")
            return error.exit_code
        if result.interrupted == "confirmation":
            console.print(
                f"interrupted ({result.signal}) during confirmation: finished runs are stored. {_RESUME}"
            )
        _print_results(console, result.study, result.winner, settings.wide)
        if result.interrupted == "workers":
            console.print(f"interrupted: the running trials are marked failed. {_RESUME}")
        return result.exit_code


_RESUME = "Run the same command again to resume."


def _print_results(console: Console, study: optuna.Study, winner: Winner | None, wide: bool) -> None:
    console.print(result_table(study, wide=wide))
    faults = fault_lines(study)
    if faults:
        console.print("not completed: " + "; ".join(faults), highlight=False)
    if winner is not None:
        console.print(f"confirmed winner: {winner.line()}", highlight=False)
