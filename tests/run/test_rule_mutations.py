"""Tests aimed at rules that the other tests let through when broken: each one fails for the mutation it
names (checked by applying the mutation by hand)."""

from __future__ import annotations

import random

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from mnist_arch.config import ArchConfig
from mnist_arch.model import count_params
from search.results.confirmations import PREFIX, Confirmation
from search.results.winner import choose_winner
from search.run.scheduler import _claim
from space.budget import check_budget
from space.space import SearchSpace, _structure_of, build_arch


def _trial(number: int) -> optuna.trial.FrozenTrial:
    made = create_trial(value=0.5, user_attrs={"n_params": 1000 + number})
    made.number = number
    return made


def test_the_winner_is_the_mean_over_seeds_not_one_seed() -> None:
    """Mutations caught: choosing by seed 0's validation accuracy, or by the best single seed."""
    lucky_first_seed = Confirmation((0.90, 0.90, 0.90), (0.995, 0.80, 0.81))  # val mean 0.868
    steady = Confirmation((0.90, 0.90, 0.90), (0.95, 0.95, 0.95))  # val mean 0.95
    winner = choose_winner([(_trial(1), lucky_first_seed), (_trial(2), steady)], None, epochs=1, subset=None)
    assert winner.trial == 2
    assert winner.val_mean == pytest.approx(0.95)


# ---- the budget: a model at exactly max_params fits, one parameter more does not -----------------------


def test_the_plain_budget_check_admits_exactly_max_params() -> None:
    """Mutation caught: `n_params <= max_params + 1` (no other test has a model at exactly the budget)."""
    arch = ArchConfig()
    n = count_params(arch)
    assert check_budget(arch, n).fits
    assert not check_budget(arch, n - 1).fits


def test_budget_fill_draws_admit_exactly_max_params() -> None:
    """width_options lists the widths of a conv whose model fits (later widths at their lows): a width whose
    model has exactly max_params parameters is in, with one parameter less in the budget it is out.
    Mutation caught: `count_params(...) <= self.max_params + 1` in the fill's width list."""
    space = SearchSpace.load(None, max_params=100_000, epochs=1)
    arch = space.random_config(random.Random(0)).arch
    structure = _structure_of(arch)
    counts = [len(stage.widths) for stage in arch.stages]
    position = (len(counts), counts[-1])  # the last conv: no later widths
    chosen = {(n, i): w for n, stage in enumerate(arch.stages, 1) for i, w in enumerate(stage.widths, 1)}
    del chosen[position]
    widths = space.width_options(structure, counts, chosen, position)
    assert len(widths) > 2
    width = widths[len(widths) // 2]
    exact = count_params(build_arch(structure, space._assemble(counts, {**chosen, position: width})))
    assert (
        max(space.with_budget(max_params=exact).width_options(structure, counts, chosen, position)) == width
    )
    assert (
        max(space.with_budget(max_params=exact - 1).width_options(structure, counts, chosen, position))
        < width
    )


# ---- the re-check after a racing worker's ask ------------------------------------------------------------


def test_a_trial_asked_when_a_racing_worker_filled_the_study_is_given_back(tmp_path) -> None:
    """Two workers both saw room for the last trial and asked. Mutation caught: a re-check that keeps the
    second trial (`<= n_trials + 1`, or no re-check): the study would train one trial more than asked."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    study.add_trial(create_trial(value=0.5))  # one trained
    racing = study.ask()  # another worker's running trial
    ours = study.ask()
    assert not _claim(study, ours, n_trials=2)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[ours.number] == TrialState.WAITING  # back in the queue, untrained
    assert states[racing.number] == TrialState.RUNNING
    again = study.ask()  # the queued trial is the next one asked
    assert again.number == ours.number
    assert _claim(study, again, n_trials=3)  # with room for it, it is kept


# ---- confirmation stores validation and test accuracy each in its place ----------------------------------


@pytest.fixture(scope="module")
def val_test_apart(tmp_path_factory, mnist_dir):
    """Real MNIST training images, and a test split whose labels are all wrong: a trained model scores well
    on validation and near zero on test, so the two accuracies differ clearly."""
    from mnist_arch.data import _read_all, load_mnist
    from tests.mnist_arch.test_data import write_all

    train_x, train_y, test_x, test_y = _read_all(mnist_dir)
    n_train = 5000 + 2000
    wrong = (test_y[:1000] + 1) % 10  # every test label wrong: a model that learned scores ~0 on test
    folder = write_all(
        tmp_path_factory.mktemp("apart"), [train_x[:n_train], train_y[:n_train], test_x[:1000], wrong]
    )
    return load_mnist(folder)


def test_confirmation_stores_validation_accuracy_as_validation(val_test_apart, tmp_path) -> None:
    """Mutation caught: confirmation storing the test accuracy as the validation accuracy (the integration
    study's candidates are all near chance, where the two agree)."""
    from mnist_arch.iterations import get_iteration
    from mnist_arch.trainer import DeviceData
    from search.results.confirmations import ConfirmJob
    from search.run.confirmation import confirm

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'c.db'}", direction="maximize")
    data = DeviceData.from_mnist(val_test_apart, torch.device("cpu"))
    job = ConfirmJob("iteration-3", get_iteration("iteration-3").config)
    found = confirm(study, [job], data, seeds=1, epochs=1, subset=None)["iteration-3"]
    assert found.val_mean > 0.6, found  # learned the training set's digits
    assert found.mean < 0.3, found  # every test label is wrong
    stored = next(v for k, v in study.user_attrs.items() if k.startswith(PREFIX))["runs"]["0"]
    assert stored["val_acc"] == pytest.approx(found.val_mean) and stored["test_acc"] == pytest.approx(
        found.mean
    )
