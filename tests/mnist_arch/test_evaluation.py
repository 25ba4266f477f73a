"""A run measures accuracies only where its Evaluation asks: validation at the decision epochs and the last,
test at the last (every epoch by default, and with test beside validation when asked)."""

from __future__ import annotations

from dataclasses import replace

import torch

from mnist_arch.iterations import ITERATIONS
from mnist_arch.trainer import EVERY_EPOCH, DeviceData, Evaluation, train


def test_which_epochs_measure_what() -> None:
    sparse = Evaluation(6, frozenset({2, 4}), test_with_val=False)
    assert [e for e in range(1, 7) if sparse.val_at(e)] == [2, 4, 6]
    assert [e for e in range(1, 7) if sparse.test_at(e)] == [6]
    with_test = Evaluation(6, frozenset({2}), test_with_val=True)
    assert [e for e in range(1, 7) if with_test.test_at(e)] == [2, 6]
    final = Evaluation.final_only(3)
    assert [(final.val_at(e), final.test_at(e)) for e in (1, 2, 3)] == [(False, False)] * 2 + [(True, True)]
    assert all(EVERY_EPOCH.val_at(e) and EVERY_EPOCH.test_at(e) for e in range(1, 30))


def _tiny() -> DeviceData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(384, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (384,), generator=generator)
    parts = [(images[i : i + 128], labels[i : i + 128]) for i in (0, 128, 256)]
    return DeviceData(*[tensor for part in parts for tensor in part])


def test_a_run_measures_only_the_asked_epochs_and_trains_the_same() -> None:
    config = ITERATIONS[2].config
    config = replace(config, train=replace(config.train, batch_size=64))
    data = _tiny()
    every = train(config, data, epochs=3, seed=1)
    at_two = Evaluation(3, frozenset({2}), test_with_val=False)
    sparse = train(config, data, epochs=3, seed=1, evaluation=at_two)
    assert [(e.val_acc is None, e.test_acc is None) for e in sparse.history] == [
        (True, True),
        (False, True),
        (False, False),
    ]
    assert all(e.val_acc is not None and e.test_acc is not None for e in every.history)
    # evaluating less changes nothing in the training: same losses, same final accuracies
    assert [e.train_loss for e in sparse.history] == [e.train_loss for e in every.history]
    assert (sparse.history[-1].val_acc, sparse.history[-1].test_acc) == (
        every.history[-1].val_acc,
        every.history[-1].test_acc,
    )
    assert sparse.history[0].eval_seconds < every.history[0].eval_seconds
