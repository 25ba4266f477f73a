"""The engine contract, for both real engines on the CPU: admitted trials end epochs as events with their
run so far, a trial not released trains on, a released one stops, and a failure comes back as a typed
event (out of memory as its own type) with the trial dropped. Separate models train exactly as alone."""

from __future__ import annotations

import pytest
import torch

from mnist_arch import ITERATIONS, DeviceData, load_mnist, train
from mnist_arch.fused import FusedBank
from mnist_arch.trainer import TrainingRun
from search.run.engine import EpochEnd, OutOfMemory
from search.run.fused import FusedEngine
from search.run.separate import SeparateEngine

ITERATION_3 = ITERATIONS[2].config


@pytest.fixture(scope="module")
def tiny(mnist_dir) -> DeviceData:
    """256 training images (2 steps of 128); validation and test cut to 300 images."""
    data = DeviceData.from_mnist(load_mnist(mnist_dir, subset=256), torch.device("cpu"))
    data.val_x, data.val_y = data.val_x[:300], data.val_y[:300]
    data.test_x, data.test_y = data.test_x[:300], data.test_y[:300]
    return data


class _OutOfMemorySeparate(SeparateEngine):
    def new_run(self, config, seed):  # noqa: ANN001
        if seed == 9:
            raise torch.OutOfMemoryError("CUDA out of memory (allocating the model)")
        return TrainingRun(config, self.data, seed=seed)


class _OutOfMemoryFused(FusedEngine):
    def new_bank(self, members):  # noqa: ANN001
        if len(members) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory (allocating the bank)")
        return FusedBank(members, self.data)


ENGINES = {
    "separate": lambda data: SeparateEngine(data),
    "fused": lambda data: FusedEngine(data, max_bank=4),
}


def epoch_ends(engine, count: int) -> dict[int, EpochEnd]:  # noqa: ANN001
    """Advance until `count` trials have ended an epoch (all of them, in lockstep here)."""
    ended: dict[int, EpochEnd] = {}
    while len(ended) < count:
        events = engine.advance()
        assert events and all(isinstance(event, EpochEnd) for event in events)
        ended.update({event.key: event for event in events})
    return ended


@pytest.mark.parametrize("name", ENGINES)
def test_trials_train_on_until_released(tiny, name) -> None:
    engine = ENGINES[name](tiny)
    engine.admit(0, ITERATION_3, 5)
    engine.admit(1, ITERATION_3, 6)
    assert engine.in_flight == 2
    first = epoch_ends(engine, 2)
    assert [first[k].stats.epoch for k in (0, 1)] == [1, 1]
    assert all(event.result.history == [event.stats] for event in first.values())
    engine.release(0)
    assert engine.in_flight == 1
    second = epoch_ends(engine, 1)
    assert list(second) == [1] and second[1].stats.epoch == 2 and len(second[1].result.history) == 2
    engine.release(1)
    assert engine.in_flight == 0 and engine.advance() == []
    alone = train(ITERATION_3, tiny, epochs=2, seed=6)
    history = [x for e in second[1].result.history for x in (e.train_loss, e.val_acc, e.test_acc)]
    expected = [x for e in alone.history for x in (e.train_loss, e.val_acc, e.test_acc)]
    if name == "separate":
        assert history == expected  # exact on the CPU
    else:
        assert history == pytest.approx(expected, abs=0.02)  # float32 sums in another order
    assert (engine.bank_steps > 0) == (name == "fused")


def test_out_of_memory_is_a_typed_event_and_drops_the_trial(tiny) -> None:
    engine = _OutOfMemorySeparate(tiny)
    engine.admit(0, ITERATION_3, 9)
    engine.admit(1, ITERATION_3, 1)
    events = engine.advance()
    assert isinstance(events[0], OutOfMemory) and events[0].key == 0
    assert engine.in_flight == 1
    assert list(epoch_ends(engine, 1)) == [1]


def test_an_out_of_memory_bank_fails_its_members_alone(tiny) -> None:
    engine = _OutOfMemoryFused(tiny, max_bank=4)
    for key in range(3):
        engine.admit(key, ITERATION_3, key)
    events = engine.advance()
    assert sorted(event.key for event in events) == [0, 1, 2]
    assert all(isinstance(event, OutOfMemory) for event in events) and engine.in_flight == 0


def test_confirmation_runs_train_on_the_separate_engine_and_a_diverged_one_stops_alone(tiny) -> None:
    from mnist_arch.config import CandidateConfig, TrainConfig
    from search.results.confirmations import ConfirmJob
    from search.run.confirmation import _train_chunk

    wild = CandidateConfig(ITERATION_3.arch, TrainConfig(lr=1000.0, momentum=0.99, batch_size=64))
    chunk = [(ConfirmJob("wild", wild), 0), (ConfirmJob("iteration-3", ITERATION_3), 1)]
    seen = []
    finals = _train_chunk(chunk, tiny, 2, lambda job, seed, stats: seen.append((job.label, stats.epoch)))
    alone = train(ITERATION_3, tiny, epochs=2, seed=1)
    last = alone.history[-1]
    assert finals[0] is None and finals[1] is not None
    assert (finals[1].train_loss, finals[1].val_acc, finals[1].test_acc) == (
        last.train_loss,
        last.val_acc,
        last.test_acc,
    )
    assert ("iteration-3", 1) in seen and ("iteration-3", 2) in seen
