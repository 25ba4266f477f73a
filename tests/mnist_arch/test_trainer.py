"""The trainer on the CPU: it learns, it is repeatable, it stops when asked, rotation is right."""

from __future__ import annotations

import pytest
import torch

from mnist_arch import ITERATIONS, DeviceData, DivergedError, load_mnist, train
from mnist_arch.augment import BACKGROUND, rotate
from mnist_arch.config import CandidateConfig, TrainConfig


@pytest.fixture(scope="module")
def small_data(mnist_dir) -> DeviceData:
    return DeviceData.from_mnist(load_mnist(mnist_dir, subset=600), torch.device("cpu"))


def test_same_seed_same_result_and_it_learns(small_data) -> None:
    config = CandidateConfig(ITERATIONS[2].config.arch, TrainConfig(batch_size=32))
    first = train(config, small_data, epochs=1, seed=7)
    again = train(config, small_data, epochs=1, seed=7)
    other = train(config, small_data, epochs=1, seed=8)
    curve = [(e.train_loss, e.val_acc, e.test_acc) for e in first.history]
    assert curve == [(e.train_loss, e.val_acc, e.test_acc) for e in again.history]
    assert curve != [(e.train_loss, e.val_acc, e.test_acc) for e in other.history]
    assert first.history[-1].val_acc > 0.3  # well above chance (0.1) after 18 steps
    assert not first.graph  # CPU runs eagerly


def test_on_epoch_can_stop_training(small_data) -> None:
    seen = []
    result = train(
        ITERATIONS[2].config,
        small_data,
        epochs=5,
        seed=0,
        on_epoch=lambda stats: seen.append(stats.epoch) or True,
    )
    assert seen == [1] and result.stopped_early and len(result.history) == 1


def test_a_huge_learning_rate_diverges(small_data) -> None:
    recipe = TrainConfig(lr=1000.0, momentum=0.9, rotation=0.0, batch_size=8)  # the largest lr allowed
    with pytest.raises(DivergedError, match="loss became"):
        train(CandidateConfig(ITERATIONS[2].config.arch, recipe), small_data, epochs=2, seed=0)


def test_rotation_keeps_zero_degrees_and_turns_a_quarter() -> None:
    images = torch.randn(3, 1, 28, 28)
    assert torch.allclose(rotate(images, torch.zeros(3)), images, atol=1e-5)
    quarter = rotate(images, torch.full((3,), 90.0))
    turned = torch.rot90(images, k=1, dims=(2, 3))
    turned_back = torch.rot90(images, k=-1, dims=(2, 3))
    assert torch.allclose(quarter, turned, atol=1e-4) or torch.allclose(quarter, turned_back, atol=1e-4)
    corners = rotate(torch.full((1, 1, 28, 28), 3.0), torch.tensor([45.0]))
    assert corners[0, 0, 0, 0].item() == pytest.approx(BACKGROUND)  # uncovered corners are black
