"""Stress a SQLite storage with parallel processes doing ask/tell: Optuna's default engine settings
against mnist-arch's (WAL, 60 s busy timeout, BEGIN IMMEDIATE). Prints errors and trials per second.

    PYTHONPATH=. python scripts/storage_stress.py --processes 6 --trials 40
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from search.study.storage import Heartbeat, open_storage, use_wal


def _storage(kind: str, url: str) -> optuna.storages.BaseStorage:
    if kind == "default":
        return optuna.storages.RDBStorage(url)
    storage = open_storage(url, Heartbeat(1, 5))
    use_wal(storage)
    return storage


def _worker(kind: str, url: str, trials: int, errors: multiprocessing.Queue) -> None:
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    count = 0
    try:
        study = optuna.load_study(study_name="stress", storage=_storage(kind, url))
    except Exception as error:  # noqa: BLE001 - counted, not raised
        errors.put(f"open: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
        return
    for _ in range(trials):
        try:
            trial = study.ask()
            x = trial.suggest_float("x", -1, 1)
            for key in ("a", "b", "c"):
                trial.set_user_attr(key, x)
            study.tell(trial, x * x)
            count += 1
        except Exception as error:  # noqa: BLE001 - counted, not raised
            errors.put(f"{type(error).__name__}: {str(error).splitlines()[0][:80]}")


def measure(kind: str, processes: int, trials: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'stress.db'}"
        optuna.create_study(study_name="stress", storage=_storage(kind, url))
        errors: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
        context = multiprocessing.get_context("fork")
        workers = [
            context.Process(target=_worker, args=(kind, url, trials, errors)) for _ in range(processes)
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - start
        found = []
        while not errors.empty():
            found.append(errors.get())
        done = optuna.load_study(study_name="stress", storage=url).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
        print(
            f"{kind:8} {processes} processes x {trials} trials: {len(done)} complete in {seconds:.1f} s "
            f"({len(done) / seconds:.1f} trials/s), {len(found)} errors"
            + (f", e.g. {sorted(set(found))[:2]}" if found else "")
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    for kind in ("default", "tuned"):
        measure(kind, args.processes, args.trials)
