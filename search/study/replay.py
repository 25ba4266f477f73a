"""Pruner replay: run a pruner offline over recorded, unpruned learning curves.

A recorded curve is what one trial reported at every epoch when nothing stopped it. Replaying feeds
those reports to a real Optuna study with the pruner under test, in arrival order and with K trials in
flight: each trial's epochs take its recorded seconds per epoch, a slot freed by a finished or pruned
trial goes to the next trial at once (as the search loop does), and the pruner sees every report in
time order. What the pruner stops is known in advance to have been worth how much, so its cost is
exact: the model-epochs it saved, and the final accuracy of the best trial it let finish against the
best of all (regret).
"""

from __future__ import annotations

import heapq
import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

TOP = 5  # "kept the true top 5": how many of the 5 best final accuracies finished


@dataclass(frozen=True)
class Curve:
    """One trial's unpruned validation accuracy per epoch (epoch 1 first)."""

    name: str
    values: tuple[float, ...]
    sec_per_epoch: float
    n_params: int
    baseline: str | None = None

    @property
    def final(self) -> float:
        return self.values[-1]


def curves_from_study(study: optuna.Study, source: str = "") -> list[Curve]:
    """Complete trials' intermediate values, in trial order; every curve must run the same epochs."""
    curves = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        steps = sorted(trial.intermediate_values)
        curves.append(
            Curve(
                f"{source or study.study_name}#{trial.number}",
                tuple(trial.intermediate_values[s] for s in steps),
                float(trial.user_attrs.get("sec_per_epoch", 1.0)),
                int(trial.user_attrs.get("n_params", 0)),
                trial.user_attrs.get("baseline"),
            )
        )
    return curves


def save_curves(curves: Sequence[Curve], path: Path, note: str) -> None:
    rows = [
        {
            "name": c.name,
            "values": list(c.values),
            "sec_per_epoch": c.sec_per_epoch,
            "n_params": c.n_params,
            "baseline": c.baseline,
        }
        for c in curves
    ]
    path.write_text(json.dumps({"note": note, "curves": rows}, indent=1) + "\n")


def load_curves(path: Path) -> list[Curve]:
    rows = json.loads(Path(path).read_text())["curves"]
    return [
        Curve(r["name"], tuple(r["values"]), r["sec_per_epoch"], r["n_params"], r.get("baseline"))
        for r in rows
    ]


@dataclass(frozen=True)
class Replay:
    """What one pruner did to one arrival order of the curves."""

    curves: tuple[Curve, ...]
    epochs_run: tuple[int, ...]  # per curve, in the curves' order

    @property
    def model_epochs(self) -> int:
        return sum(self.epochs_run)

    @property
    def saved(self) -> float:
        """Share of the unpruned model-epochs not trained."""
        return 1.0 - self.model_epochs / sum(len(c.values) for c in self.curves)

    def _searched(self) -> list[tuple[Curve, bool]]:
        return [
            (c, run == len(c.values))
            for c, run in zip(self.curves, self.epochs_run, strict=True)
            if c.baseline is None
        ]

    @property
    def regret(self) -> float:
        """Best final accuracy of all searched curves minus the best of those that finished."""
        searched = self._searched()
        kept = [c.final for c, finished in searched if finished]
        return max(c.final for c, _ in searched) - (max(kept) if kept else 0.0)

    @property
    def top_kept(self) -> int:
        ranked = sorted(self._searched(), key=lambda cf: cf[0].final, reverse=True)[:TOP]
        return sum(finished for _, finished in ranked)


def replay(
    curves: Sequence[Curve],
    make_pruner: Callable[[], optuna.pruners.BasePruner],
    concurrency: int,
    reported: frozenset[int] | None = None,
) -> Replay:
    """Feed the curves, in the given arrival order, to a study with a fresh pruner. `reported`: the epochs
    at which a trial reports (and the last), as a search measures them; None: every epoch."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    epochs_run = [0] * len(curves)
    trials: dict[int, optuna.Trial] = {}
    events: list[tuple[float, int, int]] = []  # (time the epoch ends, curve index, epoch)
    waiting = iter(range(len(curves)))

    def start(now: float) -> None:
        index = next(waiting, None)
        if index is None:
            return
        trial = study.ask()
        if curves[index].baseline is not None:
            trial.set_user_attr("baseline", curves[index].baseline)
        trials[index] = trial
        heapq.heappush(events, (now + curves[index].sec_per_epoch, index, 1))

    for _ in range(concurrency):
        start(0.0)
    while events:
        now, index, epoch = heapq.heappop(events)
        curve, trial = curves[index], trials[index]
        measured = reported is None or epoch in reported or epoch == len(curve.values)
        if measured:
            trial.report(curve.values[epoch - 1], epoch)
        epochs_run[index] = epoch
        if epoch == len(curve.values):
            study.tell(trial, curve.final)
        elif measured and trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
        else:
            heapq.heappush(events, (now + curve.sec_per_epoch, index, epoch + 1))
            continue
        start(now)
    return Replay(tuple(curves), tuple(epochs_run))


def arrival_orders(curves: Sequence[Curve], n: int, seed: int = 0) -> list[list[Curve]]:
    """The recorded order, then n-1 shuffles of the searched curves (baselines stay first, as queued)."""
    baselines = [c for c in curves if c.baseline is not None]
    searched = [c for c in curves if c.baseline is None]
    rng = random.Random(seed)
    orders = [baselines + searched]
    for _ in range(n - 1):
        shuffled = searched[:]
        rng.shuffle(shuffled)
        orders.append(baselines + shuffled)
    return orders


@dataclass(frozen=True)
class Summary:
    """A pruner over many arrival orders: means, and the worst order's regret."""

    saved: float
    regret_mean: float
    regret_worst: float
    winner_kept: float  # share of orders in which the best searched curve finished
    top_kept: float  # mean of the true top 5 that finished


def summarize(replays: Sequence[Replay]) -> Summary:
    return Summary(
        saved=statistics.fmean(r.saved for r in replays),
        regret_mean=statistics.fmean(r.regret for r in replays),
        regret_worst=max(r.regret for r in replays),
        winner_kept=statistics.fmean(r.regret == 0.0 for r in replays),
        top_kept=statistics.fmean(r.top_kept for r in replays),
    )


def replay_orders(
    orders: Sequence[Sequence[Curve]],
    make_pruner: Callable[[], optuna.pruners.BasePruner],
    concurrency: int,
    reported: frozenset[int] | None = None,
) -> Summary:
    return summarize([replay(order, make_pruner, concurrency, reported) for order in orders])
