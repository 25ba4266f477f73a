"""Trials of killed workers: a heartbeat per running trial, and failing + requeueing the stale ones.

Optuna's RDB storages keep the heartbeat table; Study.optimize would drive it, but the ask/tell loop
drives it itself: `beating` records a heartbeat every interval while a trial runs, `fail_stale` fails
every running trial whose heartbeat stopped for longer than the grace period (its worker was killed)
and queues the same parameters again, once.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.errors import UsageError
from search.study.optuna_private import heartbeat_storage, stale_trial_ids, trial_id
from search.study.storage import Heartbeat

HEARTBEAT_ENV = "MNIST_ARCH_HEARTBEAT"  # "INTERVAL[,GRACE]" in seconds; tests use short ones
LOST = "worker lost"
MAX_HEARTBEAT_SECONDS = 86_400  # threading waits refuse timeouts past ~2**31 s; a day is plenty


def heartbeat_from_env() -> Heartbeat:
    """The default Heartbeat, or the one $MNIST_ARCH_HEARTBEAT sets."""
    text = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not text:
        return Heartbeat()
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise UsageError(f"{HEARTBEAT_ENV} must be INTERVAL or INTERVAL,GRACE in whole seconds, got {text!r}")
    if max(values) > MAX_HEARTBEAT_SECONDS:
        raise UsageError(
            f"{HEARTBEAT_ENV}={text!r}: interval and grace must be at most {MAX_HEARTBEAT_SECONDS} s "
            "(a day); a lost worker's trial is found after the grace period"
        )
    interval = values[0]
    grace = values[1] if len(values) == 2 else 6 * interval
    if grace <= interval:
        raise UsageError(
            f"{HEARTBEAT_ENV}: the grace period ({grace} s) must exceed the interval ({interval} s)"
        )
    return Heartbeat(interval, grace)


def keeps_heartbeats(study: optuna.Study) -> bool:
    """Whether a killed worker's trial is ever found lost: only with a heartbeat on the storage."""
    return heartbeat_storage(study) is not None


@contextmanager
def beating(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record `trial`'s heartbeat now and every interval until the block ends."""
    storage = heartbeat_storage(study)
    if storage is None:
        yield
        return
    storage.record_heartbeat(trial_id(trial))  # at once: a trial without a heartbeat is never stale
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(storage.get_heartbeat_interval()):
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial must go on
                storage.record_heartbeat(trial_id(trial))

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale(study: optuna.Study) -> list[int]:
    """Fail the running trials whose heartbeat stopped, with fail_reason 'worker lost', and queue
    each one's parameters again. Returns the numbers failed here (several workers may race: the
    storage lets exactly one of them finish a trial, and only that one requeues it)."""
    storage = heartbeat_storage(study)
    if storage is None:
        return []
    failed = []
    for stale in stale_trial_ids(storage, study):
        try:
            storage.set_trial_user_attr(stale, "fail_reason", LOST)
            if not storage.set_trial_state_values(stale, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        trial = storage.get_trial(stale)
        _requeue(study, trial)
        failed.append(trial.number)
    return failed


def _requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """A WAITING copy of `trial` with the same parameters (and baseline), like Optuna's
    RetryHeartbeatStaleTrialCallback, but without the lost run's results and fail_reason."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    system_attrs = {"failed_trial": history[0], "retry_history": history}
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
    if "fixed_params" in trial.system_attrs:
        system_attrs["fixed_params"] = trial.system_attrs["fixed_params"]
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )
