"""Pruners: the rung rule (the default) and the running median rule it replaced.

Both compare a trial with every trial that reached the same epoch, running and pruned ones included,
so the first wave of a concurrent search (`--concurrency`, `--workers`), which starts together, can
be pruned before anything completes (Optuna's MedianPruner waits for completed trials and pruned
none of a 32-trial wave). The median rule decides at every epoch after its warm-up; the rung rule
decides at a few epochs only, with a noise margin, and never prunes a baseline. How each was chosen:
`scripts/replay_pruners.py` replays them over recorded unpruned learning curves (BENCHMARKS.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.data import VALIDATION_SIZE

_PEERS = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


class RungPruner(optuna.pruners.BasePruner):
    """Prune only at a few rungs, and only a trial clearly below the field there.

    At a rung epoch r, a trial's score is its best reported value up to r (one epoch's dip on a
    5,000-image split is noise, not a trend; a search reports at the rungs and the last epoch only,
    unless --curves measures every epoch). Its peers are every other trial that reported epoch r or was pruned
    before it, each scored by its best value up to r: a trial pruned at an earlier rung stays in the
    field at its last value, so later rungs are not decided among survivors alone (that pool would
    ratchet up: only the best reach late epochs, and their gaps are the size of the noise). The trial
    is pruned when its score is below the `keep` quantile from the top of the field by more than `z`
    standard errors of an accuracy measured on `n_val` images at that quantile (two standard errors
    are 0.6 points at 95 %, 0.28 at 99 % on 5,000 images): early, noisy epochs get a wider margin.
    Queued baselines (user attribute `baseline`) are references and never pruned.

    Args:
        rungs: epochs (1-based steps) at which a decision is made; none elsewhere.
        keep: share of the field that is safe at a rung (0.5 = the median).
        z: the margin in standard errors of the quantile's accuracy.
        n_val: images the reported accuracy is measured on.
        min_peers: peers needed at a rung before any pruning.
    """

    def __init__(
        self,
        rungs: Sequence[int],
        keep: float = 0.5,
        z: float = 0.0,
        n_val: int = VALIDATION_SIZE,
        min_peers: int = 4,
    ) -> None:
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.rungs = tuple(sorted(set(rungs)))
        self.keep = keep
        self.z = z
        self.n_val = n_val
        self.min_peers = min_peers

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or "baseline" in trial.user_attrs:
            return False
        if math.isnan(trial.intermediate_values[step]):
            return True
        if step not in self.rungs:
            return False
        sign = 1.0 if _maximize(study) else -1.0
        score = _best_up_to(trial, step, sign)
        peers = [
            _best_up_to(other, step, sign)
            for other in study.get_trials(deepcopy=False, states=_PEERS)
            if other.number != trial.number and _in_field(other, step)
        ]
        peers = [p for p in peers if not math.isnan(p)]
        if len(peers) < self.min_peers:
            return False
        bar = _upper_quantile(peers, self.keep)
        return score < bar - self.z * _standard_error(abs(bar), self.n_val)


def _standard_error(accuracy: float, n: int) -> float:
    """Of an accuracy measured on n images (binomial); accuracies outside [0, 1] get none."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if 0.0 <= accuracy <= 1.0 else 0.0


def _in_field(trial: FrozenTrial, step: int) -> bool:
    """Reached `step`, or was pruned after reporting something before it (over-budget draws report
    nothing, so they never count)."""
    last = trial.last_step
    return last is not None and (last >= step or trial.state == TrialState.PRUNED)


def _best_up_to(trial: FrozenTrial, step: int, sign: float) -> float:
    """The trial's best value at epochs <= step, as a score to maximise (sign -1 for minimising)."""
    values = [sign * v for s, v in trial.intermediate_values.items() if s <= step and not math.isnan(v)]
    return max(values) if values else math.nan


def _upper_quantile(values: list[float], keep: float) -> float:
    """The value that `keep` of `values` reach or beat (linear interpolation)."""
    ordered = sorted(values, reverse=True)
    position = keep * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# The default rule's settings, chosen by replaying recorded curves (scripts/replay_pruners.py):
# of the settings that finished the best curve in every replayed order and kept at least 4.5 of the
# true top 5 on average, the one that saves the most model-epochs.
RUNG_SHARES = (1 / 5, 1 / 3, 2 / 3)  # of the epoch budget: 3, 5 and 10 of 15 epochs
RUNG_KEEP = 0.33
RUNG_Z = 2.0  # standard errors of margin


def default_rungs(epochs: int) -> tuple[int, ...]:
    """Decision epochs for an epoch budget (3, 5, 10 of 15); none before epoch 2 or at the last."""
    rungs = {max(2, round(share * epochs)) for share in RUNG_SHARES}
    return tuple(sorted(r for r in rungs if r < epochs))


class ReportedMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose value at an epoch is worse than the median of the others' at that epoch.

    Every epoch after the warm-up is a decision against the trials that reached it, so the field is
    halved again at each epoch (kept as `--pruner median`; the rung rule is the default).

    Args:
        n_min_trials: other trials that must have reported this epoch before any pruning.
        n_warmup_steps: epochs (1-based steps) up to which no trial is pruned.
    """

    def __init__(self, n_min_trials: int = 3, n_warmup_steps: int = 0) -> None:
        self.n_min_trials = n_min_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step <= self.n_warmup_steps:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        peers = [
            other.intermediate_values[step]
            for other in study.get_trials(deepcopy=False, states=_PEERS)
            if other.number != trial.number and step in other.intermediate_values
        ]
        peers = [v for v in peers if not math.isnan(v)]
        if len(peers) < self.n_min_trials:
            return False
        median = statistics.median(peers)
        return value < median if _maximize(study) else value > median
