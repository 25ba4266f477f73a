"""Concurrent search on the fused engine: in-flight trials train in FusedBanks, many models per kernel.

Trials with one batch size form a cohort whose banks step in lockstep, so all of the cohort's members
reach an epoch boundary together. There each member reports (the pruner sees it as sequentially);
finished, pruned and failed trials leave, newly asked trials of that batch size join, and the cohort's
banks are formed again from its members (grouped by convs after the pool). A new trial whose batch
size already trains waits for that cohort's next boundary, at most one epoch; one whose batch size
does not starts at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
import torch
from optuna.trial import FrozenTrial

from mnist_arch.fused import FusedBank
from mnist_arch.members import Member, group_members
from mnist_arch.trainer import DeviceData, DivergedError
from search.concurrent import ConcurrencyLimit, ConcurrentStats, newly_asked, stop_in_flight
from search.interrupts import check_interrupt, interruptible
from search.loop import tell_outcome
from search.objective import (
    PreparedTrial,
    TrialContext,
    epoch_reporter,
    finish_trial,
)

BankFactory = Callable[[Sequence[Member], DeviceData], FusedBank]
# Trials in flight on CUDA when not given. Banks are split by batch size and depth after the pool, so
# more trials than the separate engine's 32 are needed to fill them.
FUSED_AUTO_CONCURRENCY = 64


@dataclass(eq=False)
class _Entry:
    trial: optuna.Trial
    prepared: PreparedTrial
    report: Callable
    heartbeat: contextlib.ExitStack
    member: Member | None = None


@dataclass(eq=False)
class _Bank:
    bank: FusedBank | None  # None until built, and once failed
    entries: list[_Entry] = field(default_factory=list)  # in the bank's slot order


def run_fused(
    study: optuna.Study,
    ctx: TrialContext,
    *,
    n_trials: int,
    concurrency: int | None,
    timeout: float | None = None,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
    on_trial_failed: Callable[[FrozenTrial], None] | None = None,
    make_bank: BankFactory = FusedBank,
) -> ConcurrentStats:
    """Train trials, up to `concurrency` at once (None: automatic), until the study holds `n_trials`."""
    stats = ConcurrentStats()
    device = ctx.data.train_x.device
    if concurrency is None and device.type == "cuda":
        concurrency = FUSED_AUTO_CONCURRENCY
    limit = ConcurrencyLimit(device, concurrency)
    start = time.monotonic()
    in_flight: list[_Entry] = []
    waiting: dict[int, list[_Entry]] = {}  # by batch size: asked, to join at the cohort's next boundary
    cohorts: dict[int, list[_Bank]] = {}  # by batch size
    refill = True

    def end(entry: _Entry, value: float | None = None, error: BaseException | None = None) -> None:
        nonlocal refill
        refill = True
        in_flight.remove(entry)
        outcome = tell_outcome(study, entry.trial, value, error)
        entry.heartbeat.close()
        if outcome.fatal:
            assert error is not None
            raise error
        stats.count(outcome, on_trial_done, on_trial_failed)

    def fail_bank(batch: int, bank: _Bank, error: BaseException) -> None:
        """The bank's trials fail with the error; an out-of-memory error lowers the cap."""
        if bank in cohorts.get(batch, []):
            cohorts[batch].remove(bank)
        members = [entry for entry in bank.entries if entry in in_flight]
        if isinstance(error, torch.OutOfMemoryError):
            others = len(in_flight) - len(members)
            if others == 0:  # nothing else trains and still out of memory: more would fail the same way
                for entry in members:
                    tell_outcome(study, entry.trial, error=error)
                    entry.heartbeat.close()
                    in_flight.remove(entry)
                raise error
            limit.out_of_memory(others)
            bank.bank = None  # frees the bank before clearing the cache
            if device.type == "cuda":
                torch.cuda.empty_cache()
        for entry in members:
            end(entry, error=error)

    def fill() -> None:
        nonlocal refill
        if not refill:
            return
        refill = False
        room = lambda: limit.allows(len(in_flight))  # noqa: E731
        for trial, prepared, heartbeat in newly_asked(study, ctx, stats, n_trials, room, start, timeout):
            entry = _Entry(trial, prepared, epoch_reporter(trial, ctx, prepared), heartbeat)
            in_flight.append(entry)
            try:
                entry.member = Member.start(prepared.config, ctx.data, seed=prepared.seed)
            except Exception as error:  # noqa: BLE001 - told like a failure inside training
                end(entry, error=error)
                continue
            waiting.setdefault(entry.member.batch, []).append(entry)

    def form(batch: int) -> None:
        """The cohort's banks, formed again from its trials still in flight and the waiting ones."""
        entries = [e for bank in cohorts.pop(batch, []) for e in bank.entries if e in in_flight]
        entries += waiting.pop(batch, [])
        by_member = {id(entry.member): entry for entry in entries}
        max_bank = max(1, limit.requested)
        for group in group_members([entry.member for entry in entries], max_bank):
            bank = _Bank(None, [by_member[id(member)] for member in group])
            try:
                bank.bank = make_bank(group, ctx.data)
                bank.bank.begin_epoch()
            except Exception as error:  # noqa: BLE001 - the bank's trials fail, the search goes on
                fail_bank(batch, bank, error)
                continue
            cohorts.setdefault(batch, []).append(bank)

    def boundary(batch: int) -> None:
        """Every bank of the cohort ends its epoch: reports, departures, arrivals, banks formed again."""
        changed = False
        for bank in list(cohorts[batch]):
            try:
                with interruptible():
                    outcomes = bank.bank.end_epoch()
            except Exception as error:  # noqa: BLE001 - out of memory, or raised on
                fail_bank(batch, bank, error)
                changed = True
                continue
            for entry, outcome in zip(bank.entries, outcomes, strict=True):
                if outcome is None:  # left earlier (diverged)
                    continue
                if isinstance(outcome, DivergedError):
                    end(entry, error=outcome)
                    changed = True
                    continue
                try:
                    stop = entry.report(outcome)
                    stats.model_epochs += 1
                    member = entry.member
                    if member.epoch < ctx.epochs and not stop:
                        continue
                    member.result.stopped_early = member.epoch < ctx.epochs
                    value = finish_trial(entry.trial, ctx, entry.prepared, member.result)
                except Exception as error:  # noqa: BLE001 - pruned, or raised on
                    end(entry, error=error)
                else:
                    end(entry, value)
                changed = True
        fill()  # newly asked trials of this batch size join now
        if changed or waiting.get(batch):
            form(batch)
        else:
            for bank in cohorts[batch]:
                bank.bank.begin_epoch()

    try:
        while True:
            check_interrupt()
            fill()
            for batch in [b for b in waiting if b not in cohorts]:
                form(batch)  # nothing of this batch size trains: start at once
            stats.max_in_flight = max(stats.max_in_flight, len(in_flight))
            if not in_flight:
                break
            for batch in list(cohorts):
                for bank in list(cohorts[batch]):
                    try:
                        with interruptible():  # a signal stops training at once, never a storage call
                            diverged = bank.bank.step()
                        stats.bank_steps += 1
                        stats.member_steps += bank.bank.size
                    except Exception as error:  # noqa: BLE001 - out of memory, or raised on
                        fail_bank(batch, bank, error)
                        continue
                    for slot in diverged:
                        entry = bank.entries[slot]
                        epoch = entry.member.epoch
                        end(entry, error=DivergedError(f"training loss became non-finite in epoch {epoch}"))
                banks = cohorts.get(batch)
                if banks and banks[0].bank.epoch_done:
                    if len(in_flight) == 1 and limit.bytes_per_trial is None:
                        # Measured before the evaluation: it runs in chunks of a fixed size whatever
                        # the bank's size, so it is not memory that each member adds.
                        limit.measure()
                        refill = True  # the cap may have grown
                    boundary(batch)
                elif not banks:
                    cohorts.pop(batch, None)
    except BaseException:
        stop_in_flight(study, in_flight)
        raise
    finally:
        stats.seconds = time.monotonic() - start
        stats.bytes_per_trial = limit.bytes_per_trial
    return stats
