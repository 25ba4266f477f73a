"""What a person reads: tables in 80 columns, progress in a pipe, wall time named as such, dashboard notes."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState
from optuna_dashboard import get_note
from rich.console import Console

from mnist_arch.config import ArchConfig
from mnist_arch.trainer import EpochStats, TrainResult
from search.commands.progress import SearchProgress
from search.results.report import report_rows, rich_table
from search.results.speed import in_flight, throughput
from search.results.table import result_rows, result_table
from search.results.tables import arch_notation
from search.run.trial import headline
from search.study.trials import is_trained
from tests.helpers import REPO
from tests.results_study import mnist_dir, run_cli, small_study  # noqa: F401

ROW_START = re.compile(r"^│ (trial \d+|iteration-\d)\b")


def rendered(renderable: object, width: int = 80) -> list[str]:
    buffer = io.StringIO()
    Console(width=width, file=buffer).print(renderable)
    return buffer.getvalue().splitlines()


def assert_fits(lines: list[str], names: list[str], width: int = 80) -> None:
    """No line of the table wider than `width`; each named row on exactly one line, no line continuing it.
    (Piped, the caption and the lines after the table are single unbroken log lines, by design.)"""
    table = [line for line in lines if line[:1] in "┌│├└"]
    assert table and max(len(line.rstrip()) for line in table) <= width, "\n".join(lines)
    starts = [i for i, line in enumerate(lines) if ROW_START.match(line)]
    assert sorted(ROW_START.match(lines[i]).group(1) for i in starts) == sorted(names), "\n".join(lines)
    for i in starts:  # a folded row continues on a line that starts with blanks under the model column
        follower = lines[i + 1] if i + 1 < len(lines) else ""
        assert ROW_START.match(follower) or not follower.startswith("│" + " " * 12), "\n".join(lines)


def test_arch_notation_is_short_and_complete():
    assert arch_notation(ArchConfig()) == "8×3 P 12×5 P"
    assert arch_notation(ArchConfig.two_blocks(transition=True)) == "8×3 P T 12×5 P"
    wide = ArchConfig.two_blocks(block1=(6, 10), block2=(12, 14, 16), pool_before_gap=False)
    assert arch_notation(wide) == "6-10 P 12-14-16"


def test_the_tables_fit_80_columns_one_line_per_row(small_study):  # noqa: F811
    study = small_study.load()
    names = [row.name for row in result_rows(study)]
    assert_fits(rendered(result_table(study)), names)
    rows = report_rows(study, 5)
    assert_fits(rendered(rich_table(study, rows)), [row.name for row in rows])
    # --wide keeps every column: the long architecture and the wall time per epoch
    wide = "\n".join(rendered(result_table(study, wide=True), width=200))
    assert "wall s/ep" in wide and "| MP |" in wide and "in flight" in wide
    wide = "\n".join(rendered(rich_table(study, rows, wide=True), width=200))
    assert "wall s/epoch" in wide and "RF" in wide and "| MP |" in wide


def test_a_piped_report_with_confirmed_seeds_fits_80_columns(small_study, tmp_path, monkeypatch):  # noqa: F811
    """The widest table a report prints (seed means ± std), as a pipe sees it: rich's 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")
    db = tmp_path / "copy.db"
    with sqlite3.connect(small_study.folder / "study.db") as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # WAL included; the shared study stays unconfirmed
    args = ["report", "--storage", f"sqlite:///{db}", "--study", small_study.name, "--top", "2"]
    args += ["--confirm-seeds", "1", "--epochs", "1", "--subset", "300", "--device", "cpu"]
    result = run_cli(*args, "--data", mnist_dir(), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("study ")) :]
    names = [match.group(1) for line in table if (match := ROW_START.match(line))]
    assert len(names) == 5 and "1 seeds" in result.stdout, result.stdout
    assert_fits(table, names)
    wide = run_cli(*args, "--data", mnist_dir(), "--out", str(tmp_path / "wide"), "--wide")
    assert wide.returncode == 0 and "test mean ± std (1 seeds)" in wide.stdout and "test min" in wide.stdout


