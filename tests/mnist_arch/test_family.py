"""The model family: stages, norm order, biases, dropout placement; version-1 configs; the references."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from mnist_arch.config import ArchConfig, CandidateConfig, ConfigError, Stage, TrainConfig
from mnist_arch.iterations import ITERATIONS
from mnist_arch.members import fused_unsupported
from mnist_arch.model import build_model, count_params, layer_plan
from mnist_arch.notation import describe
from mnist_arch.references import PUBLIC, REFERENCES, get_reference

V1_ITERATION_1 = {
    "schema_version": 1,
    "arch": {
        "block1": [8, 8, 8],
        "transition": True,
        "block2": [12, 12, 12, 12, 12],
        "pool_before_gap": True,
        "dropout": 0.05,
        "last_dropout": True,
        "num_classes": 10,
    },
    "train": {"lr": 0.19, "momentum": 0.9, "batch_size": 128, "lr_step": 7, "lr_gamma": 0.5,
              "lr_decay_start": 1, "rotation": 7.0},
}  # fmt: skip


def test_version_1_configs_load_as_the_same_network() -> None:
    loaded = CandidateConfig.from_dict(V1_ITERATION_1)
    assert loaded == ITERATIONS[0].config
    assert count_params(loaded.arch) == 8088
    # and a config written now says version 2 and reads back equal
    written = json.loads(json.dumps(loaded.to_dict()))
    assert written["schema_version"] == 2 and CandidateConfig.from_dict(written) == loaded
    with pytest.raises(ConfigError, match="unknown key 'arch.stages'"):
        CandidateConfig.from_dict({**V1_ITERATION_1, "arch": {**V1_ITERATION_1["arch"], "stages": []}})
    with pytest.raises(ConfigError, match="schema_version 3"):
        CandidateConfig.from_dict({**V1_ITERATION_1, "schema_version": 3})


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: r.name)
def test_every_reference_builds_with_its_published_parameter_count(reference) -> None:
    model = build_model(reference.config.arch)
    assert count_params(reference.config.arch) == reference.published_params
    assert sum(p.numel() for p in model.parameters()) == reference.published_params
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    again = CandidateConfig.from_dict(json.loads(json.dumps(reference.config.to_dict())))
    assert again == reference.config


def test_the_woolly_3762_layers_follow_its_table() -> None:
    arch = get_reference("woolly-3762").config.arch
    kinds = [layer.kind for layer in layer_plan(arch)]
    # conv -> BN -> ReLU, nine convs, two pools each followed by dropout, GAP, head
    assert kinds[:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert kinds.count("Conv2d") == 10 and kinds.count("MaxPool2d") == 2
    assert [kinds[i + 1] for i, kind in enumerate(kinds) if kind == "MaxPool2d"] == ["Dropout2d"] * 2
    assert kinds[-2:] == ["AdaptiveAvgPool2d", "Conv2d"]
    convs = [m for m in build_model(arch).modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.bias is not None for conv in convs)
    assert describe(arch, short=True) == "4×3 P 8×3p P 8×3p"


def test_order_and_dropout_place_change_the_layers_not_the_count() -> None:
    seed = ITERATIONS[2].config.arch
    swapped = replace(seed, order="bn_relu", dropout_at="pool")
    assert count_params(swapped) == count_params(seed) == 7560
    kinds = [layer.kind for layer in layer_plan(swapped)]
    assert kinds[1:3] == ["BatchNorm2d", "ReLU"] and kinds.count("Dropout2d") == 1
    assert kinds[1:3] != [layer.kind for layer in layer_plan(seed)][1:3]


def test_shapes_that_shrink_below_one_pixel_are_refused() -> None:
    with pytest.raises(ConfigError, match="below 1x1"):
        ArchConfig(stages=(Stage((8,) * 14, padded=False, pool=False),))
    with pytest.raises(ConfigError, match="transition"):
        ArchConfig(stages=(Stage((8,), transition=True),))
    with pytest.raises(ConfigError, match="kernel is 1 or 3"):
        Stage((8,), kernel=5)
    with pytest.raises(ConfigError, match="order"):
        ArchConfig(order="bn")


def test_the_fused_engine_takes_the_seed_family_only() -> None:
    assert all(fused_unsupported(it.config) is None for it in ITERATIONS)
    for reference in PUBLIC:
        assert fused_unsupported(reference.config) is not None, reference.name
    seed = ITERATIONS[2].config
    assert fused_unsupported(replace(seed, train=replace(seed.train, optimizer="adam")))
    assert fused_unsupported(replace(seed, train=replace(seed.train, translate=0.05)))


def test_recipe_bounds() -> None:
    with pytest.raises(ConfigError, match="lr must be at most"):
        TrainConfig(lr=1e308)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="in order"):
        TrainConfig(lr_knots=((5, 1.0), (2, 0.5)))
    with pytest.raises(ConfigError, match="lr_knots"):
        CandidateConfig.from_dict({"train": {"lr_knots": [[0, "a"]]}})


def test_knots_give_the_published_per_epoch_lr() -> None:
    recipe = get_reference("woolly-3762").config.train
    # the notebook's logged lr per epoch (1-based epochs 1, 3, 4, 9, 10, 15)
    logged = {1: 0.05, 3: 0.1, 4: 0.085, 9: 0.01, 10: 0.00875, 15: 0.001667}
    for epoch, lr in logged.items():
        assert recipe.lr_at(epoch) == pytest.approx(lr, abs=1e-6)
    assert recipe.lr_at(40) == 0.0
    step = ITERATIONS[2].config.train
    assert [step.lr_at(e) for e in (7, 8, 9, 10)] == pytest.approx([0.04, 0.04, 0.04, 0.008])
