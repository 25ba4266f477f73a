"""A tiny real search on MNIST, on the CPU: baselines, budget, pruning, resume, stored attributes."""

from __future__ import annotations

import json
import sqlite3

import optuna
import pytest
from optuna.trial import TrialState

from mnist_arch import ITERATION_NAMES, CandidateConfig, count_params
from tests.helpers import run_subprocess

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

# Seed confirmation has its own tests (test_confirm_winner.py); here it would only add minutes.
SEARCH = ("search", "--device", "cpu", "--subset", "500", "--epochs", "2", "--seed", "0")
SEARCH += ("--confirm-top", "0", "--pruner", "median")  # 2 epochs: too short for the default rungs


@pytest.fixture(scope="module")
def searched(tmp_path_factory, mnist_dir):
    """One study of 6 trained trials, then resumed to 7: (folder, first run, resumed run)."""
    folder = tmp_path_factory.mktemp("search")
    first = run_subprocess(
        *SEARCH, "--trials", "6", "--data", str(mnist_dir), cwd=folder, env={"COLUMNS": "200"}
    )
    assert first.returncode == 0, first.stderr
    study = optuna.load_study(study_name="mnist-arch", storage=f"sqlite:///{folder}/mnist_arch.db")
    snapshot = [(t.number, t.state, t.value) for t in study.get_trials()]
    resumed = run_subprocess(
        *SEARCH, "--trials", "7", "--data", str(mnist_dir), cwd=folder, env={"COLUMNS": "200"}
    )
    assert resumed.returncode == 0, resumed.stderr
    return folder, first, resumed, snapshot


def load(folder) -> optuna.Study:
    return optuna.load_study(study_name="mnist-arch", storage=f"sqlite:///{folder}/mnist_arch.db")


def trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.get_trials()
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "rejected" not in t.user_attrs
    ]


def test_search_trains_the_baselines_first_and_prunes(searched) -> None:
    folder, first, _, snapshot = searched
    study = load(folder)
    first_trials = [t for t in study.get_trials() if t.number <= max(n for n, _, _ in snapshot)]
    done = [
        t
        for t in first_trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "rejected" not in t.user_attrs
    ]
    assert len(done) == 6
    assert [t.user_attrs.get("baseline") for t in first_trials[:3]] == list(ITERATION_NAMES)
    assert any(t.state == TrialState.PRUNED for t in done), "the median rule pruned nothing"
    assert "iteration-3" in first.stdout and "top 5" in first.stdout


def test_every_trained_trial_fits_and_carries_its_attributes(searched) -> None:
    study = load(searched[0])
    for trial in trained(study):
        attrs = trial.user_attrs
        config = CandidateConfig.from_dict(attrs["config"])
        assert attrs["n_params"] == count_params(config.arch)
        if "baseline" not in attrs:
            assert attrs["n_params"] <= 8000
        assert 0.0 <= attrs["val_acc"] <= 1.0
        if trial.state == TrialState.COMPLETE:  # a pruned trial stops before its test is measured
            assert 0.0 <= attrs["test_acc"] <= 1.0
        else:
            assert "test_acc" not in attrs
        assert attrs["sec_per_epoch"] > 0
        assert len(attrs["val_curve"]) == attrs["epochs_run"]
        if trial.state == TrialState.COMPLETE:
            assert trial.value == attrs["val_acc"]  # the default objective is validation accuracy
    for trial in study.get_trials():
        if "rejected" in trial.user_attrs:
            assert trial.user_attrs["n_params"] > 8000 and "val_acc" not in trial.user_attrs
    assert study.metric_names == ["val_acc"]


def test_resume_adds_trials_to_the_same_study(searched) -> None:
    folder, _, resumed, snapshot = searched
    study = load(folder)
    assert len(trained(study)) == 7
    assert [(t.number, t.state, t.value) for t in study.get_trials()][: len(snapshot)] == snapshot
    baselines = [t for t in study.get_trials() if "baseline" in t.user_attrs]
    assert len(baselines) == 3  # not queued again on resume
    assert "6 trained trial(s), target 7" in resumed.stdout
    assert "(separate engine)" in " ".join(resumed.stdout.split())  # auto on the CPU


def test_test_objective_optimises_test_accuracy(tmp_path, mnist_dir) -> None:
    result = run_subprocess(
        "search",
        "--device",
        "cpu",
        "--subset",
        "300",
        "--epochs",
        "1",
        "--trials",
        "1",
        "--no-baselines",
        "--objective",
        "test",
        "--pruner",
        "none",
        "--data",
        str(mnist_dir),
        "--storage",
        f"sqlite:///{tmp_path}/t.db",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="mnist-arch", storage=f"sqlite:///{tmp_path}/t.db")
    (trial,) = trained(study)
    assert trial.value == trial.user_attrs["test_acc"]
    assert study.metric_names == ["test_acc"]
    assert "baseline" not in trial.user_attrs
    # Confirmed by default, sized to this one-epoch search (one model, one seed), chosen by validation even
    # here; no baselines, no reference.
    winner = study.user_attrs["winner"]
    assert (winner["trial"], winner["seeds"], winner["reference"]) == (trial.number, 1, None)
    assert "confirmed winner: trial" in result.stdout and "iteration-3" not in result.stdout


def test_study_stores_its_settings(searched) -> None:
    conn = sqlite3.connect(searched[0] / "mnist_arch.db")
    rows = dict(conn.execute("select key, value_json from study_user_attributes").fetchall())
    assert json.loads(rows["objective"]) == "val"
    assert json.loads(rows["max_params"]) == 8000
