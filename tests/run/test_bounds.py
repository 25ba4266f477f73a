"""Values without a natural bound get one: refused with one line before the storage is touched."""

from __future__ import annotations

import pytest

from search.run.heartbeat import HEARTBEAT_ENV, MAX_HEARTBEAT_SECONDS
from tests.commands.test_bad_input import fails_cleanly
from tests.search_procs import TRAIN_POOL


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("value", ["99999999999", f"1,{MAX_HEARTBEAT_SECONDS + 1}"])
def test_a_heartbeat_beyond_a_day_is_refused(capsys, in_tmp, monkeypatch, data, value) -> None:
    # A huge interval used to kill the heartbeat thread (OverflowError) while the search went on and
    # exited 0; now it is refused before the storage is opened.
    monkeypatch.setenv(HEARTBEAT_ENV, value)
    err = fails_cleanly(capsys, "search", "--data", str(data), "--subset", "100", "--trials", "1")
    assert HEARTBEAT_ENV in err and f"at most {MAX_HEARTBEAT_SECONDS} s" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_a_subset_above_the_pool_is_refused(capsys, in_tmp, data) -> None:
    err = fails_cleanly(capsys, "search", "--data", str(data), "--subset", "99999999", "--trials", "1")
    assert f"--subset 99,999,999 is more than the {TRAIN_POOL:,} images of the training pool" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_a_subset_of_the_whole_pool_is_accepted(data) -> None:
    from mnist_arch.data import load_mnist

    assert len(load_mnist(data, TRAIN_POOL).train_labels) == TRAIN_POOL
