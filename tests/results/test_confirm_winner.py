"""The confirmed winner: a search ends by retraining its top trials with several seeds and picks the best
mean validation accuracy; the winner is stored once, reused, exported and reported."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note

from search.export.config_file import load_config_file
from search.results.confirmations import PREFIX, Confirmation, attr_key
from search.results.table import top_trials
from search.results.winner import WINNER_ATTR, choose_winner, confirmed_winner
from tests.results_study import Result, assert_usage_error, run_cli
from tests.search_procs import SMALL_SPACE

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

STUDY = "confirmed"
SUBSET, EPOCHS, TOP, SEEDS = 600, 1, 2, 2
WINNER_KEYS = {
    "trial", "label", "n_params", "seeds", "epochs", "subset", "val_mean", "val_std", "test_mean",
    "test_std", "candidates", "reference",
}  # fmt: skip


@dataclass(frozen=True)
class Searched:
    url: str
    folder: Path
    data: Path
    first: Result
    second: Result
    stored_after_first: dict

    def load(self, name: str = STUDY) -> optuna.Study:
        return optuna.load_study(study_name=name, storage=self.url)


def search_args(url: str, data: Path, space: Path, *extra: str) -> list[str]:
    return [
        *("search", "--storage", url, "--device", "cpu", "--data", str(data), "--space", str(space)),
        *("--subset", str(SUBSET), "--epochs", str(EPOCHS), "--pruner", "none", "--seed", "0", *extra),
    ]


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory) -> Searched:
    """3 baselines + 2 searched trials, top 2 and iteration-3 confirmed with 2 seeds; then the same again."""
    folder = tmp_path_factory.mktemp("winner")
    space = folder / "small.toml"
    space.write_text(SMALL_SPACE)
    url = f"sqlite:///{folder / 'study.db'}"
    args = search_args(url, data, space, "--study", STUDY, "--trials", "5")
    args += ["--confirm-top", str(TOP), "--confirm-seeds", str(SEEDS)]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr + first.stdout
    study = optuna.load_study(study_name=STUDY, storage=url)
    stored = {k: v for k, v in study.user_attrs.items() if k.startswith(PREFIX) or k == WINNER_ATTR}
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr + second.stdout
    return Searched(url, folder, data, first, second, stored)


def stored_means(study: optuna.Study, label: str) -> dict[str, float]:
    """Recomputed from the stored runs alone."""
    runs = study.user_attrs[attr_key(label, EPOCHS, SUBSET)]["runs"]
    assert sorted(runs) == [str(seed) for seed in range(SEEDS)]
    vals = [runs[str(seed)]["val_acc"] for seed in range(SEEDS)]
    tests = [runs[str(seed)]["test_acc"] for seed in range(SEEDS)]
    return {
        "val_mean": sum(vals) / len(vals),
        "val_std": statistics.stdev(vals),
        "test_mean": sum(tests) / len(tests),
        "test_std": statistics.stdev(tests),
    }


def test_the_winner_is_the_best_mean_validation_accuracy_of_the_stored_runs(searched) -> None:
    study = searched.load()
    winner = study.user_attrs[WINNER_ATTR]
    assert set(winner) == WINNER_KEYS
    candidates = [f"trial-{t.number}" for t in top_trials(study, TOP)]
    assert winner["candidates"] == candidates and len(candidates) == TOP
    means = {label: stored_means(study, label) for label in candidates}
    best = max(candidates, key=lambda label: means[label]["val_mean"])
    assert winner["label"] == best and winner["trial"] == int(best.split("-")[1])
    for key, value in means[best].items():
        assert winner[key] == pytest.approx(value, abs=1e-12), key
    assert winner["val_mean"] == pytest.approx(max(m["val_mean"] for m in means.values()), abs=1e-12)
    trial = study.trials[winner["trial"]]
    assert trial.state == TrialState.COMPLETE and "baseline" not in trial.user_attrs
    assert winner["n_params"] == trial.user_attrs["n_params"]
    assert (winner["seeds"], winner["epochs"], winner["subset"]) == (SEEDS, EPOCHS, SUBSET)
    reference = winner["reference"]
    assert reference["label"] == "iteration-3"
    for key, value in stored_means(study, "iteration-3").items():
        assert reference[key] == pytest.approx(value, abs=1e-12), key
    assert confirmed_winner(study).to_json() == winner

    out = searched.first.stdout
    assert f"confirmed winner: trial {winner['trial']} ({winner['n_params']:,} params) val " in out
    assert f"over {SEEDS} seeds; iteration-3 val " in out
    assert any(line.startswith(f"│ trial {winner['trial']} ★") for line in out.splitlines())
    assert sum("★" in line for line in out.splitlines() if line.startswith("│")) == 1


def test_the_dashboard_notes_name_the_winner(searched) -> None:
    study = searched.load()
    number = study.user_attrs[WINNER_ATTR]["trial"]
    assert get_note(study).startswith(f"**Confirmed winner: trial {number}**")
    note = get_note(optuna.Trial(study, study.trials[number]._trial_id))
    assert note.startswith("**Confirmed winner of the study**") and "mean ± std over 2 seeds" in note
    assert "Total params" in note  # the layer table written during the search is kept


def test_a_repeated_search_retrains_nothing(searched) -> None:
    assert "every run is stored, nothing to train" in searched.second.stdout
    assert "confirming" not in searched.second.stdout
    study = searched.load()
    now = {k: v for k, v in study.user_attrs.items() if k.startswith(PREFIX) or k == WINNER_ATTR}
    assert now == searched.stored_after_first
    assert len([k for k in now if k.startswith(PREFIX)]) == TOP + 1  # the candidates and iteration-3


def test_export_best_exports_the_confirmed_winner(searched, tmp_path) -> None:
    study = searched.load()
    winner = study.user_attrs[WINNER_ATTR]
    result = run_cli("export", "--storage", searched.url, "--study", STUDY, "--out", str(tmp_path / "best"))
    assert result.returncode == 0, result.stderr
    assert f"exported trial {winner['trial']} " in result.stdout
    assert "confirmed winner: trial" in result.stdout
    data = json.loads((tmp_path / "best" / "config.json").read_text())
    assert data["trained"]["source"] == f"study '{STUDY}' trial {winner['trial']}"
    confirmation = data["accuracies"]["confirmation"]
    assert confirmation == {
        **{key: winner[key] for key in ("seeds", "epochs", "subset", "val_mean", "val_std")},
        **{key: winner[key] for key in ("test_mean", "test_std")},
        "winner": True,
    }
    # The other candidate exports its own confirmation; `train --config` and `evaluate` read the file.
    other = next(int(c.split("-")[1]) for c in winner["candidates"] if c != winner["label"])
    args = ("export", "--storage", searched.url, "--study", STUDY, "--trial", str(other))
    assert run_cli(*args, "--out", str(tmp_path / "other")).returncode == 0
    loaded = load_config_file(tmp_path / "other" / "config.json")
    assert loaded.confirmation["winner"] is False
    assert loaded.confirmation["val_mean"] <= winner["val_mean"]
    assert loaded.accuracies["test_acc"] == study.trials[other].user_attrs["test_acc"]


def test_the_report_states_the_confirmed_winner(searched, tmp_path) -> None:
    winner = searched.load().user_attrs[WINNER_ATTR]
    result = run_cli("report", "--storage", searched.url, "--study", STUDY, "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"- confirmed winner ★: trial {winner['trial']} ({winner['n_params']:,} params) val " in md
    val = f"{100 * winner['val_mean']:.2f} ± {100 * winner['val_std']:.2f}%"
    test = f"{100 * winner['test_mean']:.2f} ± {100 * winner['test_std']:.2f}%"
    row = next(line for line in md.splitlines() if line.startswith(f"| trial {winner['trial']} ★ |"))
    assert f"| {val} | {test} |" in row
    assert "val mean ± std (2 seeds) | test mean ± std (2 seeds)" in md


def test_confirm_top_0_and_an_empty_search_leave_no_winner(searched, tmp_path) -> None:
    space = searched.folder / "small.toml"
    # A timeout that ends the search before its first trial: confirmation says so and skips.
    empty = run_cli(*search_args(searched.url, searched.data, space, "--study", "empty", "--timeout", "1e-9"))
    assert empty.returncode == 0, empty.stderr
    assert "confirmation skipped: the study has no complete searched trial" in empty.stdout
    off = search_args(searched.url, searched.data, space, "--study", "off", "--trials", "1")
    result = run_cli(*off, "--no-baselines", "--confirm-top", "0")
    assert result.returncode == 0, result.stderr
    for name in ("empty", "off"):
        attrs = searched.load(name).user_attrs
        assert WINNER_ATTR not in attrs and not any(k.startswith(PREFIX) for k in attrs)
    assert "confirm" not in result.stdout
    exported = run_cli("export", "--storage", searched.url, "--study", "off", "--out", str(tmp_path / "x"))
    assert exported.returncode == 0, exported.stderr
    assert "trial 0 is unconfirmed" in exported.stdout
    assert "confirmation" not in json.loads((tmp_path / "x" / "config.json").read_text())["accuracies"]


def test_validation_chooses_never_test() -> None:
    def trial(number: int) -> optuna.trial.FrozenTrial:
        made = create_trial(value=0.5, user_attrs={"n_params": 1000 + number})
        made.number = number
        return made

    lucky_on_test = Confirmation((0.999, 0.998), (0.90, 0.91))
    steady = Confirmation((0.95, 0.95), (0.93, 0.93))
    tied = Confirmation((0.99, 0.99), (0.93, 0.93))
    winner = choose_winner(
        [(trial(3), lucky_on_test), (trial(5), steady), (trial(8), tied)], None, epochs=2, subset=None
    )
    assert (winner.trial, winner.label, winner.n_params) == (5, "trial-5", 1005)  # the earlier of a tie
    assert winner.val_mean == pytest.approx(0.93) and winner.test_mean == pytest.approx(0.95)
    assert winner.candidates == ("trial-3", "trial-5", "trial-8") and winner.reference is None
    assert winner.to_json()["reference"] is None


@pytest.mark.parametrize(("flag", "bad"), [("--confirm-top", "-1"), ("--confirm-seeds", "0")])
def test_search_refuses_bad_confirmation_flags(flag, bad) -> None:
    assert_usage_error(run_cli("search", flag, bad), flag)
