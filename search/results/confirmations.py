"""Seed confirmation as stored: each config retrained from scratch with several seeds, its final accuracies.

One search run can win by a lucky seed; the mean, spread and minimum over seeds say whether it did.
Runs are stored in the study's user attributes (a finished trial's own attributes are frozen), keyed by
model and training settings, so a second report or search reuses them and only trains the seeds still
missing. The training is the run side's (search.run.confirmation).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import optuna

from mnist_arch.config import CandidateConfig

PREFIX = "confirm:"
T = TypeVar("T")


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


def rank_by_confirmation(items: Sequence[T], confirmation: Callable[[T], Confirmation | None]) -> list[T]:
    """By mean validation accuracy over the seeds, best first (the earlier of a tie; unconfirmed last);
    test accuracy never ranks."""
    return sorted(items, key=lambda item: c.val_mean if (c := confirmation(item)) else -1.0, reverse=True)
