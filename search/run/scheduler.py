"""The one search loop: ask trials, admit them to an engine, train, and settle what each epoch produced.

Several workers (processes, machines) may run this loop on one study. `--trials N` stays exact: a
worker asks only while trained + running < N, and checks again right after its ask (a racing worker
may have asked too); if the study is then over N it gives the trial back to the queue (WAITING)
before training. Of two racing workers at least one sees the other's running trial, so the study
never trains more than N. (Optuna's MaxTrialsCallback counts only finished trials and stops only
the worker whose trial just finished, so the others' running trials overshoot N.)

Concurrency is a number: the engine trains up to `capacity` trials at once (1: one at a time). The rules
that hold at every concurrency and with every engine:
- idle: when the other workers' running trials fill the study, wait while they could still fail and free
  a slot; a killed worker's trial is failed and queued again once its heartbeat is older than the grace
  period (search.run.heartbeat), so the wait is bounded by the live trials plus the grace. Without a
  heartbeat on the storage a lost trial is never found, so nothing is waited for.
- out of memory: the trial fails ('out of memory', not counted), the capacity drops to the trials still
  in flight (at least 1) and the search goes on; it stops when OOM_ALONE_LIMIT trials in a row run out
  of memory alone, with no epoch trained in between: one at a time does not fit either.
- interrupts: a signal stops training at once, but never cuts into a storage call: one that arrives
  during ask, report, tell or counting is held to the next safe point. The trials in flight are then
  marked 'interrupted'.
- every trial, rejected draws included, carries the user attribute `worker` (host:pid).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from mnist_arch.trainer import EpochStats
from search.run.capacity import Capacity, trials_in_flight
from search.run.engine import Engine, EpochEnd, Event, OutOfMemory
from search.run.heartbeat import beating, fail_stale, keeps_heartbeats
from search.run.interrupts import check_interrupt, interruptible
from search.run.settings import SearchSettings
from search.run.settle import Rejected, SearchStats, tell_outcome
from search.run.trial import (
    OverBudget,
    PreparedTrial,
    TrialContext,
    epoch_reporter,
    finish_trial,
    prepare_trial,
)
from search.study.optuna_private import give_back
from search.study.trials import trained_and_running

OOM_ALONE_LIMIT = 3


def worker_name() -> str:
    """host:pid, to trace a trial to the process that ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(eq=False)
class _Flight:
    """A trial in flight: the study's side of it (the engine holds the training)."""

    trial: optuna.Trial
    prepared: PreparedTrial
    report: Callable[[EpochStats], bool]
    heartbeat: contextlib.ExitStack


def run_search(
    study: optuna.Study,
    ctx: TrialContext,
    engine: Engine,
    settings: SearchSettings,
    *,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
    on_trial_failed: Callable[[FrozenTrial], None] | None = None,
    poll: float = 1.0,
) -> SearchStats:
    """Train trials until the study holds `settings.trials` trained ones (or `settings.timeout` passes)."""
    return _Scheduler(study, ctx, engine, settings, on_trial_done, on_trial_failed, poll).run()


