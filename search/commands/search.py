"""`mnist-arch search`: run (or resume) a study."""

from __future__ import annotations

import argparse

from optuna_dashboard import save_note
from rich.console import Console
from rich.markup import escape

from mnist_arch.data import load_mnist
from mnist_arch.errors import UsageError
from mnist_arch.regular_files import require_regular
from mnist_arch.trainer import DeviceData
from search.artifacts import artifact_dir_for
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
from search.objective import TrialContext
from search.output_paths import check_output_folder
from search.progress import SearchProgress, wide_console
from search.results import fault_lines, result_table, top_trials
from search.run.capacity import AUTO_CONCURRENCY, FUSED_AUTO_CONCURRENCY
from search.run.engines import ENGINE_CHOICES, expected_in_flight, make_engine, resolve_engine
from search.run.heartbeat import heartbeat_from_env
from search.run.interrupts import Interrupted, check_interrupt, interrupts_as_exceptions
from search.run.scheduler import run_search
from search.run.settings import SearchSettings
from search.run.settle import throughput_line
from search.run.workers import plan_devices, run_workers, trial_line
from search.storage import mask_url, open_storage, use_wal
from search.study import OBJECTIVES, PRUNERS, enqueue_baselines, open_search_study
from search.trials import trained_count
from search.winner import confirm_winner, confirmed_winner
from space.budget import require_feasible, require_reachable
from space.space import SearchSpace


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
        "--no-baselines",
        action="store_true",
        help="do not queue the three hand-designed iterations in a new study",
    )
    study.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seeds the sampler and every trial's training (trial seed = S + trial number; default: 0)",
    )
    study.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        metavar="N",
        help=f"worker processes sharing the study, 1 to {MAX_WORKERS} (default: 1). With --device auto "
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
        default=5,
        metavar="K",
        help="searched trials to confirm (default: 5; 0 turns confirmation off)",
    )
    confirmation.add_argument(
        "--confirm-seeds",
        type=positive_int,
        default=3,
        metavar="N",
        help="seeds per confirmed model (default: 3)",
    )
    parser.set_defaults(run=run)


def concurrency_arg(text: str) -> int | None:
    """'auto' -> None; else a positive integer."""
    return None if text == "auto" else positive_int(text)


def run(args: argparse.Namespace) -> int:
    console = wide_console(args.wide)
    with interrupts_as_exceptions():
        try:
            return _run(SearchSettings.from_args(args), console)
        except Interrupted as error:
            console.print(f"interrupted ({error}): the running trial is marked failed. {_RESUME}")
            return error.exit_code


_RESUME = "Run the same command again to resume."


def check_artifact_folder(args: SearchSettings) -> None:
    """The folder complete trials' files go to (--artifacts, else beside a SQLite file) must be creatable."""
    try:
        folder = artifact_dir_for(args.storage, args.artifacts)
    except ValueError:
        raise UsageError(
            f"no artifact folder can be named after --storage {mask_url(args.storage)}; pass --artifacts DIR"
        ) from None
    if folder is not None:
        check_output_folder(folder, "--artifacts" if args.artifacts else "the artifact folder")


def _run(args: SearchSettings, console: Console) -> int:
    # Everything that can be wrong with the input is checked before the storage is touched, in this
    # order: space and budget, devices, data, output paths, then the storage and the study's settings.
    if args.space is not None:  # the space reader would block on a FIFO
        require_regular(args.space, "space file")
    space = SearchSpace.load(args.space, max_params=args.max_params, epochs=args.epochs)
    max_params = space.max_params
    require_reachable(space, max_params)
    require_feasible(space, max_params)
    devices = plan_devices(args.device, args.workers)
    mnist = load_mnist(args.data, args.subset)
    check_artifact_folder(args)

    storage = open_storage(args.storage, heartbeat_from_env())
    study, new = open_search_study(
        args, storage, space, mnist, in_flight=expected_in_flight(args.concurrency, devices[0])
    )
    use_wal(storage)
    if new:
        save_note(study, f"Data: {mnist.identity.summary()}")  # the dashboard's study page names the data
    if new and not args.no_baselines:
        enqueue_baselines(study, space)
    done = trained_count(study)
    where = ", ".join(map(str, devices)) if len(devices) > 1 else str(devices[0])
    console.print(
        f"study '{escape(study.study_name)}' in {escape(mask_url(args.storage))}: {done} trained trial(s), "
        f"target {args.trials}; {args.workers} worker(s) on {where} "
        f"({resolve_engine(args.engine, space, devices[0])} engine), "
        f"{len(mnist.train_labels):,} training images of {escape(mnist.identity.name)}, "
        f"budget {max_params:,} parameters"
    )
    if len(devices) == 1:
        return _search_here(args, console, study, space, devices[0], mnist, done)
    del mnist  # each worker loads its own copy
    check_interrupt()
    code = run_workers(args, devices, study)
    interrupted = code in (130, 143)
    if code == 0:

        def reload() -> DeviceData:  # the workers had their own copies
            return DeviceData.from_mnist(load_mnist(args.data, args.subset), devices[0])

        code = _confirm(args, console, study, reload)
    _print_results(console, study, args.confirm_top > 0, args.wide)
    if interrupted:
        console.print(f"interrupted: the running trials are marked failed. {_RESUME}")
    return code


def _search_here(args, console, study, space, device, mnist, done) -> int:  # noqa: ANN001
    """One worker, in this process, with a live progress bar."""
    key = "val_acc" if args.objective == "val" else "test_acc"
    with SearchProgress(console, args.trials, done, args.epochs, key) as progress:
        ctx = TrialContext.from_args(args, space, DeviceData.from_mnist(mnist, device), progress.on_epoch)
        engine = make_engine(args.engine, space, ctx.data, args.concurrency)
        stats = run_search(
            study,
            ctx,
            engine,
            args,
            on_trial_done=progress.on_trial_done,
            on_trial_failed=lambda trial: console.print(trial_line(trial)),
        )
    console.print(throughput_line(stats), soft_wrap=True)
    drawn = stats.trained + stats.rejected
    if drawn:
        console.print(
            f"{stats.trained} trained, {stats.pruned} pruned; {stats.rejected} of {drawn} "
            f"draws were over budget and rejected before training"
        )
    code = _confirm(args, console, study, lambda: ctx.data)
    _print_results(console, study, args.confirm_top > 0, args.wide)
    return code


def _confirm(args, console, study, load_data) -> int:  # noqa: ANN001
    """Seed-confirm the top trials (--timeout limits new trials only); 0, or the exit code of a signal."""
    if args.confirm_top == 0:
        return 0
    try:
        confirm_winner(
            console,
            study,
            top_trials(study, args.confirm_top),
            load_data,
            seeds=args.confirm_seeds,
            epochs=study.user_attrs.get("epochs") or args.epochs,
            subset=args.subset,
        )
    except Interrupted as error:
        console.print(f"interrupted ({error}) during confirmation: finished runs are stored. {_RESUME}")
        return error.exit_code
    return 0


def _print_results(console: Console, study, confirmed: bool, wide: bool = False) -> None:  # noqa: ANN001
    console.print(result_table(study, wide=wide))
    faults = fault_lines(study)
    if faults:
        console.print("not completed: " + "; ".join(faults), highlight=False)
    winner = confirmed_winner(study)
    if confirmed and winner is not None:
        console.print(f"confirmed winner: {winner.line()}", highlight=False)
