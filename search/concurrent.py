"""Concurrent search: K trials in flight in one process, continuously batched.

Each in-flight trial is a TrainingRun; the loop gives every run one training step in turn. At a run's
epoch end its trial reports (the pruner sees it at once, as sequentially); a finished, pruned or failed
trial leaves its slot, and a newly asked trial takes it before the next round. On CUDA each run replays
its own graph on its own stream, so the kernels of many small models overlap on one GPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import FrozenTrial

from mnist_arch.trainer import EpochStats, TrainingRun
from search.heartbeat import beating, fail_stale
from search.interrupts import check_interrupt, interruptible
from search.loop import (
    LoopStats,
    _ask,
    _claim,
    tell_outcome,
    trained_and_running,
)
from search.objective import (
    OverBudget,
    PreparedTrial,
    TrialContext,
    epoch_reporter,
    finish_trial,
    prepare_trial,
)

AUTO_CONCURRENCY = 32  # trials in flight on CUDA when not given; throughput is flat from 16 to 64
MEMORY_SHARE = 0.5  # of the free device memory; the widest models of a space need about twice the first's

RunFactory = Callable[..., TrainingRun]


@dataclass
class ConcurrentStats(LoopStats):
    model_epochs: int = 0  # epochs trained, over all trials
    seconds: float = 0.0  # wall time of the loop
    max_in_flight: int = 0
    bytes_per_trial: int | None = None  # CUDA: peak device memory of the first trial, alone
    bank_steps: int = 0  # fused engine: steps of banks, and of the members in them
    member_steps: int = 0

    @property
    def model_epochs_per_second(self) -> float:
        return self.model_epochs / self.seconds if self.seconds > 0 else 0.0


class ConcurrencyLimit:
    """How many trials may be in flight: the request, capped on CUDA by free memory.

    On CUDA the first trial trains alone for one epoch; its peak allocation is the measured bytes per
    trial, and the cap becomes what MEMORY_SHARE of the free memory holds. An out-of-memory failure
    lowers the cap to the trials that still run.
    """

    def __init__(self, device: torch.device, requested: int | None) -> None:
        self.device = device
        self.requested = requested or (AUTO_CONCURRENCY if device.type == "cuda" else 1)
        self.bytes_per_trial: int | None = None
        self.cap = self.requested
        if device.type == "cuda":
            self.cap = 1  # until the first trial is measured
            torch.cuda.reset_peak_memory_stats(device)
            self._base = torch.cuda.memory_allocated(device)

    def allows(self, in_flight: int) -> bool:
        return in_flight < self.cap

    def measure(self) -> None:
        """After the first trial's first epoch (or its end), while it was the only one in flight."""
        if self.device.type != "cuda" or self.bytes_per_trial is not None:
            return
        self.bytes_per_trial = max(1, torch.cuda.max_memory_allocated(self.device) - self._base)
        self.cap = cap_for_memory(self.requested, self.bytes_per_trial, self.device, in_flight=1)

    def out_of_memory(self, still_in_flight: int) -> None:
        self.cap = max(1, min(self.cap, still_in_flight))


def cap_for_memory(requested: int, bytes_per_trial: int, device: torch.device, *, in_flight: int) -> int:
    """`requested`, lowered so that the trials beyond the `in_flight` ones fit the free memory."""
    # Only memory the driver reports free: cached blocks may sit in graphs' private pools.
    free, _ = torch.cuda.mem_get_info(device)
    more = int(MEMORY_SHARE * free) // bytes_per_trial
    return max(1, min(requested, in_flight + more))


@dataclass
class _Slot:
    trial: optuna.Trial
    prepared: PreparedTrial
    report: Callable[[EpochStats], bool]
    heartbeat: contextlib.ExitStack
    run: TrainingRun | None = None


