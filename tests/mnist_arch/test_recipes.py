"""Training recipes: the optimizers follow PyTorch's formulas, augmentation is the run's own and bounded."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mnist_arch.augment import augment, draw_augmentation
from mnist_arch.config import CandidateConfig, TrainConfig
from mnist_arch.iterations import ITERATIONS
from mnist_arch.pixels import MEAN, STD
from mnist_arch.references import get_reference
from mnist_arch.trainer import DeviceData, TrainingRun, train

ITERATION_3 = ITERATIONS[2].config


def tiny_data(n: int = 256) -> DeviceData:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return DeviceData(images, labels, images[:64], labels[:64], images[:64], labels[:64])


@pytest.mark.parametrize(
    ("recipe", "optimizer"),
    [
        (dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4),
         lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)),
        (dict(optimizer="sgd", momentum=0.0),
         lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.0)),
        (dict(optimizer="adam", momentum=0.95, weight_decay=5e-5),
         lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.95, 0.999), weight_decay=5e-5)),
        (dict(optimizer="adamw", momentum=0.9, weight_decay=0.01),
         lambda p, lr: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.999), weight_decay=0.01)),
    ],
)  # fmt: skip
def test_each_optimizer_steps_as_torch_optim_does(recipe: dict, optimizer) -> None:
    config = replace(ITERATION_3, train=replace(TrainConfig(batch_size=32, rotation=0.0, lr=0.01), **recipe))
    config = replace(config, arch=replace(config.arch, dropout=0.0))
    data = tiny_data()
    run = TrainingRun(config, data, seed=3)
    reference = TrainingRun(config, data, seed=3)  # same weights and data order
    torch_optimizer = optimizer(reference.model.parameters(), 0.01)
    run.begin_epoch(1)
    reference.begin_epoch(1)
    for i in range(3):
        # From equal weights each step: one rounding difference cannot flip a ReLU and grow from there.
        with torch.no_grad():
            for mine, theirs in zip(run.model.parameters(), reference.model.parameters(), strict=True):
                mine.copy_(theirs)
        run.step()
        index = reference._order[i * 32 : (i + 1) * 32]
        torch_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference.model(data.train_x[index]), data.train_y[index])
        loss.backward()
        torch_optimizer.step()
        for mine, theirs in zip(run.model.parameters(), reference.model.parameters(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_augmentation_is_reproducible_and_independent_of_other_runs() -> None:
    config = get_reference("woolly-3762").config
    config = replace(
        config,
        arch=replace(config.arch, stages=config.arch.stages[:1]),
        train=replace(config.train, batch_size=64),
    )
    data = tiny_data()
    alone = train(config, data, epochs=2, seed=5)
    again = train(config, data, epochs=2, seed=5)
    assert [e.train_loss for e in alone.history] == [e.train_loss for e in again.history]
    other = train(config, data, epochs=2, seed=6)
    assert [e.train_loss for e in alone.history] != [e.train_loss for e in other.history]


def test_augmentation_draws_respect_shares_and_ranges() -> None:
    recipe = TrainConfig(
        rotation=7, translate=0.09, scale=0.09, affine_p=0.5, brightness=0.2, contrast=0.2, color_p=0.5
    )
    generator = torch.Generator().manual_seed(0)
    angles = (torch.rand(20000, generator=generator) * 2 - 1) * 7
    params = draw_augmentation(recipe, angles, generator)
    moved = params[:, 1] != 1
    assert 0.45 < moved.float().mean() < 0.55  # affine_p
    assert params[:, 1].min() >= 0.91 and params[:, 1].max() <= 1.09
    assert params[:, 2:4].abs().max() <= 0.09 and params[~moved, 0].abs().max() == 0
    recoloured = params[:, 4] != 1
    assert 0.45 < recoloured.float().mean() < 0.55  # color_p
    assert params[:, 5].abs().max() <= 0.2


def test_identity_augmentation_keeps_the_images_and_pixels_stay_in_range() -> None:
    images = (torch.rand(8, 1, 28, 28) - MEAN) / STD
    identity = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]]).repeat(8, 1)
    torch.testing.assert_close(augment(images, identity), images, atol=1e-5, rtol=0)
    bright = identity.clone()
    bright[:, 5] = 0.5  # brightness +0.5 on the 0..1 scale, then clipped
    pixels = augment(images, bright) * STD + MEAN
    assert pixels.max() <= 1 + 1e-6 and pixels.min() >= 0.5 - 1e-6


def test_rotation_only_recipes_train_exactly_as_before_the_wider_recipe() -> None:
    # The seed's recipe draws no augmentation parameters: its runs match configs written before them.
    assert not ITERATION_3.train.augments
    loaded = CandidateConfig.from_dict({"train": {"lr": 0.04}})
    assert loaded.train.optimizer == "sgd" and not loaded.train.augments and loaded.train.init == "default"
