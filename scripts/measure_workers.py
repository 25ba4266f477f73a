"""Measure `search --workers`: trials per minute of 1 against 3 local CPU workers, and the time from
SIGKILL of a worker mid-trial to its retried trial starting.

    MNIST_ARCH_DATA=... PYTHONPATH=. python scripts/measure_workers.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import SearchResult, SearchSettings, search  # noqa: E402

TRAINED = (TrialState.COMPLETE, TrialState.PRUNED)


def settings(storage: str, workers: int, trials: int) -> SearchSettings:
    """`search --storage STORAGE --study m --trials TRIALS --workers WORKERS --no-baselines --subset 1000
    --epochs 1 --device cpu --pruner none`."""
    return SearchSettings(
        study="m",
        storage=storage,
        trials=trials,
        workers=workers,
        no_baselines=True,
        subset=1000,
        epochs=1,
        device="cpu",
        pruner="none",
    )


def quiet_search(storage: str, workers: int, trials: int, heartbeat: str = "5,30") -> SearchResult:
    """The search, its output (the workers' lines too) discarded."""
    os.environ["MNIST_ARCH_HEARTBEAT"] = heartbeat  # read by the parent and the spawned workers
    with _discard_output():
        return search(settings(storage, workers, trials))


@contextlib.contextmanager
def _discard_output() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def trials_of(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="m", storage=storage).get_trials()


def throughput(workers: int, trials: int, folder: Path) -> None:
    storage = f"sqlite:///{folder / f'throughput{workers}.db'}"
    start = time.perf_counter()
    result = quiet_search(storage, workers, trials)
    assert result.exit_code == 0, result.exit_code
    wall = time.perf_counter() - start
    done = [t for t in trials_of(storage) if t.state in TRAINED and "rejected" not in t.user_attrs]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    span = (last - first).total_seconds()
    print(
        f"{workers} worker(s): {len(done)} trials in {span:.1f} s of training = "
        f"{60 * len(done) / span:.1f} trials/min ({wall:.1f} s wall, start-up included)",
        flush=True,
    )


def kill_to_retry(folder: Path, heartbeat: str) -> None:
    storage = f"sqlite:///{folder / f'kill{heartbeat}.db'}"
    found: dict[str, object] = {}

    def kill_one() -> None:  # beside the search, which runs in the main thread (it forwards signals)
        victim = None
        while victim is None:
            time.sleep(0.1)
            try:
                running = [t for t in trials_of(storage) if t.state == TrialState.RUNNING]
            except KeyError:
                continue
            victim = next(
                (t for t in running if "n_params" in t.user_attrs and "worker" in t.user_attrs), None
            )
        found["killed"] = time.time()
        found["victim"] = victim
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    result = quiet_search(storage, 3, 6, heartbeat)
    killer.join(timeout=60)
    victim, killed = found["victim"], found["killed"]
    trials = trials_of(storage)
    lost = next(t for t in trials if t.number == victim.number)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    print(
        f"heartbeat {heartbeat} s: SIGKILL -> trial {lost.number} failed after "
        f"{lost.datetime_complete.timestamp() - killed:.1f} s -> retry (trial {retry.number}) started after "
        f"{retry.datetime_start.timestamp() - killed:.1f} s; exit {result.exit_code}",
        flush=True,
    )


if __name__ == "__main__":
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            throughput(n, 6, Path(tmp))
        for heartbeat in ("5,30", "1,4"):
            kill_to_retry(Path(tmp), heartbeat)
