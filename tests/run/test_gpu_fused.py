"""The fused engine on a CUDA GPU (skipped without one): the bank's step runs as one captured graph,
its members still train as alone (float64, where only rounding differs), every replay draws new
dropout masks, and a fused search runs to its count."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mnist_arch import DeviceData, train
from mnist_arch.fused import FusedBank, train_fused
from mnist_arch.members import Member
from search.run.fused import FusedEngine
from search.run.scheduler import run_search
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.trials import trained_count
from space.space import SearchSpace
from tests.run.test_fused import MIXED, curve, float64, losses, state, tiny_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


def cuda_data(images: int, *, double: bool) -> DeviceData:
    folder = os.environ.get("MNIST_ARCH_DATA")
    if not folder:
        pytest.skip("set MNIST_ARCH_DATA to a folder with the MNIST IDX files to run this test")
    return tiny_data(Path(folder), images=images, double=double, device="cuda")


def test_bank_graph_members_train_as_alone(deterministic_cudnn) -> None:
    with float64():
        data = cuda_data(1024, double=True)
        fused = train_fused(MIXED, data, epochs=2)
        alone = [train(config, data, epochs=2, seed=seed) for config, seed in MIXED]
    assert all(result.graph for result in fused) and all(result.graph for result in alone)
    for together, single in zip(fused, alone, strict=True):
        assert curve(together.history) == curve(single.history)
        assert losses(together.history) == pytest.approx(losses(single.history), rel=1e-9, abs=0)
        expected = state(single.model)
        for name, tensor in state(together.model).items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-8, msg=name)


def test_every_replay_draws_new_masks() -> None:
    data = cuda_data(4096, double=False)
    members = [Member.start(config, data, seed=seed) for config, seed in MIXED[:3]]
    bank = FusedBank(members, data)
    bank.begin_epoch()
    offsets = []
    while not bank.epoch_done:
        bank.step()
        offsets.append([m.dropout_generator.get_offset() for m in members])
    stats = bank.end_epoch()
    assert bank.graph
    for member_offsets in zip(*offsets[5:], strict=True):
        assert all(b > a for a, b in pairwise(member_offsets))
    assert all(s.val_acc > 0.3 for s in stats)  # one epoch of 4,096 images: they learn


def test_fused_search_on_cuda_counts_exactly() -> None:
    data = cuda_data(4096, double=False)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    ctx = TrialContext(SearchSpace.load(None), data, 2, 8000, "val", seed=0)
    stats = run_search(
        study, ctx, FusedEngine(data, max_bank=6), SearchSettings(trials=8, concurrency=6, epochs=2)
    )
    assert trained_count(study) == 8 and stats.model_epochs == 16
    assert stats.bytes_per_trial is not None and stats.bytes_per_trial > 0
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8 and all(t.user_attrs["cuda_graph"] for t in complete)
