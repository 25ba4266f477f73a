"""Seed confirmation: retrain a config from scratch with several seeds and keep the final test accuracies.

One search run can win by a lucky seed; the mean, spread and minimum over seeds say whether it did.
Runs are stored in the study's user attributes (a finished trial's own attributes are frozen), keyed by
model and training settings, so a second report reuses them and only trains the seeds still missing.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import DeviceData, EpochStats, train_together

PREFIX = "confirm:"
IN_FLIGHT = 32  # runs trained interleaved at once


@dataclass(frozen=True)
class Confirmation:
    test_accs: tuple[float, ...]  # final-epoch test accuracy per seed, seed order

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_accs)

    @property
    def std(self) -> float:
        return statistics.stdev(self.test_accs) if len(self.test_accs) > 1 else 0.0

    @property
    def min(self) -> float:
        return min(self.test_accs)

    def text(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}%"


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
):
    """(job, seed) pairs not yet stored, in job order."""
    return [
        (job, seed)
        for job in jobs
        for seed in range(seeds)
        if str(seed) not in stored_runs(study, attr_key(job.label, epochs, subset))
    ]


def confirm(
    study: optuna.Study,
    jobs: Sequence[ConfirmJob],
    data: DeviceData,
    *,
    seeds: int,
    epochs: int,
    subset: int | None,
    on_epoch: Callable[[ConfirmJob, int, EpochStats], None] | None = None,
) -> dict[str, Confirmation]:
    """Train every missing (job, seed) run, store them chunk by chunk; label -> seeds 0..seeds-1.

    The runs of a chunk train interleaved (on CUDA their graphs overlap), each exactly as alone."""
    missing = missing_seeds(study, jobs, seeds, epochs, subset)
    for first in range(0, len(missing), IN_FLIGHT):
        chunk = missing[first : first + IN_FLIGHT]

        def report(index: int, stats: EpochStats, chunk: list = chunk) -> None:
            if on_epoch is not None:
                on_epoch(chunk[index][0], chunk[index][1], stats)

        results = train_together(
            [(job.config, seed) for job, seed in chunk],
            data,
            epochs=epochs,
            on_epoch=report,
            in_flight=IN_FLIGHT,
        )
        for (job, seed), result in zip(chunk, results, strict=True):
            key = attr_key(job.label, epochs, subset)
            runs = stored_runs(study, key)
            last = result.history[-1]
            runs[str(seed)] = {
                "test_acc": last.test_acc,
                "val_acc": last.val_acc,
                "device": data.train_x.device.type,
            }
            study.set_user_attr(key, {"epochs": epochs, "subset": subset, "runs": runs})
    return {job.label: load(study, job.label, seeds, epochs, subset) for job in jobs}


def load(study: optuna.Study, label: str, seeds: int, epochs: int, subset: int | None) -> Confirmation:
    runs = stored_runs(study, attr_key(label, epochs, subset))
    return Confirmation(tuple(runs[str(seed)]["test_acc"] for seed in range(seeds)))
