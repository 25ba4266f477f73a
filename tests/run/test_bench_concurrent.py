"""`mnist-arch bench --concurrency/--fused`: levels timed in one run, one row per level in BENCHMARKS.md."""

from __future__ import annotations

from tests.helpers import REPO  # isort: skip

import os
import subprocess
import sys

import pytest

from search.run.benchmark import BenchResult, ConcurrentLevel, append_markdown
from tests.helpers import skip_outside_ci


def test_bench_concurrent_mode_on_a_tiny_subset(tmp_path) -> None:
    folder = os.environ.get("MNIST_ARCH_DATA")
    if not folder:
        skip_outside_ci("set MNIST_ARCH_DATA to a folder with the MNIST IDX files to run this test")
    out = tmp_path / "BENCHMARKS.md"
    args = ["bench", "--device", "cpu", "--data", folder, "--subset", "256", "--epochs", "1"]
    args += ["--concurrency", "1,2", "--fused", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "search.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("speedup vs seed pipeline: ") and lines[-1].endswith("x")
    assert any(line.startswith("1 trial(s) in flight: ") for line in lines)
    assert any(line.startswith("2 trial(s) in flight: ") for line in lines)
    text = out.read_text()
    concurrent = text.split("## Concurrent trials", 1)[1].split("## Fused trials")[0]
    rows = [line for line in concurrent.splitlines() if line.startswith("| 20")]
    assert [row.split("|")[6].strip() for row in rows] == ["1", "2"]
    assert rows[0].split("|")[8].strip() == "1.00x"
    assert any(line.startswith("2 trial(s) fused: ") for line in lines)
    fused = [line for line in text.split("## Fused trials", 1)[1].splitlines() if line.startswith("| 20")]
    assert len(fused) == 1 and fused[0].split("|")[6].strip() == "2"
    fused_rate, single_rate = float(fused[0].split("|")[7]), float(rows[0].split("|")[7])
    ratio = float(fused[0].split("|")[8].strip().rstrip("x"))
    assert ratio == pytest.approx(fused_rate / single_rate, rel=0.02, abs=0.01)  # rates print 3 digits


def test_rows_land_in_their_own_tables(tmp_path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    result = BenchResult("Test CPU", 256, 1, 2.0, 1.0, False, [ConcurrentLevel(1, 1.0, None)])
    append_markdown(result, out)
    result.levels = [ConcurrentLevel(1, 1.0, None), ConcurrentLevel(4, 3.0, 64 << 20)]
    append_markdown(result, out)
    single, concurrent = out.read_text().split("## Concurrent trials")
    assert single.count("| Test CPU |") == 2
    rows = [line for line in concurrent.splitlines() if "| Test CPU |" in line]
    assert len(rows) == 3 and rows[-1].endswith("| 4 | 3 | 3.00x | 64 |")
