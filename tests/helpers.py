"""Helpers shared by the tests: the checkout's root, and `mnist-arch` run in this process or as a process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def skip_outside_ci(reason: str) -> None:
    """Skip for a missing part (data, a service, an optional package); in CI (CI set, as .ci/run does)
    the part must be there, so the test fails instead of passing unseen."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


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
    from search import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as stop:  # argparse's own errors
            code = stop.code if isinstance(stop.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`python -m search.cli ARGS` as a user runs it, a real process with this checkout first on the path."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_usage_error(result: Result | subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 with exactly one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0] and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
