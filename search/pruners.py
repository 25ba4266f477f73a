"""The median rule over every trial that reached an epoch, running ones included.

Optuna's MedianPruner compares a trial with completed trials only. With many trials in flight at once
(`--concurrency`, `--workers`) the first wave starts together and nothing completes before it ends, so
nothing in it could be pruned: a 60-trial GPU search pruned 0 of its first 33 trials. Comparing with
what every other trial reported at the same epoch prunes from the first wave on; run one trial at a
time, it differs from MedianPruner only in also counting trials that were pruned.
"""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState

_PEERS = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class ReportedMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose value at an epoch is worse than the median of the others' at that epoch.

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
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        return value < median if maximize else value > median
