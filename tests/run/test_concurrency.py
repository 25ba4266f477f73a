"""Concurrent trials on the CPU: runs interleaved in one process train exactly as alone, the loop keeps
K trials in flight, refills freed slots, counts exactly, and one trial's out-of-memory fails it alone."""

from __future__ import annotations

from tests.helpers import REPO  # isort: skip

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mnist_arch import ITERATIONS, DeviceData, TrainingRun, load_mnist, train
from search.cli import main
from search.run.fused import FusedEngine
from search.run.scheduler import run_search
from search.run.separate import SeparateEngine
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.trials import trained_count
from space.space import SearchSpace
from tests.search_procs import SMALL_SPACE

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

ITERATION_3 = ITERATIONS[2].config


@pytest.fixture(scope="module")
def tiny(mnist_dir) -> DeviceData:
    """400 training images (3 steps of 128); validation and test cut to 400 images to keep epochs cheap."""
    data = DeviceData.from_mnist(load_mnist(mnist_dir, subset=400), torch.device("cpu"))
    data.val_x, data.val_y = data.val_x[:400], data.val_y[:400]
    data.test_x, data.test_y = data.test_x[:400], data.test_y[:400]
    return data


def curve(history) -> list[tuple[float, float, float]]:
    return [(e.train_loss, e.val_acc, e.test_acc) for e in history]


def test_interleaved_runs_train_exactly_as_alone(tiny) -> None:
    alone = train(ITERATION_3, tiny, epochs=2, seed=11)
    runs = [TrainingRun(ITERATION_3, tiny, seed=s) for s in (11, 11, 12)]  # two copies and a neighbour
    for epoch in (1, 2):
        for run in runs:
            run.begin_epoch(epoch)
        while not all(run.epoch_done for run in runs):
            for run in runs:
                run.step()
        for run in runs:
            run.end_epoch()
    for copy in runs[:2]:
        assert curve(copy.result.history) == curve(alone.history)
        for name, tensor in alone.model.state_dict().items():
            assert torch.equal(copy.model.state_dict()[name], tensor), name
    assert curve(runs[2].result.history) != curve(alone.history)  # the neighbour is its own model


def make_ctx(tiny, epochs: int, space: SearchSpace | None = None) -> TrialContext:
    return TrialContext(space or SearchSpace.load(None), tiny, epochs, 8000, "val", seed=0)


def seed_family_space(folder: Path) -> SearchSpace:
    """The seed's layouts and recipe family: every draw is one a fused bank trains."""
    path = folder / "seed_family.toml"
    path.write_text(SMALL_SPACE)
    return SearchSpace.load(path)


def new_study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)


def engine_named(name: str, data: DeviceData, concurrency: int):
    return FusedEngine(data, max_bank=concurrency) if name == "fused" else SeparateEngine(data)


def search(study, ctx, engine, *, trials: int, concurrency: int, **callbacks):
    settings = SearchSettings(trials=trials, concurrency=concurrency, epochs=ctx.epochs)
    return run_search(study, ctx, engine, settings, **callbacks)


@pytest.mark.parametrize("engine", ["separate", "fused"])
def test_concurrent_search_counts_exactly_and_pruned_trials_free_their_slot(tiny, engine, tmp_path) -> None:
    # Every trial is below 99% after epoch 1: the threshold pruner stops each one there.
    study = new_study(optuna.pruners.ThresholdPruner(lower=0.99))
    done = []
    space = seed_family_space(tmp_path) if engine == "fused" else None
    engine = engine_named(engine, tiny, 3)
    ctx = make_ctx(tiny, epochs=3, space=space)
    stats = search(study, ctx, engine, trials=7, concurrency=3, on_trial_done=done.append)
    trained = [t for t in study.trials if "rejected" not in t.user_attrs]
    assert trained_count(study) == 7 and len(trained) == 7 and len(done) == 7
    assert stats.trained == 7 and stats.pruned == 7 and stats.max_in_flight == 3
    assert all(t.state == TrialState.PRUNED and t.user_attrs["epochs_run"] == 1 for t in trained)
    assert stats.model_epochs == 7
    # The 4th trained trial can only start once a pruned one has left its slot.
    fourth, first_freed = trained[3], min(t.datetime_complete for t in trained[:3])
    assert fourth.datetime_start >= first_freed
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    assert stats.rejected == len(rejected) and all(t.state == TrialState.PRUNED for t in rejected)


def test_iteration_3_seeds_concurrently_equal_sequential(tiny) -> None:
    """Five seeds of iteration 3 (one epoch): K=5 in one process gives each trial's sequential result."""
    values = []
    for concurrency in (1, 5):
        study = new_study(optuna.pruners.NopPruner())
        for _ in range(5):
            study.enqueue_trial({}, user_attrs={"baseline": "iteration-3"})
        ctx = make_ctx(tiny, epochs=1)
        stats = search(study, ctx, SeparateEngine(tiny), trials=5, concurrency=concurrency)
        assert stats.max_in_flight == concurrency
        values.append([t.value for t in study.trials])
    sequential, concurrent = values
    assert len(set(sequential)) > 1  # five different seeds
    assert concurrent == sequential  # exact on the CPU
    assert abs(sum(concurrent) / 5 - sum(sequential) / 5) <= 0.001  # the 0.1-point bound


class _OutOfMemoryRun(TrainingRun):
    """Runs out of device memory at its second step, as a too-large allocation would."""

    def step(self) -> None:
        if self.step_index == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        super().step()


class _OutOfMemoryEngine(SeparateEngine):
    """Trial 1 (seed 1) runs out of memory; the others train as usual."""

    def new_run(self, config, seed):
        return (_OutOfMemoryRun if seed == 1 else TrainingRun)(config, self.data, seed=seed)


def test_out_of_memory_fails_one_trial_alone(tiny) -> None:
    study = new_study(optuna.pruners.NopPruner())
    for _ in range(4):
        study.enqueue_trial({}, user_attrs={"baseline": "iteration-3"})
    ctx = make_ctx(tiny, epochs=1)
    stats = search(study, ctx, _OutOfMemoryEngine(tiny), trials=3, concurrency=3)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["fail_reason"] == "out of memory"
    assert stats.trained == 3 and trained_count(study) == 3


def test_search_cli_with_concurrency(tmp_path, mnist_dir) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["search", "--device", "cpu", "--storage", url, "--data", str(mnist_dir), "--subset", "300"]
    args += ["--concurrency", "3", "--epochs", "1", "--trials", "3", "--confirm-top", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "search.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "model-epochs/s, up to 3 trials in flight" in done.stdout
    study = optuna.load_study(study_name="mnist-arch", storage=url)
    assert trained_count(study) == 3
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.parametrize("bad", ["0", "two", "-3"])
def test_bad_concurrency_is_one_line(bad, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--concurrency", bad])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--concurrency" in err
