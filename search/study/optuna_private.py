"""Every use of Optuna's private API, in one place. Checked against optuna 5.0.0 (pyproject.toml pins
the range these calls are known to work in); each wraps one call the public API does not offer."""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

CHECKED_AGAINST = "5.0.0"


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    return trial._trial_id


def live_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> optuna.Trial:
    """A Trial handle on a stored trial, to write its attributes after the fact (notes)."""
    return optuna.Trial(study, trial._trial_id)


def heartbeat_storage(study: optuna.Study) -> BaseStorage | None:
    """The study's storage where it keeps heartbeats (RDB storages opened with one), else None."""
    storage = study._storage
    return storage if optuna.storages._heartbeat.is_heartbeat_enabled(storage) else None


def stale_trial_ids(storage: BaseStorage, study: optuna.Study) -> list[int]:
    """Running trials whose heartbeat stopped for longer than the grace period: the query
    optuna.storages.fail_stale_trials runs, which cannot set a reason before failing them."""
    return storage._get_stale_trial_ids(study._study_id)


def give_back(study: optuna.Study, trial: optuna.Trial) -> None:
    """Return an asked trial to the queue (WAITING), untrained: Optuna has no public un-ask."""
    study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
