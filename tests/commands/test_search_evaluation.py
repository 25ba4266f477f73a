"""A search measures what it reads: validation where the pruner decides and at the end, test at the end;
--curves measures both after every epoch. The search tells the confirmation's cost before it starts and
evaluation's share of the time at the end."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.study.pruners import default_rungs
from tests.helpers import run_subprocess
from tests.search_procs import SMALL_SPACE

pytestmark = pytest.mark.slow

EPOCHS = 5


def searched(tmp_path, mnist_dir, trials: int, *extra: str) -> tuple[optuna.Study, str]:
    space = tmp_path / "space.toml"
    space.write_text(SMALL_SPACE)
    result = run_subprocess(
        "search", "--device", "cpu", "--subset", "300", "--epochs", str(EPOCHS), "--trials", str(trials),
        "--no-baselines", "--space", str(space), "--data", str(mnist_dir), "--seed", "3", *extra,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="mnist-arch", storage=f"sqlite:///{tmp_path}/mnist_arch.db")
    return study, result.stdout


def trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_a_search_measures_validation_at_the_rungs_and_test_at_the_end(tmp_path, mnist_dir) -> None:
    study, out = searched(tmp_path, mnist_dir, 4, "--confirm-top", "1", "--confirm-seeds", "1")
    decisions = set(default_rungs(EPOCHS)) | {EPOCHS}
    assert decisions == {2, 3, 5}
    for trial in trained(study):
        attrs = trial.user_attrs
        assert set(trial.intermediate_values) <= decisions
        assert [v is not None for v in attrs["val_curve"]] == [
            e in decisions for e in range(1, attrs["epochs_run"] + 1)
        ]
        assert all(v is None for v in attrs["test_curve"][:-1])
        if trial.state == TrialState.COMPLETE:
            assert attrs["test_curve"][-1] == attrs["test_acc"] and trial.value == attrs["val_acc"]
        else:  # stopped at a rung, before its test was measured
            assert "test_acc" not in attrs and trial.last_step in decisions
        assert attrs["eval_seconds"] > 0 and attrs["train_seconds"] > 0
    assert "then confirmation: top 1 x 1 seed: 1 run of 5 epochs" in " ".join(out.split())
    assert "; evaluation " in out and "% of the time" in out
    assert "confirmed winner" in out


def test_curves_measure_every_epoch(tmp_path, mnist_dir) -> None:
    study, _ = searched(tmp_path, mnist_dir, 2, "--curves", "--confirm-top", "0", "--pruner", "none")
    for trial in trained(study):
        assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))
        assert None not in trial.user_attrs["val_curve"] and None not in trial.user_attrs["test_curve"]
