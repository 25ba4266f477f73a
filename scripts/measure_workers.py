"""Measure `search --workers`: trials per minute of 1 against 3 local CPU workers, and the time from
SIGKILL of a worker mid-trial to its retried trial starting.

    MNIST_ARCH_DATA=... PYTHONPATH=. python scripts/measure_workers.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
TRAINED = (TrialState.COMPLETE, TrialState.PRUNED)


def command(storage: str, workers: int, trials: int) -> list[str]:
    return [
        *(sys.executable, "-m", "search.cli", "search", "--storage", storage, "--study", "m"),
        *("--trials", str(trials), "--workers", str(workers), "--no-baselines", "--subset", "1000"),
        *("--epochs", "1", "--device", "cpu", "--pruner", "none"),
    ]


def trials_of(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="m", storage=storage).get_trials()


def throughput(workers: int, trials: int, folder: Path) -> None:
    storage = f"sqlite:///{folder / f'throughput{workers}.db'}"
    start = time.perf_counter()
    subprocess.run(command(storage, workers, trials), check=True, capture_output=True, env=_env())
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
    process = subprocess.Popen(
        command(storage, 3, 6), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(heartbeat)
    )
    victim = None
    while victim is None:
        time.sleep(0.1)
        try:
            running = [t for t in trials_of(storage) if t.state == TrialState.RUNNING]
        except KeyError:
            continue
        victim = next((t for t in running if "n_params" in t.user_attrs and "worker" in t.user_attrs), None)
    killed = time.time()
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    process.wait(timeout=900)
    trials = trials_of(storage)
    lost = next(t for t in trials if t.number == victim.number)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    print(
        f"heartbeat {heartbeat} s: SIGKILL -> trial {lost.number} failed after "
        f"{lost.datetime_complete.timestamp() - killed:.1f} s -> retry (trial {retry.number}) started after "
        f"{retry.datetime_start.timestamp() - killed:.1f} s; exit {process.returncode}",
        flush=True,
    )


def _env(heartbeat: str = "5,30") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_ARCH_HEARTBEAT": heartbeat}


if __name__ == "__main__":
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            throughput(n, 6, Path(tmp))
        for heartbeat in ("5,30", "1,4"):
            kill_to_retry(Path(tmp), heartbeat)
