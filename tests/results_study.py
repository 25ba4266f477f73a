"""One small real study shared by the report, export and dashboard tests (built once per session)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from search import cli
from tests.conftest import skip_outside_ci

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


def mnist_dir() -> str:
    folder = os.environ.get("MNIST_ARCH_DATA")
    if not folder or not Path(folder).is_dir():
        skip_outside_ci("MNIST_ARCH_DATA does not point to the MNIST IDX files")
    return folder


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Result:
    """`mnist-arch ARGS` in this process (a subprocess would pay seconds of imports per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as stop:  # argparse's own errors
            code = stop.code if isinstance(stop.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m search.cli ARGS` as a user runs it, with this checkout first on the path."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_usage_error(result: Result | subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 with exactly one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0] and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


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
