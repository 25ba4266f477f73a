"""The median rule counts every trial that reached the epoch, running ones too."""

from __future__ import annotations

import optuna
import pytest

from search.pruners import ReportedMedianPruner


def study_with_running_peers(values: list[float]) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=ReportedMedianPruner(3, n_warmup_steps=1))
    for value in values:  # still running: nothing has completed yet
        peer = study.ask()
        peer.report(value, 2)
    return study


@pytest.mark.parametrize(("value", "pruned"), [(0.50, True), (0.95, False)])
def test_prunes_below_the_median_of_running_trials(value: float, pruned: bool) -> None:
    study = study_with_running_peers([0.90, 0.80, 0.70])
    trial = study.ask()
    trial.report(value, 2)
    assert trial.should_prune() is pruned
    # Optuna's MedianPruner waits for completed trials, so it would prune nothing here.
    optuna_median = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    assert not optuna_median.prune(study, study.trials[-1])


def test_needs_enough_peers_and_respects_warm_up() -> None:
    study = study_with_running_peers([0.90, 0.80])
    trial = study.ask()
    trial.report(0.1, 2)
    assert not trial.should_prune()  # two peers are not enough
    study = study_with_running_peers([0.90, 0.80, 0.70])
    for peer in study.trials:
        peer_trial = optuna.trial.Trial(study, peer._trial_id)
        peer_trial.report(0.9, 1)
    trial = study.ask()
    trial.report(0.1, 1)
    assert not trial.should_prune()  # epoch 1 is within the warm-up