class _Scheduler:
    def __init__(self, study, ctx, engine, settings, on_trial_done, on_trial_failed, poll) -> None:  # noqa: ANN001
        self.study, self.ctx, self.engine, self.poll = study, ctx, engine, poll
        self.n_trials, self.timeout = settings.trials, settings.timeout
        self.on_trial_done, self.on_trial_failed = on_trial_done, on_trial_failed
        device = ctx.data.train_x.device
        self.capacity = Capacity(device, trials_in_flight(settings.concurrency, engine.name, device))
        self.stats = SearchStats()
        self.flights: dict[int, _Flight] = {}  # by trial number, the engine's key
        self.worker = worker_name()
        self.oom_alone = 0  # trials in a row that ran out of memory alone
        self.start = time.monotonic()

    def run(self) -> SearchStats:
        engine, capacity, stats = self.engine, self.capacity, self.stats
        engine.memory_probe = self._probe
        refill = True  # the storage is asked for the counts only when a slot has come free
        try:
            while True:
                # ---- safe point: a signal held during a storage call stops the search here ----
                check_interrupt()

                # ---- fill: ask new trials while capacity, time and the count allow ----
                if refill:
                    self._fill()
                    refill = False
                stats.max_in_flight = max(stats.max_in_flight, len(self.flights))

                # ---- idle: nothing in flight here; done, or wait for the peers' trials ----
                if not self.flights:
                    if not self._wait_idle():
                        break
                    refill = True
                    continue

                # ---- train: until some trial ends an epoch or fails (a signal stops it at once) ----
                measured = capacity.measured
                with interruptible():
                    events = engine.advance()
                refill = capacity.measured != measured  # the cap may have grown

                # ---- settle: report, prune, finish, tell; out of memory lowers the capacity ----
                for event in events:
                    self._settle(event)
                refill = refill or bool(events)
        except BaseException:
            self._stop_in_flight()
            raise
        finally:
            stats.seconds = time.monotonic() - self.start
            stats.bytes_per_trial = capacity.bytes_per_trial
            stats.bank_steps, stats.member_steps = engine.bank_steps, engine.member_steps
        return stats

    # ---- fill -------------------------------------------------------------------------------------

    def _fill(self) -> None:
        """Trials to start: claimed, within the budget, beating, admitted. Lost trials of other workers
        are requeued first; over-budget draws are told and redrawn; a trial asked when the study is
        already full is given back, and ends the filling."""
        study, stats = self.study, self.stats
        stats.requeued += len(fail_stale(study))
        while self.capacity.allows(len(self.flights)) and not self._timed_out():
            if sum(trained_and_running(study)) >= self.n_trials:  # running: ours and other workers'
                return
            trial = _ask(study)
            if not _claim(study, trial, self.n_trials):
                stats.given_back += 1
                return
            heartbeat = contextlib.ExitStack()
            heartbeat.enter_context(beating(study, trial))
            trial.set_user_attr("worker", self.worker)
            try:
                prepared = prepare_trial(trial, self.ctx)
            except OverBudget as error:
                tell_outcome(study, trial, error=Rejected(str(error)))
                heartbeat.close()
                stats.reject(self.ctx.max_params)
                continue
            self.flights[trial.number] = _Flight(
                trial, prepared, epoch_reporter(trial, self.ctx, prepared), heartbeat
            )
            self.engine.admit(trial.number, prepared.config, prepared.seed)

    def _timed_out(self) -> bool:
        return self.timeout is not None and time.monotonic() - self.start >= self.timeout

    # ---- idle -------------------------------------------------------------------------------------

    def _wait_idle(self) -> bool:
        """Nothing of ours in flight: False when the search is over, else wait a moment and go on."""
        trained, running = trained_and_running(self.study)
        if trained >= self.n_trials or self._timed_out():
            return False
        if trained + running >= self.n_trials:
            if not keeps_heartbeats(self.study):
                return False  # a lost trial would never be found: nothing to wait for
            time.sleep(self.poll)  # a running trial may still fail (out of memory, killed) and free a slot
            return True
        time.sleep(random.uniform(0.1, self.poll))  # lost a race for the last slot: back off by chance
        return True

    # ---- settle -----------------------------------------------------------------------------------

    def _settle(self, event: Event) -> None:
        flight = self.flights[event.key]
        if isinstance(event, OutOfMemory):
            self._end(flight, error=event.error)
            self._out_of_memory(event.error)
            return
        if not isinstance(event, EpochEnd):
            self._end(flight, error=event.error)  # diverged, or raised on
            return
        self.oom_alone = 0
        self.stats.model_epochs += 1
        epoch = event.stats.epoch
        try:
            stop = flight.report(event.stats)
            if epoch < self.ctx.epochs and not stop:
                return  # trains on
            event.result.stopped_early = epoch < self.ctx.epochs
            value = finish_trial(flight.trial, self.ctx, flight.prepared, event.result)
        except Exception as error:  # noqa: BLE001 - pruned, or raised on
            self._end(flight, error=error)
        else:
            self._end(flight, value)

    def _end(self, flight: _Flight, value: float | None = None, error: BaseException | None = None) -> None:
        number = flight.trial.number
        del self.flights[number]
        self.engine.release(number)
        outcome = tell_outcome(self.study, flight.trial, value, error)
        flight.heartbeat.close()
        if outcome.fatal:
            assert error is not None
            raise error
        self.stats.count(outcome, self.on_trial_done, self.on_trial_failed)

    def _out_of_memory(self, error: BaseException) -> None:
        if not self.flights:
            self.oom_alone += 1
            if self.oom_alone >= OOM_ALONE_LIMIT:
                raise error  # one at a time does not fit either: more trials would fail the same way
        self.capacity.out_of_memory(len(self.flights))

    def _probe(self) -> None:
        if self.engine.in_flight == 1 and not self.capacity.measured:
            self.capacity.measure()

    def _stop_in_flight(self) -> None:
        """Trials still in flight end with the search, marked 'interrupted'."""
        for flight in list(self.flights.values()):
            self.engine.release(flight.trial.number)
            tell_outcome(self.study, flight.trial, error=KeyboardInterrupt("the search stopped"))
            flight.heartbeat.close()
        self.flights.clear()


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": we drive it
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


def _claim(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Keep `trial` if the study, counting it, does not exceed n_trials; else give it back."""
    trained, running = trained_and_running(study)  # running includes this trial
    if trained + running <= n_trials:
        return True
    give_back(study, trial)
    return False
