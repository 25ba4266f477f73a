"""An engine that trains nothing: every admitted trial ends one epoch per `advance()`, with an accuracy
drawn from its seed, and fails where told. It drives the scheduler in milliseconds, without data."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import DeviceData, DivergedError, EpochStats, TrainResult
from search.run.engine import EpochEnd, Event, Failed, OutOfMemory


def no_data() -> DeviceData:
    """Empty tensors on the CPU: the scheduler reads only the device."""
    images, labels = torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)
    return DeviceData(images, labels, images, labels, images, labels)


@dataclass
class FakeEngine:
    """`out_of_memory` / `diverge`: seeds that fail in their first epoch; `on_advance(engine)` runs at
    the start of every advance (to send a signal while training, say)."""

    out_of_memory: set[int] = field(default_factory=set)
    diverge: set[int] = field(default_factory=set)
    on_advance: Callable[[FakeEngine], None] | None = None
    name: str = "fake"
    memory_probe: Callable[[], None] | None = None
    bank_steps: int = 0
    member_steps: int = 0
    runs: dict[int, tuple[int, TrainResult]] = field(default_factory=dict)  # key -> (seed, result)
    admitted: list[int] = field(default_factory=list)  # keys, in admission order
    in_flight_seen: list[int] = field(default_factory=list)  # trials in flight at each advance
    advances: int = 0

    @property
    def in_flight(self) -> int:
        return len(self.runs)

    def admit(self, key: int, config: CandidateConfig, seed: int) -> None:
        self.admitted.append(key)
        self.runs[key] = (seed, TrainResult())

    def release(self, key: int) -> None:
        self.runs.pop(key, None)

    def advance(self) -> list[Event]:
        self.advances += 1
        if self.on_advance is not None:
            self.on_advance(self)
        self.in_flight_seen.append(len(self.runs))
        events: list[Event] = []
        for key, (seed, result) in list(self.runs.items()):
            if seed in self.out_of_memory:
                del self.runs[key]
                events.append(OutOfMemory(key, torch.OutOfMemoryError("CUDA out of memory (fake)")))
                continue
            if seed in self.diverge:
                del self.runs[key]
                events.append(Failed(key, DivergedError("training loss became nan in epoch 1")))
                continue
            epoch = len(result.history) + 1
            accuracy = 0.5 + 0.4 * random.Random(seed * 1000 + epoch).random()
            stats = EpochStats(epoch, 0.05, 1.0 / epoch, accuracy, accuracy, seconds=0.001)
            result.history.append(stats)
            events.append(EpochEnd(key, stats, result))
        return events
