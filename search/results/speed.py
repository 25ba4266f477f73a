"""How fast a study trained, from the start and end times stored with its trials.

A trial's `sec_per_epoch` is wall time: with several trials in flight, several workers or any other load
on the machine, it measures the share of the machine the trial got, not the model. The figure to compare
runs by is the throughput: model-epochs trained per second while at least one trial was training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from optuna.trial import FrozenTrial

from search.study.trials import is_trained

SPEED_NOTE = (
    "wall-clock seconds per epoch while the trial shared the machine with the others in flight "
    "(and any other load), not the model's own speed"
)


@dataclass(frozen=True)
class Throughput:
    model_epochs: int
    busy_seconds: float  # wall time while at least one trial was training
    max_in_flight: int
    eval_share: float | None = None  # evaluation's share of the trials' training and evaluation time

    @property
    def per_second(self) -> float:
        return self.model_epochs / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def line(self) -> str:
        share = "" if self.eval_share is None else f"; evaluation {100 * self.eval_share:.0f} % of the time"
        return (
            f"throughput: {self.model_epochs:,} model-epochs in {self.busy_seconds:,.0f} s of training: "
            f"{self.per_second:.3g} model-epochs/s, up to {self.max_in_flight} trial(s) in flight{share}"
        )


def _interval(trial: FrozenTrial) -> tuple[datetime, datetime] | None:
    if not is_trained(trial) or trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return trial.datetime_start, trial.datetime_complete


def throughput(trials: Sequence[FrozenTrial]) -> Throughput | None:
    """Model-epochs per second of wall time with a trial training; None before any trial is trained."""
    timed = [(t, span) for t in trials if (span := _interval(t)) is not None]
    if not timed:
        return None
    epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t, _ in timed)
    busy, end = 0.0, None
    for start, stop in sorted(span for _, span in timed):
        if end is None or start > end:
            busy += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            busy += (stop - end).total_seconds()
            end = stop
    return Throughput(epochs, busy, max(in_flight(trials).values()), eval_share([t for t, _ in timed]))


def eval_share(trials: Sequence[FrozenTrial]) -> float | None:
    """Evaluation's share of the trials' recorded training and evaluation seconds; None where no trial
    recorded them (studies from before they were)."""
    train = sum(t.user_attrs.get("train_seconds", 0.0) for t in trials)
    evaluation = sum(t.user_attrs.get("eval_seconds", 0.0) for t in trials)
    return evaluation / (train + evaluation) if train + evaluation > 0 else None


def in_flight(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """For each trained trial's number, the most trials that were training at one time during its run
    (itself included): 1 where it trained alone."""
    spans = {t.number: span for t in trials if (span := _interval(t)) is not None}
    events = sorted(event for start, stop in spans.values() for event in ((start, 1), (stop, -1)))
    # The level after each event; an end sorts before a start at one instant: touching runs don't overlap.
    levels: list[tuple[datetime, int]] = []
    level = 0
    for moment, step in events:
        level += step
        levels.append((moment, level))
    most = {}
    for number, (start, stop) in spans.items():
        inside = [lvl for moment, lvl in levels if start <= moment < stop]
        most[number] = max(inside, default=1)
    return most
