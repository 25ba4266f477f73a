"""Interleaved training of several runs gives each run exactly its result alone (CPU)."""

from __future__ import annotations

import torch

from mnist_arch import ITERATIONS, DeviceData, load_mnist, train, train_together
from mnist_arch.config import CandidateConfig, TrainConfig


def test_train_together_equals_training_alone(mnist_dir) -> None:
    data = DeviceData.from_mnist(load_mnist(mnist_dir, subset=256), torch.device("cpu"))
    fast = CandidateConfig(ITERATIONS[2].config.arch, TrainConfig(batch_size=64))
    other = CandidateConfig(ITERATIONS[0].config.arch, TrainConfig(batch_size=32, lr=0.02))
    jobs = [(fast, 0), (other, 1), (fast, 1)]
    seen = []
    together = train_together(jobs, data, epochs=1, in_flight=2, on_epoch=lambda i, s: seen.append(i))
    alone = [train(config, data, epochs=1, seed=seed) for config, seed in jobs]
    assert sorted(seen) == [0, 1, 2]
    for mixed, single in zip(together, alone, strict=True):
        assert [(e.train_loss, e.val_acc, e.test_acc) for e in mixed.history] == [
            (e.train_loss, e.val_acc, e.test_acc) for e in single.history
        ]
    assert together[0].history[0].val_acc != together[2].history[0].val_acc  # the seed matters
