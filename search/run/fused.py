"""The fused engine: trials in flight train in FusedBanks, many models per kernel.

Trials with one batch size form a cohort whose banks step in lockstep, so all of the cohort's members
reach an epoch boundary together. The trials the scheduler does not release there train on; released,
diverged and failed ones leave, trials admitted since with that batch size join, and the cohort's banks
are formed again (grouped by convs after the pool). A trial whose batch size already trains therefore
waits for that cohort's next boundary, at most one epoch; one whose batch size does not starts at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mnist_arch.config import CandidateConfig
from mnist_arch.fused import FusedBank
from mnist_arch.members import Member, group_members
from mnist_arch.trainer import EVERY_EPOCH, DeviceData, DivergedError, Evaluation
from search.run.engine import EpochEnd, Event, failure


@dataclass(eq=False)
class _Bank:
    bank: FusedBank
    keys: list[int]  # in the bank's slot order


class FusedEngine:
    name = "fused"

    def __init__(self, data: DeviceData, max_bank: int, evaluation: Evaluation = EVERY_EPOCH) -> None:
        self.data, self.max_bank, self.evaluation = data, max(1, max_bank), evaluation
        self.members: dict[int, Member] = {}  # the trials in flight
        self.waiting: dict[int, list[int]] = {}  # by batch size: admitted, to join at the next boundary
        self.cohorts: dict[int, list[_Bank]] = {}  # by batch size
        self.at_boundary: set[int] = set()  # cohorts whose epoch ended: formed again at the next advance
        self.memory_probe: Callable[[], None] | None = None
        self.bank_steps = self.member_steps = 0
        self._events: list[Event] = []

    @property
    def in_flight(self) -> int:
        return len(self.members)

    def new_bank(self, members: list[Member]) -> FusedBank:
        return FusedBank(members, self.data)

    def admit(self, key: int, config: CandidateConfig, seed: int) -> None:
        try:
            member = Member.start(config, self.data, seed=seed)
        except Exception as error:  # noqa: BLE001 - out of memory on allocation, or raised on
            self._events.append(failure(key, error))
            return
        self.members[key] = member
        self.waiting.setdefault(member.batch, []).append(key)

    def release(self, key: int) -> None:
        self.members.pop(key, None)  # its bank drops it when the cohort is formed again

    def advance(self) -> list[Event]:
        for batch in sorted(self.at_boundary):
            self._next_epoch(batch)
        self.at_boundary.clear()
        for batch in [b for b in self.waiting if b not in self.cohorts]:
            self._form(batch)  # nothing of this batch size trains: start at once
        while not self._events and self.cohorts:
            for batch in list(self.cohorts):
                if batch not in self.at_boundary:
                    self._step_cohort(batch)
        events, self._events = self._events, []
        return events

    def _step_cohort(self, batch: int) -> None:
        for bank in list(self.cohorts[batch]):
            try:
                diverged = bank.bank.step()
            except Exception as error:  # noqa: BLE001 - out of memory, or raised on
                self._fail_bank(batch, bank, error)
                continue
            self.bank_steps += 1
            self.member_steps += bank.bank.size
            for slot in diverged:
                key = bank.keys[slot]
                if key not in self.members:
                    continue
                epoch = self.members[key].epoch
                self._leave(key, DivergedError(f"training loss became non-finite in epoch {epoch}"))
        banks = self.cohorts.get(batch)
        if not banks:
            self.cohorts.pop(batch, None)
        elif banks[0].bank.epoch_done:
            # Measured before the evaluation: it runs in chunks of a fixed size whatever the bank's
            # size, so it is not memory that each member adds.
            if self.memory_probe is not None:
                self.memory_probe()
            self._end_epoch(batch)

    def _end_epoch(self, batch: int) -> None:
        """Every bank of the cohort evaluates; each member still in flight reports its epoch."""
        self.at_boundary.add(batch)
        for bank in list(self.cohorts[batch]):
            try:
                outcomes = bank.bank.end_epoch(self.evaluation)
            except Exception as error:  # noqa: BLE001 - out of memory, or raised on
                self._fail_bank(batch, bank, error)
                continue
            for key, outcome in zip(bank.keys, outcomes, strict=True):
                if outcome is None or key not in self.members:  # left earlier (diverged)
                    continue
                if isinstance(outcome, DivergedError):
                    self._leave(key, outcome)
                else:
                    self._events.append(EpochEnd(key, outcome, self.members[key].result))

    def _next_epoch(self, batch: int) -> None:
        """After a boundary: the same banks go on, or, where members left or wait to join, new ones."""
        banks = self.cohorts.get(batch, [])
        if self.waiting.get(batch) or any(k not in self.members for bank in banks for k in bank.keys):
            self._form(batch)
            return
        for bank in banks:
            try:
                bank.bank.begin_epoch()
            except Exception as error:  # noqa: BLE001
                self._fail_bank(batch, bank, error)

    def _form(self, batch: int) -> None:
        """The cohort's banks, formed from its trials still in flight and the waiting ones."""
        keys = [key for bank in self.cohorts.pop(batch, []) for key in bank.keys]
        keys = [key for key in keys + self.waiting.pop(batch, []) if key in self.members]
        by_member = {id(self.members[key]): key for key in keys}
        for group in group_members([self.members[key] for key in keys], self.max_bank):
            bank_keys = [by_member[id(member)] for member in group]
            try:
                bank = _Bank(self.new_bank(group), bank_keys)
                bank.bank.begin_epoch()
            except Exception as error:  # noqa: BLE001 - the bank's trials fail, the others go on
                for key in bank_keys:
                    self._leave(key, error)
                continue
            self.cohorts.setdefault(batch, []).append(bank)

    def _fail_bank(self, batch: int, bank: _Bank, error: Exception) -> None:
        """The bank's trials fail with the error; the cohort's other banks go on."""
        self.cohorts[batch].remove(bank)
        bank.bank = None  # type: ignore[assignment] - frees the bank before the cache is cleared
        for key in bank.keys:
            if key in self.members:
                self._leave(key, error)

    def _leave(self, key: int, error: Exception) -> None:
        self.members.pop(key, None)
        self._events.append(failure(key, error))
