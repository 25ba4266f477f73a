"""Seed confirmation: retrain a config from scratch with several seeds and keep the final accuracies.

One search run can win by a lucky seed; the mean, spread and minimum over seeds say whether it did.
Runs are stored in the study's user attributes (a finished trial's own attributes are frozen), keyed by
model and training settings, so a second report or search reuses them and only trains the seeds still
missing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import DeviceData, DivergedError, EpochStats

PREFIX = "confirm:"
IN_FLIGHT = 32  # runs trained interleaved at once


def _stdev(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Confirmation:
    test_accs: tuple[float, ...]  # final-epoch test accuracy per seed, seed order
    val_accs: tuple[float, ...] = ()  # final-epoch validation accuracy per seed, seed order

    @property
    def seeds(self) -> int:
        return len(self.test_accs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_accs)

    @property
    def std(self) -> float:
        return _stdev(self.test_accs)

    @property
    def min(self) -> float:
        return min(self.test_accs)

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.val_accs)

    @property
    def val_std(self) -> float:
        return _stdev(self.val_accs)

    def text(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}%"

    def val_text(self) -> str:
        return f"{100 * self.val_mean:.2f} ± {100 * self.val_std:.2f}%"


@dataclass(frozen=True)
class ConfirmJob:
    label: str  # "trial-12" or an iteration's name
    config: CandidateConfig


def attr_key(label: str, epochs: int, subset: int | None) -> str:
    return f"{PREFIX}{label}:epochs={epochs}:subset={subset or 'full'}"


def stored_runs(study: optuna.Study, key: str) -> dict[str, dict]:
    """seed (as text) -> {"test_acc", "val_acc", "device"} already in the study."""
    return dict(study.user_attrs.get(key, {}).get("runs", {}))


def missing_seeds(
    study: optuna.Study, jobs: Sequence[ConfirmJob], seeds: int, epochs: int, subset: int | None
) -> list[tuple[ConfirmJob, int]]:
    """(job, seed) pairs not yet stored, in job order."""
    return [
        (job, seed)
        for job in jobs
        for seed in range(seeds)
        if str(seed) not in stored_runs(study, attr_key(job.label, epochs, subset))
    ]


OnEpoch = Callable[[ConfirmJob, int, EpochStats], None]


def confirm(
    study: optuna.Study,
    jobs: Sequence[ConfirmJob],
    data: DeviceData | None,
    *,
    seeds: int,
    epochs: int,
    subset: int | None,
    on_epoch: OnEpoch | None = None,
) -> dict[str, Confirmation]:
    """Train every missing (job, seed) run, store them chunk by chunk; label -> seeds 0..seeds-1.

    The runs of a chunk train interleaved (on CUDA their graphs overlap), each exactly as alone.
    `data` may be None only when nothing is missing."""
    missing = missing_seeds(study, jobs, seeds, epochs, subset)
    if missing and data is None:
        raise ValueError("confirmation runs are missing but no training data was given")
    for first in range(0, len(missing), IN_FLIGHT):
        chunk = missing[first : first + IN_FLIGHT]
        finals = _train_chunk(chunk, data, epochs, on_epoch)
        finished: dict[str, dict[str, dict]] = {}  # attribute key -> seed -> run, one write per key
        for (job, seed), last in zip(chunk, finals, strict=True):
            run = {"test_acc": 0.0, "val_acc": 0.0, "diverged": True}
            if last is not None:
                run = {"test_acc": last.test_acc, "val_acc": last.val_acc}
            key = attr_key(job.label, epochs, subset)
            finished.setdefault(key, {})[str(seed)] = {**run, "device": data.train_x.device.type}
        for key, runs in finished.items():
            runs = {**stored_runs(study, key), **runs}
            study.set_user_attr(key, {"epochs": epochs, "subset": subset, "runs": runs})
    return {job.label: load(study, job.label, seeds, epochs, subset) for job in jobs}


def _train_chunk(
    chunk: list[tuple[ConfirmJob, int]], data: DeviceData, epochs: int, on_epoch: OnEpoch | None
) -> list[EpochStats | None]:
    """Final-epoch stats of each run; None for a run that diverged (it counts as 0% accuracy).

    The runs train together on the search's separate engine; a run that diverges stops alone."""
    # Training only: reading a study imports nothing of the run side.
    from search.run.engine import EpochEnd
    from search.run.interrupts import interruptible
    from search.run.separate import SeparateEngine

    finals: list[EpochStats | None] = [None] * len(chunk)
    engine = SeparateEngine(data)
    with interruptible():
        for index, (job, seed) in enumerate(chunk):
            engine.admit(index, job.config, seed)
        while events := engine.advance():
            for event in events:
                if not isinstance(event, EpochEnd):
                    if isinstance(event.error, DivergedError):
                        continue
                    raise event.error
                job, seed = chunk[event.key]
                if on_epoch is not None:
                    on_epoch(job, seed, event.stats)
                if event.stats.epoch == epochs:
                    finals[event.key] = event.stats
                    engine.release(event.key)
    return finals


