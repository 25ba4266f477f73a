"""What trains the trials in flight. An engine sees configs and seeds, never the study.

The scheduler admits a trial under a key, calls `advance()` until some trial ends an epoch or fails, and
answers each epoch end: a trial it does not release trains on into its next epoch at the next `advance()`.
Engines never raise for one trial's failure: it comes back as an event (out of memory as its own type,
so that the scheduler can lower the capacity), and the engine has already dropped that trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import EpochStats, TrainResult


@dataclass(frozen=True)
class EpochEnd:
    """A trial finished an epoch: its stats, and its run so far (history, model)."""

    key: int
    stats: EpochStats
    result: TrainResult


@dataclass(frozen=True)
class Failed:
    """A trial stopped with an error: DivergedError (its loss became NaN), or an unexpected one."""

    key: int
    error: Exception


@dataclass(frozen=True)
class OutOfMemory:
    """A trial ran out of device memory (with the others of its fused bank, each its own event)."""

    key: int
    error: torch.OutOfMemoryError


Event = EpochEnd | Failed | OutOfMemory


def failure(key: int, error: Exception) -> Failed | OutOfMemory:
    return OutOfMemory(key, error) if isinstance(error, torch.OutOfMemoryError) else Failed(key, error)


class Engine(Protocol):
    """Trains the trials in flight of one process, each under the scheduler's key (its trial number).

    `admit` starts a run, `advance` trains until some run ends an epoch or fails (events, never raised),
    `release` drops a run. Runs train exactly as `mnist_arch.trainer.train` would train them alone."""

    name: str  # "separate" | "fused"
    # Called once each epoch's training steps are done, at the point where the engine's memory peaks
    # per trial; the scheduler measures the first trial's memory there.
    memory_probe: Callable[[], None] | None
    bank_steps: int  # fused engines: steps of banks, and of the members in them (0 for separate models)
    member_steps: int

    def admit(self, key: int, config: CandidateConfig, seed: int) -> None:
        """Start training `config` from scratch with `seed` (a failure comes back from `advance`)."""
        ...

    def advance(self) -> list[Event]:
        """Train the admitted trials until at least one ends an epoch or fails."""
        ...

    def release(self, key: int) -> None:
        """The trial trains no more (finished, pruned, or the search stops)."""
        ...

    @property
    def in_flight(self) -> int: ...