def _piped_search(data, space, tmp_path) -> tuple[list[tuple[float, str, int | None]], int]:  # noqa: ANN001
    """`mnist-arch search` with stdout a pipe: each line with the time it arrived and whether the process
    was still running then."""
    command = [sys.executable, "-m", "search.cli", "search", "--storage", f"sqlite:///{tmp_path}/s.db"]
    command += ["--subset", "400", "--epochs", "1", "--trials", "2", "--no-baselines"]
    command += ["--confirm-top", "1", "--confirm-seeds", "2"]
    command += ["--data", str(data), "--space", space, "--device", "cpu"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    start, lines = time.monotonic(), []
    for line in process.stdout:
        lines.append((time.monotonic() - start, line.rstrip("\n"), process.poll()))
    return lines, process.wait(timeout=120)


def test_a_piped_search_prints_progress_lines_as_it_goes(data, space, tmp_path):
    lines, code = _piped_search(data, space, tmp_path)
    text = "\n".join(line for _, line, _ in lines)
    assert code == 0, text
    progress = [
        (t, line, running) for t, line, running in lines if re.match(r"\[\d+:\d\d:\d\d\] \d+/2 ", line)
    ]
    assert progress[0][1].startswith("[0:00:00] 0/2 trials | started") and progress[0][2] is None
    done = [
        line for _, line, _ in progress if re.search(r"\| trial \d+ \(searched\) (complete|pruned)", line)
    ]
    assert [line.split(" | ")[0][-12:] for line in done] == ["] 1/2 trials", "] 2/2 trials"], text
    assert all("wall s/epoch" in line and " | best " in line for line in done)
    assert "━" not in text  # no bar drawn for a pipe, in the search or in its confirmation
    confirmation = [line for _, line, _ in lines if re.match(r"\[\d+:\d\d:\d\d\] confirmation ", line)]
    assert [line.split(" | ")[0].split("] ", 1)[1] for line in confirmation] == [
        "confirmation 0/2 runs",
        "confirmation 1/2 runs",
        "confirmation 2/2 runs",
    ], text
    table = [line for line in text.splitlines() if line[:1] in "┌│├└"]
    assert table and all(len(line) <= 80 for line in table), text  # a pipe's tables fit 80 columns


def test_plain_progress_prints_while_a_trial_trains():
    buffer = io.StringIO()
    console = Console(file=buffer, width=80)
    with SearchProgress(console, n_trials=5, done=2, epochs=15, key="val_acc", live=False, interval=0.2):
        time.sleep(0.9)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("[0:00:00] 2/5 trials | started")
    ticks = [line for line in lines[1:] if "waiting for the first epoch | best: none yet" in line]
    assert len(ticks) >= 2, lines


def _timed(number: int, start: float, stop: float, epochs: int) -> FrozenTrial:
    zero = datetime(2026, 1, 1)
    return FrozenTrial(
        number=number,
        state=TrialState.COMPLETE,
        value=0.9,
        values=None,
        datetime_start=zero + timedelta(seconds=start),
        datetime_complete=zero + timedelta(seconds=stop),
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={"epochs_run": epochs},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def test_throughput_counts_wall_time_with_a_trial_training_once():
    # trials 0 and 1 overlap on [5, 10]; trial 2 runs alone after a 10 s gap that does not count
    trials = [_timed(0, 0, 10, 4), _timed(1, 5, 15, 4), _timed(2, 25, 30, 2)]
    assert in_flight(trials) == {0: 2, 1: 2, 2: 1}
    speed = throughput(trials)
    assert (speed.model_epochs, speed.busy_seconds, speed.max_in_flight) == (10, 20.0, 2)
    assert speed.per_second == 0.5
    assert in_flight([_timed(0, 0, 5, 1), _timed(1, 5, 9, 1)]) == {0: 1, 1: 1}  # back to back, not together
    assert throughput([]) is None


def test_every_trained_trial_has_a_dashboard_headline(small_study):  # noqa: F811
    """The first line of each note names baseline or searched and the key figures, read back from storage."""
    study = small_study.load()
    trained = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert any("baseline" in t.user_attrs for t in trained) and any(
        "baseline" not in t.user_attrs for t in trained
    )
    for trial in trained:
        attrs = trial.user_attrs
        role = f"baseline {attrs['baseline']}" if "baseline" in attrs else "searched"
        assert attrs["role"] == ("baseline" if "baseline" in attrs else "searched")
        first = get_note(optuna.Trial(study, trial._trial_id)).splitlines()[0]
        epochs = attrs["epochs_run"]
        assert first == (
            f"**{role}** · {attrs['n_params']:,} params · val {100 * attrs['val_acc']:.2f} % · "
            f"test {100 * attrs['test_acc']:.2f} % · {epochs} epoch{'' if epochs == 1 else 's'}"
        )


def test_report_names_wall_time_and_the_throughput(small_study, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    result = run_cli("report", "--storage", small_study.url, "--study", small_study.name, "--out", str(out))
    assert result.returncode == 0, result.stderr
    md = (out / "report.md").read_text()
    assert "| wall s/epoch |" in md and "not the model's own speed" in md
    match = re.search(
        r"throughput: (\d+) model-epochs in ([\d,]+) s of training: ([\d.]+) model-epochs/s", md
    )
    study = small_study.load()
    trained = [t for t in study.get_trials() if is_trained(t)]
    assert match and int(match.group(1)) == sum(t.user_attrs["epochs_run"] for t in trained)


def test_a_pruned_trial_headline_says_where_it_stopped():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("n_params", 6203)
    history = [EpochStats(e, 0.04, 0.3, 0.95 + e / 1000, 0.96 + e / 1000, 1.0) for e in (1, 2, 3)]
    line = headline(trial, 15, TrainResult(history, stopped_early=True))
    assert line == "**searched** · 6,203 params · val 95.30 % · test 96.30 % · pruned after epoch 3 of 15"