def load(study: optuna.Study, label: str, seeds: int, epochs: int, subset: int | None) -> Confirmation:
    runs = stored_runs(study, attr_key(label, epochs, subset))
    chosen = [runs[str(seed)] for seed in range(seeds)]
    return Confirmation(tuple(run["test_acc"] for run in chosen), tuple(run["val_acc"] for run in chosen))


def load_if_stored(
    study: optuna.Study, label: str, seeds: int, epochs: int, subset: int | None
) -> Confirmation | None:
    """The confirmation of `label` when all its seeds are stored, else None."""
    runs = stored_runs(study, attr_key(label, epochs, subset))
    if any(str(seed) not in runs for seed in range(seeds)):
        return None
    return load(study, label, seeds, epochs, subset)


def confirm_with_progress(
    console: Console,
    study: optuna.Study,
    jobs: Sequence[ConfirmJob],
    data: DeviceData | None,
    *,
    seeds: int,
    epochs: int,
    subset: int | None,
) -> dict[str, Confirmation]:
    """`confirm` with progress over the runs still to train (none when everything is stored): a bar in a
    terminal, plain lines in a pipe or a log (a line at the start and one per finished run)."""
    runs = len(missing_seeds(study, jobs, seeds, epochs, subset))
    if runs == 0:
        return confirm(study, jobs, data, seeds=seeds, epochs=epochs, subset=subset)
    if console.is_terminal:
        progress = Progress(
            TextColumn("confirmation"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        )
        task = progress.add_task("", total=runs * epochs)

        def on_epoch(job: ConfirmJob, seed: int, stats: EpochStats) -> None:
            text = f"{job.label} seed {seed} {_epoch_text(stats, epochs)}"
            progress.update(task, advance=1, description=text)

        with progress:
            return confirm(study, jobs, data, seeds=seeds, epochs=epochs, subset=subset, on_epoch=on_epoch)

    start, finished = time.monotonic(), 0

    def line(text: str) -> None:
        elapsed = timedelta(seconds=int(time.monotonic() - start))
        console.print(f"[{elapsed}] confirmation {text}", highlight=False, markup=False)

    def on_run_end(job: ConfirmJob, seed: int, stats: EpochStats) -> None:
        nonlocal finished
        if stats.epoch == epochs:
            finished += 1
            line(f"{finished}/{runs} runs | {job.label} seed {seed} {_epoch_text(stats, epochs)}")

    line(f"0/{runs} runs | started")
    return confirm(study, jobs, data, seeds=seeds, epochs=epochs, subset=subset, on_epoch=on_run_end)


def _epoch_text(stats: EpochStats, epochs: int) -> str:
    return f"epoch {stats.epoch}/{epochs} val {100 * stats.val_acc:.2f}% test {100 * stats.test_acc:.2f}%"
