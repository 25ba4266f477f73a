"""The separate engine: every trial its own TrainingRun (on CUDA its own graph and stream), all stepped
in turn, one batch each, so the kernels of many small models overlap on one GPU."""

from __future__ import annotations

from collections.abc import Callable

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import EVERY_EPOCH, DeviceData, Evaluation, TrainingRun
from search.run.engine import EpochEnd, Event, failure


class SeparateEngine:
    name = "separate"

    def __init__(
        self, data: DeviceData, evaluation: Evaluation = EVERY_EPOCH, *, compiled: bool = False
    ) -> None:
        self.data, self.evaluation, self.compiled = data, evaluation, compiled
        self.runs: dict[int, TrainingRun] = {}
        self.memory_probe: Callable[[], None] | None = None
        self.bank_steps = self.member_steps = 0
        self._events: list[Event] = []

    @property
    def in_flight(self) -> int:
        return len(self.runs)

    def new_run(self, config: CandidateConfig, seed: int) -> TrainingRun:
        return TrainingRun(config, self.data, seed=seed, evaluation=self.evaluation, compiled=self.compiled)

    def admit(self, key: int, config: CandidateConfig, seed: int) -> None:
        try:
            self.runs[key] = run = self.new_run(config, seed)
            run.begin_epoch(1)
        except Exception as error:  # noqa: BLE001 - out of memory on allocation, or raised on
            self._fail(key, error)

    def release(self, key: int) -> None:
        self.runs.pop(key, None)  # frees the run's graph and buffers before a new trial takes the slot

    def advance(self) -> list[Event]:
        for key, run in list(self.runs.items()):
            if run.epoch_done:  # ended an epoch and was not released: its next one
                try:
                    run.begin_epoch(run.epoch + 1)
                except Exception as error:  # noqa: BLE001
                    self._fail(key, error)
        while not self._events and self.runs:
            for key, run in list(self.runs.items()):
                try:
                    run.step()
                    if not run.epoch_done:
                        continue
                    stats = run.end_epoch()
                    if self.memory_probe is not None:
                        self.memory_probe()
                except Exception as error:  # noqa: BLE001 - diverged, out of memory, or raised on
                    self._fail(key, error)
                else:
                    self._events.append(EpochEnd(key, stats, run.result))
        events, self._events = self._events, []
        return events

    def _fail(self, key: int, error: Exception) -> None:
        self.runs.pop(key, None)
        self._events.append(failure(key, error))