def run_concurrent(
    study: optuna.Study,
    ctx: TrialContext,
    *,
    n_trials: int,
    concurrency: int | None,
    timeout: float | None = None,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
    on_trial_failed: Callable[[FrozenTrial], None] | None = None,
    make_run: RunFactory = TrainingRun,
) -> ConcurrentStats:
    """Train trials, up to `concurrency` at once (None: automatic), until the study holds `n_trials`."""
    stats = ConcurrentStats()
    device = ctx.data.train_x.device
    limit = ConcurrencyLimit(device, concurrency)
    start = time.monotonic()
    slots: list[_Slot] = []
    refill = True  # the storage is asked for the trained count only when a slot has come free

    def done(slot: _Slot, value: float | None = None, error: BaseException | None = None) -> None:
        nonlocal refill
        refill = True
        slots.remove(slot)
        slot.run = None  # frees the run's graph and buffers before a new trial takes the slot
        if isinstance(error, torch.OutOfMemoryError):
            if not slots:  # alone and still out of memory: more trials would fail the same way
                tell_outcome(study, slot.trial, error=error)
                raise error
            limit.out_of_memory(len(slots))
            if device.type == "cuda":
                torch.cuda.empty_cache()
        outcome = tell_outcome(study, slot.trial, value, error)
        slot.heartbeat.close()
        if outcome.fatal:
            assert error is not None
            raise error
        stats.count(outcome, on_trial_done, on_trial_failed)

    try:
        while True:
            # fill free slots with newly asked trials
            check_interrupt()
            room = lambda: limit.allows(len(slots))  # noqa: E731
            asked = newly_asked(study, ctx, stats, n_trials, room, start, timeout) if refill else ()
            for trial, prepared, heartbeat in asked:
                slot = _Slot(trial, prepared, epoch_reporter(trial, ctx, prepared), heartbeat)
                slots.append(slot)
                try:
                    slot.run = make_run(prepared.config, ctx.data, seed=prepared.seed)
                    slot.run.begin_epoch(1)
                except Exception as error:  # noqa: BLE001 - told like a failure inside training
                    done(slot, error=error)
            refill = False
            stats.max_in_flight = max(stats.max_in_flight, len(slots))
            if not slots:
                break

            # one training step for every run in flight; epoch ends report, and maybe finish a trial
            for slot in list(slots):
                run = slot.run
                try:
                    with interruptible():  # a signal stops training at once, never a storage call
                        run.step()
                        if not run.epoch_done:
                            continue
                        stats_of_epoch = run.end_epoch()
                    stop = slot.report(stats_of_epoch)
                    stats.model_epochs += 1
                    if len(slots) == 1 and limit.bytes_per_trial is None:
                        limit.measure()
                        refill = True  # the cap may have grown
                    if run.epoch < ctx.epochs and not stop:
                        run.begin_epoch(run.epoch + 1)
                        continue
                    run.result.stopped_early = run.epoch < ctx.epochs
                    value = finish_trial(slot.trial, ctx, slot.prepared, run.result)
                except Exception as error:  # noqa: BLE001 - pruned, diverged, out of memory, or raised on
                    done(slot, error=error)
                else:
                    done(slot, value)
    except BaseException:
        stop_in_flight(study, slots)
        raise
    finally:
        stats.seconds = time.monotonic() - start
        stats.bytes_per_trial = limit.bytes_per_trial
    return stats


def stop_in_flight(study: optuna.Study, in_flight: list) -> None:
    """Trials still in flight end with the search, marked 'interrupted'."""
    for item in list(in_flight):
        tell_outcome(study, item.trial, error=KeyboardInterrupt("the search stopped"))
        item.heartbeat.close()


def newly_asked(
    study: optuna.Study,
    ctx: TrialContext,
    stats: LoopStats,
    n_trials: int,
    room: Callable[[], bool],
    start: float,
    timeout: float | None,
) -> Iterator[tuple[optuna.Trial, PreparedTrial, contextlib.ExitStack]]:
    """Trials to start while `room()`, time and the count allow: claimed, within the budget, beating.

    Lost trials of other workers are requeued first. Over-budget draws are told and redrawn; a trial
    asked when the study is already full is given back, and ends the filling.
    """
    stats.requeued += len(fail_stale(study))
    while (
        room()
        and (timeout is None or time.monotonic() - start < timeout)
        and sum(trained_and_running(study)) < n_trials  # running: ours and other workers'
    ):
        trial = _ask(study)
        if not _claim(study, trial, n_trials):
            stats.given_back += 1
            return
        try:
            prepared = prepare_trial(trial, ctx)
        except OverBudget as error:
            tell_outcome(study, trial, error=error)
            stats.reject(ctx.max_params)
            continue
        heartbeat = contextlib.ExitStack()
        heartbeat.enter_context(beating(study, trial))
        yield trial, prepared, heartbeat


def concurrency_line(stats: ConcurrentStats) -> str:
    """The loop's throughput, as the search prints it last but one."""
    memory = (
        f", {stats.bytes_per_trial / 2**20:,.0f} MiB per trial" if stats.bytes_per_trial is not None else ""
    )
    banks = f", {stats.member_steps / stats.bank_steps:.1f} trials per bank" if stats.bank_steps else ""
    return (
        f"{stats.model_epochs} model-epochs in {stats.seconds:.1f} s: "
        f"{stats.model_epochs_per_second:.2f} model-epochs/s, up to {stats.max_in_flight} trials in flight"
        f"{memory}{banks}"
    )
