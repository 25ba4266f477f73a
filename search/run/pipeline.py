"""The front door: `search(settings)` is the whole search, for the CLI, the scripts and every worker.

Check the input (space and budget, devices, data, output paths, then the storage and the study's
settings), open or resume the study, train here or in worker processes, confirm the top trials, and
return the stats and the confirmed winner. Nothing is printed: `SearchCallbacks` hears the progress
(`mnist-arch search` prints it). With `settings.workers` > 1 the trials train in spawned processes, each
running `_search_in_process` as one process does and printing its own lines.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna
import torch
from optuna.trial import FrozenTrial
from optuna_dashboard import save_note

from mnist_arch.data import Mnist, load_mnist
from mnist_arch.errors import UsageError
from mnist_arch.trainer import EVERY_EPOCH, DeviceData, Evaluation, compile_pays
from search.export.artifacts import artifact_dir_for
from search.export.output_paths import check_output_folder
from search.results.table import top_trials
from search.results.winner import Winner, confirmed_winner
from search.run.callbacks import SearchCallbacks, SearchStart
from search.run.capacity import trials_in_flight
from search.run.confirmation import confirm_winner, has_baselines
from search.run.engine import Engine
from search.run.fused import FusedEngine
from search.run.heartbeat import heartbeat_from_env
from search.run.interrupts import Interrupted, check_interrupt, interrupts_as_exceptions
from search.run.scheduler import run_search, worker_name
from search.run.separate import SeparateEngine
from search.run.settings import SearchSettings
from search.run.settle import SearchStats
from search.run.sizing import ConfirmSize, cost_text, final_size, is_automatic, planned_size
from search.run.trial import TrialContext
from search.run.workers import auto_workers, plan_devices, run_workers, trial_line
from search.study.storage import mask_url, open_storage, use_wal
from search.study.study import decision_epochs, enqueue_baselines, open_search_study
from search.study.trials import trained_count
from space.budget import require_feasible, require_reachable
from space.space import SearchSpace

# separate: every trial its own model (on CUDA its own graph and stream); fused: trials of one batch
# size and depth after the pool train as one network with grouped convolutions.
ENGINES = ("separate", "fused")
ENGINE_CHOICES = ("auto", *ENGINES)


def resolve_engine(engine: str, space: SearchSpace, device: torch.device) -> str:
    """`auto`: fused on CUDA when the space fixes the architecture and the recipe family the fused banks
    train (space/recipe.toml), else separate; `fused` for another space is refused.

    Fused banks pay off when their members share a shape: on an H200, 32 copies of one model train
    at 9.4 model-epochs/s fused against 5.4 as separate graphs, but 64 random draws of the default
    space fuse into small or padded banks and train at 3.1 against 5.4 (BENCHMARKS.md). On the CPU
    fusing gains nothing.
    """
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}")
    if engine == "fused" and not space.fused_compatible:
        raise UsageError(
            "--engine fused trains the seed's layout with SGD + StepLR and rotation only, and this space "
            "draws other layers or recipes; use --engine separate, or fix the space as space/recipe.toml does"
        )
    if engine != "auto":
        return engine
    one_shape = space.fixed_architecture and space.fused_compatible
    return "fused" if device.type == "cuda" and one_shape else "separate"


def make_engine(
    engine: str,
    space: SearchSpace,
    data: DeviceData,
    concurrency: int | None,
    evaluation: Evaluation = EVERY_EPOCH,
) -> Engine:
    """The engine `--engine ENGINE` means for this space and device; concurrency None is automatic;
    `evaluation` says after which epochs the trials measure their accuracies; separate models compile
    where a run of the evaluation's epochs is long enough to pay for it (`compile_pays`)."""
    device = data.train_x.device
    name = resolve_engine(engine, space, device)
    if name == "fused":
        return FusedEngine(data, max_bank=trials_in_flight(concurrency, name, device), evaluation=evaluation)
    compiled = compile_pays(device, len(data.train_y), evaluation.epochs)
    return SeparateEngine(data, evaluation, compiled=compiled)


