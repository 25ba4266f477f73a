"""Unhappy paths: SIGINT/SIGTERM, a diverging config, an out-of-memory trial, bad input, masked passwords."""

from __future__ import annotations

import os
import signal
from urllib.parse import urlsplit, urlunsplit

import pytest
from optuna.trial import TrialState

from search.cli import main
from tests.search_procs import (
    load_trials,
    postgres_url,
    run,
    running,
    search_cmd,
    small_space,
    start,
    trained,
    wait_for_training,
)

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop


def test_sigint_marks_running_trials_interrupted_and_rerun_resumes(data, space, tmp_path) -> None:  # noqa: ANN001
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = search_cmd(storage, data, "int", 4, "--subset", "300", "--space", space, "--no-baselines")
    process = start([*cmd, "--workers", "2"], tmp_path)
    wait_for_training(storage, "int", process)
    process.send_signal(signal.SIGINT)  # to the parent only: it forwards the signal to its workers
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "Run the same command again to resume" in flat(output)  # rich wraps at 80 columns
    trials = load_trials(storage, "int")
    assert not running(trials)
    interrupted = [t for t in trials if t.user_attrs.get("fail_reason") == "interrupted"]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)

    resumed = run([*cmd, "--workers", "2"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = load_trials(storage, "int")
    assert len(trained(trials)) == 4 and not running(trials)


def test_sigterm_exits_143_with_the_trial_marked_interrupted(data, space, tmp_path) -> None:  # noqa: ANN001
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = search_cmd(storage, data, "term", 3, "--subset", "300", "--space", space, "--no-baselines")
    process = start(cmd, tmp_path)
    trial = wait_for_training(storage, "term", process)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 143, output
    trials = load_trials(storage, "term")
    assert not running(trials)
    stopped = next(t for t in trials if t.number == trial.number)
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["fail_reason"] == "interrupted"


def test_diverged_trials_do_not_stop_the_search(data, tmp_path) -> None:  # noqa: ANN001
    """A huge learning rate diverges every trial (pruned, counted); the search still ends with 3 trained
    trials. (Out of memory at every concurrency: tests/run/test_scheduler.py.)"""
    space = tmp_path / "diverge.toml"
    space.write_text(small_space(optimizer={"lr": "10.0", "momentum": "0.99", "batch_size": "64"}))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = search_cmd(storage, data, "bad", 3, "--space", str(space), "--no-baselines")
    result = run(cmd, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(storage, "bad")
    reasons = {t.number: (t.state, t.user_attrs.get("fail_reason")) for t in trials}
    assert len(trained(trials)) == 3 and len(trials) == 3 and not running(trials)
    assert all(reasons[t.number] == (TrialState.PRUNED, "diverged") for t in trained(trials))
    assert all(t.user_attrs["worker"] for t in trials)
    assert "trial 0 pruned (diverged)" in flat(result.stdout)


def flat(text: str) -> str:
    return " ".join(text.split())


def bad_input(capsys, *argv: str) -> str:  # noqa: ANN001
    try:
        code = main(["search", "--trials", "1", "--subset", "300", "--device", "cpu", *argv])
    except SystemExit as exit:  # argparse
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mnist-arch search: error: ") and err.count("\n") == 1, err
    return err


def test_bad_worker_counts(capsys) -> None:  # noqa: ANN001
    assert "--workers" in bad_input(capsys, "--workers", "0")
    assert "pins 2 device(s)" in bad_input(capsys, "--workers", "3", "--device", "cuda:0,cuda:1")


def test_unknown_storage_scheme(capsys, data) -> None:  # noqa: ANN001
    assert "is not a storage URL" in bad_input(capsys, "--data", str(data), "--storage", "redis://h/0")


def test_unreachable_database_masks_the_password(capsys, data) -> None:  # noqa: ANN001
    url = "postgresql://someone:hunter2secret@127.0.0.1:9/db"  # port 9 (discard): nothing listens
    err = bad_input(capsys, "--data", str(data), "--storage", url)
    assert "cannot open storage" in err and "hunter2secret" not in err and "someone:***@" in err


def test_wrong_password_is_one_masked_line(capsys, data) -> None:  # noqa: ANN001
    parts = urlsplit(postgres_url())
    wrong = "not-the-password-" + os.urandom(4).hex()
    netloc = f"{parts.username}:{wrong}@{parts.hostname}:{parts.port}"
    err = bad_input(capsys, "--data", str(data), "--storage", urlunsplit(parts._replace(netloc=netloc)))
    assert "password authentication failed" in err and wrong not in err and "***@" in err
