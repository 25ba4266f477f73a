"""Several real worker processes on one study: exact trial count, no duplicates, nothing left running;
a worker killed with SIGKILL mid-trial has its trial failed (heartbeat) and run again."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from urllib.parse import urlsplit

import pytest
from optuna.trial import TrialState

from mnist_arch.iterations import ITERATION_NAMES
from tests.search_procs import (
    distinct_configs,
    load_trials,
    postgres_url,
    run,
    running,
    search_cmd,
    start,
    trained,
    wait_for_training,
)

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop


def check_study(storage: str, study: str, n_trials: int) -> list:
    trials = load_trials(storage, study)
    done = trained(trials)
    assert len(done) == n_trials, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert not running(trials)
    assert sorted(t.user_attrs["baseline"] for t in done if "baseline" in t.user_attrs) == sorted(
        ITERATION_NAMES
    )
    assert distinct_configs(done) == n_trials  # no trial trained twice
    return trials


def test_three_workers_from_two_commands_share_postgres(data, space, tmp_path) -> None:  # noqa: ANN001
    """Like two machines: one command with 2 workers and one with 1, started together."""
    url = postgres_url()
    study = f"workers-{uuid.uuid4().hex[:8]}"
    cmd = search_cmd(url, data, study, 6, "--subset", "300", "--space", space)
    first = start([*cmd, "--workers", "2"], tmp_path)
    second = start([*cmd, "--workers", "1"], tmp_path)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    trials = check_study(url, study, 6)
    assert len({t.user_attrs["worker"] for t in trained(trials)}) >= 2
    password = urlsplit(url).password
    assert password and all(password not in output for output in outputs)
    assert "***@" in outputs[0]


def test_three_workers_on_local_sqlite(data, space, tmp_path) -> None:  # noqa: ANN001
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run(
        search_cmd(storage, data, "local", 6, "--subset", "300", "--space", space, "--workers", "3"), tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database is locked" not in result.stdout + result.stderr
    trials = check_study(storage, "local", 6)
    assert len({t.user_attrs["worker"] for t in trained(trials)}) >= 2
    with sqlite3.connect(tmp_path / "study.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sigkilled_worker_trial_is_failed_and_run_again(data, space, tmp_path) -> None:  # noqa: ANN001
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = search_cmd(storage, data, "kill", 4, "--subset", "300", "--space", space, "--workers", "2")
    process = start([*cmd, "--no-baselines"], tmp_path)
    victim = wait_for_training(storage, "kill", process)
    killed_at = time.time()
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert "was killed by SIGKILL" in output

    trials = load_trials(storage, "kill")
    assert len(trained(trials)) == 4 and not running(trials)
    lost = next(t for t in trials if t.number == victim.number)
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == "worker lost"
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == lost.params
    # heartbeat 1 s, grace 4 s: the retry starts within the grace period plus the time a worker
    # takes to finish the trial it is training
    assert retry.datetime_start.timestamp() - killed_at < 60
    expected = f"trial {victim.number} fail (worker lost), run again as trial {retry.number}"
    assert expected in " ".join(output.split())