def trial_evaluation(settings: SearchSettings) -> Evaluation:
    """What a trial measures: validation where the pruner decides and at the end, test at the end only
    (both after every epoch with --curves; test beside validation when test is the objective)."""
    if settings.curves:
        return Evaluation(settings.epochs)
    return Evaluation(
        settings.epochs,
        decision_epochs(settings.pruner, settings.epochs),
        test_with_val=settings.objective == "test",
    )


@dataclass(frozen=True)
class SearchResult:
    """What `search` returns: the study, this process's counts and the confirmed winner."""

    study: optuna.Study  # the study searched; search.results reads it (table, report, export)
    stats: SearchStats | None  # this process's search loop; None when worker processes trained
    winner: Winner | None  # the confirmed winner as stored; None when confirm_top is 0 or none is stored
    exit_code: int = 0  # `mnist-arch search`'s: 0; 1 or 2 when a worker failed (error, bad input);
    #                     128 + N when signal N stopped the workers or the confirmation
    interrupted: str | None = None  # the stage a signal stopped: "workers" | "confirmation"

    @property
    def signal(self) -> str | None:
        """The name of the signal that stopped a stage, e.g. "SIGINT"."""
        return signal.Signals(self.exit_code - 128).name if self.interrupted else None


def search(settings: SearchSettings, callbacks: SearchCallbacks | None = None) -> SearchResult:
    """Run (or resume) the study `settings` name until it holds `settings.trials` trained trials (or
    `settings.timeout` passes), then confirm its top `settings.confirm_top` trials.

    Raises UsageError (with one line to show) for bad input, before the storage is touched, and
    Interrupted (a KeyboardInterrupt) when SIGINT or SIGTERM stops the search in this process; the
    trials in flight are then marked failed, and running the same search again resumes the study."""
    callbacks = callbacks or SearchCallbacks()
    with interrupts_as_exceptions():
        # Everything that can be wrong with the input is checked before the storage is touched, in this
        # order: space and budget, devices, data, output paths, then the storage and the study's settings.
        space = SearchSpace.load(settings.space, max_params=settings.max_params, epochs=settings.epochs)
        require_reachable(space, space.max_params)
        require_feasible(space, space.max_params)
        devices = plan_devices(settings.device, settings.workers or 1)
        mnist = load_mnist(settings.data, settings.subset)
        _check_artifact_folder(settings)

        storage = open_storage(settings.storage, heartbeat_from_env())
        study, new = _open_study(settings, storage, space, mnist, devices[0])
        if settings.workers is None:  # automatic: sized by what is left to train
            left = max(0, settings.trials - trained_count(study))
            settings = replace(settings, workers=auto_workers(settings, left * len(mnist.train_labels)))
            devices = plan_devices(settings.device, settings.workers)
        use_wal(storage)
        if new:
            save_note(study, f"Data: {mnist.identity.summary()}")  # the dashboard's study page names the data
        if new and not settings.no_baselines:
            enqueue_baselines(study, space, settings.baselines)
        reference = has_baselines(study)
        planned = planned_size(settings, reference)
        callbacks.started(
            SearchStart(
                study.study_name,
                mask_url(settings.storage),
                trained_count(study),
                settings.trials,
                tuple(map(str, devices)),
                resolve_engine(settings.engine, space, devices[0]),
                len(mnist.train_labels),
                mnist.identity.name,
                space.max_params,
                settings.epochs,
                "val_acc" if settings.objective == "val" else "test_acc",
                _confirmation_text(settings, planned, reference),
            )
        )
        stats, code, interrupted = None, 0, None
        if len(devices) == 1:
            data = DeviceData.from_mnist(mnist, devices[0])
            stats = _search_in_process(settings, study, space, data, callbacks)
            callbacks.searched(stats)

            def load_data() -> DeviceData:
                return data

        else:
            del mnist  # each worker loads its own copy
            check_interrupt()
            code = run_workers(settings, devices, study, _search_in_worker)
            interrupted = "workers" if code in (130, 143) else None

            def load_data() -> DeviceData:  # the workers had their own copies
                return DeviceData.from_mnist(load_mnist(settings.data, settings.subset), devices[0])

        size = final_size(settings, planned, study, reference)
        if code == 0 and size is not None:
            try:
                confirm_winner(
                    study,
                    top_trials(study, size.top),
                    load_data,
                    seeds=size.seeds,
                    rounds=size.rounds,
                    epochs=study.user_attrs.get("epochs")
                    or settings.epochs,  # --timeout limits new trials only
                    subset=settings.subset,
                    progress=callbacks,
                )
            except Interrupted as error:
                code, interrupted = error.exit_code, "confirmation"
        winner = confirmed_winner(study) if size is not None else None
        return SearchResult(study, stats, winner, code, interrupted)


