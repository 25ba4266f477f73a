"""One small real study shared by the report, export and dashboard tests (built once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from tests.helpers import Result, assert_usage_error, mnist_dir, run_cli, run_subprocess  # noqa: F401

STUDY = "results-small"
SUBSET = 400  # training images per trial: enough for a few steps of batch 128


@dataclass(frozen=True)
class SmallStudy:
    url: str
    name: str
    folder: Path

    def load(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.url)


_built: dict[str, SmallStudy] = {}


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> SmallStudy:
    """The three iterations and a few searched trials, 1 epoch on 400 images, with artifacts, no winner."""
    data = mnist_dir()
    if "study" not in _built:  # a module-level cache: each test module imports this fixture
        folder = tmp_path_factory.mktemp("results-study")
        url = f"sqlite:///{folder / 'study.db'}"
        result = run_cli(
            *("search", "--storage", url, "--study", STUDY, "--trials", "5", "--epochs", "1"),
            *("--pruner", "none", "--subset", str(SUBSET), "--data", data, "--device", "cpu"),
            *("--confirm-top", "0"),  # unconfirmed: test_confirm_winner covers the confirmed winner
        )
        assert result.returncode == 0, result.stderr
        _built["study"] = SmallStudy(url, STUDY, folder)
    return _built["study"]
