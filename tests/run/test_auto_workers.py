"""--workers by default: one per core on the CPU for a search that repays starting them, else one."""

from __future__ import annotations

import os

from search.run.settings import SearchSettings
from search.run.workers import AUTO_WORKERS_MAX, AUTO_WORKERS_MIN_IMAGE_EPOCHS, auto_workers


def test_given_workers_are_kept() -> None:
    assert auto_workers(SearchSettings(workers=3, device="cpu"), 10**9) == 3


def test_a_small_cpu_search_keeps_one_process_and_a_large_one_takes_every_core() -> None:
    epochs = 4
    small = SearchSettings(device="cpu", epochs=epochs)
    enough = AUTO_WORKERS_MIN_IMAGE_EPOCHS // epochs
    cores = min(len(os.sched_getaffinity(0)), AUTO_WORKERS_MAX)
    assert auto_workers(small, enough - 1) == 1
    assert auto_workers(small, enough) == cores
    assert auto_workers(small, 0) == 1  # a full study left to confirm only


def test_pinned_devices_keep_one() -> None:
    assert auto_workers(SearchSettings(device="cpu,cpu"), 10**9) == 1
