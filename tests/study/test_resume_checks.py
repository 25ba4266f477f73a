"""Resuming a study: every setting it was created with is checked before anything is written to it."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import shutil
from pathlib import Path

import optuna
import pytest

from search.cli import build_parser, main
from search.run.pipeline import _search_in_worker
from search.run.settings import SearchSettings
from search.run.workers import _worker_main
from search.study.study import check_compatible, setting_mismatch
from tests.helpers import run_subprocess
from tests.search_procs import SMALL_SPACE

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

STUDY = "budgeted"


def search_args(folder: Path, data: Path, *extra: str) -> list[str]:
    return [
        *("search", "--device", "cpu", "--data", str(data), "--storage", f"sqlite:///{folder}/s.db"),
        *("--study", STUDY, "--space", str(folder / "small.toml"), "--max-params", "8000"),
        *("--subset", "200", "--epochs", "1", "--trials", "1", "--confirm-top", "0", "--no-baselines"),
        *extra,
    ]


@pytest.fixture(scope="module")
def created(tmp_path_factory, data) -> Path:
    """A study of one trained trial, created by a real process (so the SQLite file is closed)."""
    folder = tmp_path_factory.mktemp("resume")
    (folder / "small.toml").write_text(SMALL_SPACE)
    result = run_subprocess(*search_args(folder, data), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def n_trials(folder: Path) -> int:
    storage = f"sqlite:///{folder}/s.db"
    return len(optuna.load_study(study_name=STUDY, storage=storage).get_trials())


def refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ("--max-params", "20000"),
            "was created with --max-params 8000, this command runs with --max-params 20000; "
            "rerun with --max-params 8000, or choose another --study name to start a new study",
        ),
        (("--subset", "300"), "created with --subset 200, this command runs with --subset 300"),
        (("--epochs", "2"), "with --epochs 1, this command runs with --epochs 2; rerun with --epochs 1"),
        (("--objective", "test"), "created with --objective val, this command runs with --objective test"),
    ],
)
def test_a_resume_with_another_setting_is_refused_untouched(capsys, created, data, extra, expected) -> None:
    before, trials = (created / "s.db").read_bytes(), n_trials(created)
    err = refused(capsys, search_args(created, data, *extra))
    assert f"study '{STUDY}' " in err and expected in err
    assert (created / "s.db").read_bytes() == before
    assert n_trials(created) == trials


def test_the_same_space_by_another_path_resumes_and_another_space_is_refused(
    capsys, created, data, tmp_path
) -> None:
    """The space is compared by its content's digest, not by the path it was given by."""
    other = tmp_path / "other.toml"
    other.write_text(SMALL_SPACE)
    trials = n_trials(created)
    assert main(search_args(created, data, "--space", str(other))) == 0, capsys.readouterr().err
    assert n_trials(created) == trials  # its one trial is done: resumed, nothing to add
    before = (created / "s.db").read_bytes()
    small = str(created / "small.toml")
    default_space = [a for a in search_args(created, data) if a not in ("--space", small)]
    err = refused(capsys, default_space)
    assert "other search-space dimensions than --space gives now (compared by content" in err
    # The same file name with other dimensions in it: caught by the space's digest.
    edited = created / "small.toml"
    edited.write_text(SMALL_SPACE.replace("high = 10", "high = 12"))
    try:
        err = refused(capsys, search_args(created, data))
    finally:
        edited.write_text(SMALL_SPACE)
    assert "other search-space dimensions than --space gives now" in err
    assert (created / "s.db").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--pruner", "none"), "last ran with --pruner rungs, this command runs with --pruner none"),
        (("--seed", "7"), "last ran with --seed 0, this command runs with --seed 7"),
    ],
)
def test_another_pruner_or_seed_on_resume_is_a_warning(capsys, tmp_path, data, extra, expected) -> None:
    """Accepted (the stored trials stay valid, the new rule applies from here on), but said."""
    (tmp_path / "small.toml").write_text(SMALL_SPACE)
    assert main(search_args(tmp_path, data)) == 0
    capsys.readouterr()
    assert main(search_args(tmp_path, data, "--trials", "2", *extra)) == 0
    err = capsys.readouterr().err
    assert f"warning: study '{STUDY}' {expected}" in err, err
    assert main(search_args(tmp_path, data, "--trials", "2", *extra)) == 0  # the same again: no warning
    assert "warning" not in capsys.readouterr().err


def test_other_data_is_refused(capsys, created, data, tmp_path) -> None:
    """The same files with one test label changed (to another digit) are other data."""
    other = tmp_path / "other-data"
    shutil.copytree(data, other)
    labels = other / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    before = (created / "s.db").read_bytes()
    err = refused(capsys, search_args(created, other))
    assert f"study '{STUDY}' was created on other data: " in err and "rerun with --data" in err
    assert (created / "s.db").read_bytes() == before


def test_the_same_settings_resume(created, data) -> None:
    trials = n_trials(created)
    result = run_subprocess(*search_args(created, data, "--trials", str(trials + 1)), cwd=created)
    assert result.returncode == 0, result.stderr
    assert n_trials(created) == trials + 1


def test_a_study_that_stored_no_settings_is_resumed(capsys, tmp_path, data) -> None:
    """Studies made before the settings were stored: nothing to compare, so any settings are accepted."""
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name=STUDY, storage=url, direction="maximize").set_user_attr("objective", "val")
    (tmp_path / "small.toml").write_text(SMALL_SPACE)
    assert main(search_args(tmp_path, data, "--max-params", "20000")) == 0, capsys.readouterr().err
    assert n_trials(tmp_path) == 1


def test_a_new_key_is_compared_with_a_generic_message() -> None:
    message = setting_mismatch("s", "augment", "flip", "none")
    assert message == (
        "study 's' was created with augment = flip, this command runs with none; rerun with the "
        "study's augment, or choose another --study name to start a new study"
    )


def test_an_identity_is_compared_by_its_fingerprint(tmp_path) -> None:
    """The dataset is stored as an identity object and given as a fingerprint string."""
    study = optuna.create_study(study_name="x", storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    study.set_user_attr("dataset", {"name": "MNIST", "fingerprint": "abc", "counts": {"train": 60000}})
    check_compatible(study, {"dataset": "abc"})
    with pytest.raises(Exception, match=r"created on other data: MNIST \(abc\), this command's data: def"):
        check_compatible(study, {"dataset": "def"})


def test_a_worker_applies_the_same_check(capfd, created, data, tmp_path) -> None:
    """A worker process (as `--workers N` starts them) given other settings exits 2 and adds no trial."""
    args = build_parser().parse_args(search_args(created, data, "--max-params", "20000"))
    trials, before = n_trials(created), (created / "s.db").read_bytes()
    worker = multiprocessing.get_context("spawn").Process(
        target=_worker_main,
        args=(_search_in_worker, SearchSettings.from_args(args), 0, "cpu", 1, os.getpid()),
    )
    worker.start()
    worker.join(timeout=300)
    err = capfd.readouterr().err
    assert worker.exitcode == 2, err
    assert "was created with --max-params 8000, this command runs with --max-params 20000" in err
    assert n_trials(created) == trials and (created / "s.db").read_bytes() == before
