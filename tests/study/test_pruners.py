"""The median rule counts every trial that reached the epoch, running ones too."""

from __future__ import annotations

import optuna
import pytest

from search.study.pruners import ReportedMedianPruner, RungPruner, default_rungs


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


def rung_study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", pruner=pruner)


def running_trial(study: optuna.Study, values: list[float], **attrs: str) -> optuna.Trial:
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for epoch, value in enumerate(values, start=1):
        trial.report(value, epoch)
    return trial


def test_rungs_decide_only_at_their_epochs() -> None:
    study = rung_study(RungPruner((3,), keep=0.5, min_peers=3))
    for _ in range(3):
        running_trial(study, [0.9, 0.95, 0.97])
    assert not running_trial(study, [0.1, 0.1]).should_prune()  # epoch 2 is no rung
    assert running_trial(study, [0.1, 0.1, 0.1]).should_prune()
    assert not running_trial(study, [0.1, 0.1, 0.1], baseline="iteration-3").should_prune()


def test_rungs_score_the_best_so_far_and_allow_a_margin() -> None:
    # Two standard errors of 0.96 measured on 1,000 images: 2 * sqrt(0.96 * 0.04 / 1000) = 0.0124.
    study = rung_study(RungPruner((3,), keep=0.5, z=2.0, n_val=1000, min_peers=3))
    for _ in range(3):
        running_trial(study, [0.90, 0.95, 0.96])
    assert not running_trial(study, [0.90, 0.97, 0.90]).should_prune()  # a dip at the rung is noise
    assert not running_trial(study, [0.90, 0.93, 0.949]).should_prune()  # within the margin
    assert running_trial(study, [0.90, 0.93, 0.946]).should_prune()


def test_a_pruned_trial_stays_in_the_field_so_later_rungs_do_not_ratchet() -> None:
    study = rung_study(RungPruner((2, 4), keep=0.5, min_peers=3))
    for _ in range(3):  # stopped at the first rung with 0.80
        weak = running_trial(study, [0.8, 0.8])
        study.tell(weak, state=optuna.trial.TrialState.PRUNED)
    for _ in range(2):
        running_trial(study, [0.9, 0.95, 0.97, 0.99])
    # Among survivors alone, 0.96 would be below the median (0.99); with the pruned trials at their
    # last value the field's median is 0.80, so a survivor that is merely not the best goes on.
    assert not running_trial(study, [0.9, 0.95, 0.96, 0.96]).should_prune()
    ratchet = rung_study(ReportedMedianPruner(3, n_warmup_steps=1))
    for _ in range(3):
        running_trial(ratchet, [0.9, 0.95, 0.97, 0.99])
    assert running_trial(ratchet, [0.9, 0.95, 0.96, 0.96]).should_prune()


def test_default_rungs_follow_the_epoch_budget() -> None:
    assert default_rungs(15) == (3, 5, 10)
    assert default_rungs(2) == ()  # too short to judge anything
    assert all(1 < r < 30 for r in default_rungs(30))
