"""The model family reproduces the seed's three iterations layer for layer."""

from __future__ import annotations

from tests.helpers import FIXTURES  # isort: skip

import re

import pytest
import torch

from mnist_arch import ITERATIONS, build_model, count_params, receptive_field
from mnist_arch.config import ArchConfig, CandidateConfig, ConfigError
from mnist_arch.model import conv_macs, layer_rows

TABLES = FIXTURES / "seed_layer_tables.md"


def published_rows(name: str) -> list[tuple[str, tuple[int, ...], int]]:
    section = TABLES.read_text().split(f"## {name}\n", 1)[1].split("## ", 1)[0]
    rows = re.findall(r"^\s*(\w+-\d+)\s+\[-1, ([\d, ]+)\]\s+([\d,]+)\s*$", section, re.M)
    return [(n, tuple(int(v) for v in shape.split(", ")), int(p.replace(",", ""))) for n, shape, p in rows]


@pytest.mark.parametrize("iteration", ITERATIONS, ids=lambda it: it.name)
def test_layer_table_matches_the_write_up(iteration) -> None:
    expected = published_rows(iteration.name)
    assert len(expected) > 30
    assert layer_rows(iteration.config.arch) == expected


@pytest.mark.parametrize("iteration", ITERATIONS, ids=lambda it: it.name)
def test_built_model_has_the_published_modules_shapes_and_counts(iteration) -> None:
    expected = published_rows(iteration.name)
    model = build_model(iteration.config.arch)
    modules = list(model.layers)
    assert [type(m).__name__ for m in modules] == [name.rsplit("-", 1)[0] for name, _, _ in expected]
    assert [sum(p.numel() for p in m.parameters()) for m in modules] == [p for _, _, p in expected]
    shapes = []
    record = lambda _module, _input, out: shapes.append(tuple(out.shape[1:]))  # noqa: E731
    hooks = [m.register_forward_hook(record) for m in modules]
    model.eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert shapes == [shape for _, shape, _ in expected]
    assert logits.shape == (2, 10)


def test_parameter_counts_are_the_published_totals() -> None:
    counts = {it.name: count_params(it.config.arch) for it in ITERATIONS}
    assert counts == {"iteration-1": 8088, "iteration-2": 8088, "iteration-3": 7560}
    for it in ITERATIONS:
        built = build_model(it.config.arch)
        assert count_params(it.config.arch) == sum(p.numel() for p in built.parameters())


def test_maxpool_sits_at_receptive_field_seven() -> None:
    from mnist_arch.model import pool_receptive_field

    assert {pool_receptive_field(it.config.arch) for it in ITERATIONS} == {7}
    # 3 convs (7) + pool (8, jump 2) + 5 convs (28) + pool (30)
    assert receptive_field(ITERATIONS[2].config.arch) == 30


def test_too_many_unpadded_convs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="below 1x1"):
        ArchConfig.two_blocks(block2=(8,) * 7)


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    config = ITERATIONS[0].config
    assert CandidateConfig.from_dict(config.to_dict()) == config
    data = config.to_dict()
    data["arch"]["widht"] = 3
    with pytest.raises(ConfigError, match="arch.widht"):
        CandidateConfig.from_dict(data)
    data = config.to_dict()
    data["train"]["lr"] = "fast"
    with pytest.raises(ConfigError, match="train.lr"):
        CandidateConfig.from_dict(data)


def test_step_lr_schedule_starts_at_the_configured_epoch() -> None:
    recipe = ITERATIONS[2].config.train  # lr 0.04, step 2, gamma 0.2, from epoch 8
    lrs = [recipe.lr_at(e) for e in range(1, 13)]
    assert lrs[:9] == [0.04] * 9
    assert lrs[9] == pytest.approx(0.04 * 0.2) and lrs[11] == pytest.approx(0.04 * 0.2**2)
    plain = ITERATIONS[0].config.train  # StepLR(step 7, gamma 0.5) from the first epoch
    assert [plain.lr_at(e) for e in (7, 8, 15)] == pytest.approx([0.19, 0.095, 0.0475])


def test_conv_arithmetic_follows_the_layer_table() -> None:
    # iteration 3 from its table: 1->8, 8->8, 8->8 at 28x28; 8->12 at 12x12, then 12->12 at 10, 8, 6, 4;
    # 12->10 at 1x1; 3x3 kernels except the last
    expected = 9 * 28 * 28 * (1 * 8 + 8 * 8 + 8 * 8) + 9 * (8 * 12 * 144 + 12 * 12 * (100 + 64 + 36 + 16))
    assert conv_macs(ITERATIONS[2].config.arch) == expected + 12 * 10