def _confirmation_text(settings: SearchSettings, planned: ConfirmSize | None, reference: bool) -> str:
    """What the confirmation will cost, told before the search starts ("" with --confirm-top 0)."""
    if planned is None:
        return ""
    text = cost_text(planned, settings.epochs, reference, settings.trials * settings.epochs)
    if is_automatic(settings):
        text += "; at most half of the model-epochs the search trains (sized again after it)"
    return text


def _check_artifact_folder(settings: SearchSettings) -> None:
    """The folder complete trials' files go to (--artifacts, else beside a SQLite file) must be creatable."""
    try:
        folder = artifact_dir_for(settings.storage, settings.artifacts)
    except ValueError:
        raise UsageError(
            f"no artifact folder can be named after --storage {mask_url(settings.storage)}; "
            "pass --artifacts DIR"
        ) from None
    if folder is not None:
        check_output_folder(folder, "--artifacts" if settings.artifacts else "the artifact folder")


def _open_study(
    settings: SearchSettings,
    storage: optuna.storages.BaseStorage,
    space: SearchSpace,
    mnist: Mnist,
    device: torch.device,
    worker: str | None = None,
) -> tuple[optuna.Study, bool]:
    """The study, created or checked against `settings` (the parent's check, repeated in each worker)."""
    in_flight = trials_in_flight(settings.concurrency, resolve_engine(settings.engine, space, device), device)
    return open_search_study(settings, storage, space, mnist, in_flight=in_flight, worker=worker)


def _search_in_process(
    settings: SearchSettings,
    study: optuna.Study,
    space: SearchSpace,
    data: DeviceData,
    callbacks: SearchCallbacks,
    ready: Callable[[], None] | None = None,
) -> SearchStats:
    """The search loop in this process: trials from `study` trained on `data` until the study is full."""
    ctx = TrialContext.from_settings(settings, space, data, callbacks.epoch)
    engine = make_engine(settings.engine, space, data, settings.concurrency, trial_evaluation(settings))
    if ready is not None:
        ready()
    return run_search(
        study,
        ctx,
        engine,
        settings,
        on_trial_done=callbacks.trial_done,
        on_trial_failed=callbacks.trial_failed,
    )


class _WorkerLines(SearchCallbacks):
    """A worker's lines: each finished trial, prefixed with the worker's index."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def trial_done(self, trial: FrozenTrial) -> None:
        print(f"{self.prefix} {trial_line(trial)}", flush=True)

    trial_failed = trial_done


def _search_in_worker(settings: SearchSettings, device: torch.device, prefix: str) -> None:
    """One worker process's search (see search.run.workers): its own storage connection, sampler seed
    and copy of the data. The parent's settings check is repeated: the space file or the data may have
    changed since."""
    space = SearchSpace.load(settings.space, max_params=settings.max_params, epochs=settings.epochs)
    mnist = load_mnist(settings.data, settings.subset)
    storage = open_storage(settings.storage, heartbeat_from_env())
    study, _ = _open_study(settings, storage, space, mnist, device, worker=worker_name())
    lines = _WorkerLines(prefix)
    stats = _search_in_process(
        settings,
        study,
        space,
        DeviceData.from_mnist(mnist, device),
        lines,
        ready=lambda: print(f"{prefix} worker {worker_name()} on {device}", flush=True),
    )
    print(
        f"{prefix} done: {stats.trained} trained, {stats.rejected} over budget, "
        f"{stats.failed} failed, {stats.requeued} lost trial(s) requeued",
        flush=True,
    )
