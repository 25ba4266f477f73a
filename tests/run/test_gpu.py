"""Concurrent trials on a CUDA GPU (skipped without one): graphs are captured, runs interleaved on their
own streams train like independent runs, one trial's real out-of-memory fails it alone, and the number
of trials in flight is capped by free memory."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mnist_arch import ITERATIONS, DeviceData, TrainingRun, load_mnist, train
from search.run.capacity import MEMORY_SHARE, Capacity, cap_for_memory
from search.run.scheduler import run_search
from search.run.separate import SeparateEngine
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.trials import trained_count
from space.space import SearchSpace

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ITERATION_3 = ITERATIONS[2].config
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def gpu_data() -> DeviceData:
    folder = os.environ.get("MNIST_ARCH_DATA")
    if not folder:
        pytest.skip("set MNIST_ARCH_DATA to a folder with the MNIST IDX files to run this test")
    return DeviceData.from_mnist(load_mnist(Path(folder), subset=10000), CUDA)


def test_the_step_runs_as_a_graph_and_dropout_masks_change(gpu_data) -> None:
    run = TrainingRun(ITERATION_3, gpu_data, seed=0)
    run.begin_epoch(1)
    offsets = []
    while not run.epoch_done:
        run.step()
        offsets.append(run.dropout_generator.get_offset())
    stats = run.end_epoch()
    assert run.result.graph
    # Each replay must advance the run's own generator: else every step would reuse one mask.
    after_capture = offsets[5:]
    assert all(b > a for a, b in pairwise(after_capture))
    assert stats.val_acc > 0.5  # one epoch of 10,000 images: it learns


def test_interleaved_runs_on_streams_equal_independent_runs(gpu_data, deterministic_cudnn) -> None:
    alone = [train(ITERATION_3, gpu_data, epochs=2, seed=seed) for seed in (3, 4)]
    assert all(result.graph for result in alone)
    runs = [TrainingRun(ITERATION_3, gpu_data, seed=seed) for seed in (3, 3, 4)]
    for epoch in (1, 2):
        for run in runs:
            run.begin_epoch(epoch)
        while not runs[0].epoch_done:
            for run in runs:
                run.step()
        for run in runs:
            run.end_epoch()
    assert all(run.result.graph for run in runs)

    def curve(result):
        return [(e.train_loss, e.val_acc, e.test_acc) for e in result.history]

    assert [curve(run.result) for run in runs] == [curve(alone[0]), curve(alone[0]), curve(alone[1])]
    assert curve(alone[0]) != curve(alone[1])


def new_study() -> optuna.Study:
    return optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())


class _GreedyRun(TrainingRun):
    """Asks the device for 32 TiB at its second step: a real CUDA out-of-memory error."""

    def step(self) -> None:
        if self.step_index == 1:
            self.hog = torch.empty(2**45, dtype=torch.uint8, device=self.device)
        super().step()


def test_out_of_memory_fails_one_trial_alone(gpu_data) -> None:
    study = new_study()
    for _ in range(4):
        study.enqueue_trial({}, user_attrs={"baseline": "iteration-3"})

    class GreedyEngine(SeparateEngine):
        def new_run(self, config, seed):
            return (_GreedyRun if seed == 1 else TrainingRun)(config, self.data, seed=seed)

    ctx = TrialContext(SearchSpace.load(None), gpu_data, 1, 8000, "val", seed=0)
    settings = SearchSettings(trials=3, concurrency=3, epochs=1)
    stats = run_search(study, ctx, GreedyEngine(gpu_data), settings)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["fail_reason"] == "out of memory"
    # in flight together when the OOM struck; the cap then drops to the trials still running
    assert trained_count(study) == 3 and stats.max_in_flight >= 2
    assert stats.bytes_per_trial is not None and stats.bytes_per_trial > 0


def test_trials_in_flight_are_capped_by_free_memory(gpu_data) -> None:
    limit = Capacity(CUDA, 10_000)
    assert limit.cap == 1  # until the first trial is measured
    run = TrainingRun(ITERATION_3, gpu_data, seed=0)
    run.begin_epoch(1)
    while not run.epoch_done:
        run.step()
    run.end_epoch()
    limit.measure()
    per_trial = limit.bytes_per_trial
    assert per_trial is not None and 1 << 20 < per_trial < 4 << 30
    free, _ = torch.cuda.mem_get_info(CUDA)
    assert 2 <= limit.cap <= 1 + MEMORY_SHARE * free / per_trial  # an H100 holds many
    # Take all but about six trials' worth of memory: the cap drops to what still fits.
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(CUDA)
    hog = torch.empty(free - 6 * per_trial, dtype=torch.uint8, device=CUDA)
    capped = cap_for_memory(10_000, per_trial, CUDA, in_flight=1)
    del hog
    assert 1 <= capped <= 4
