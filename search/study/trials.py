"""What `--trials` counts, read from a study: trained trials (complete or pruned, over-budget draws not)."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState


def is_trained(trial: FrozenTrial) -> bool:
    """Complete or pruned after training: what --trials counts (over-budget draws are not)."""
    trained_states = (TrialState.COMPLETE, TrialState.PRUNED)
    return trial.state in trained_states and "rejected" not in trial.user_attrs


def trained_count(study: optuna.Study) -> int:
    return sum(is_trained(t) for t in study.get_trials(deepcopy=False))


def trained_and_running(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return sum(is_trained(t) for t in trials), sum(t.state == TrialState.RUNNING for t in trials)
