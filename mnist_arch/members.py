"""Fused-engine members: one candidate's training state between epochs, and how members form banks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mnist_arch.config import ArchConfig, CandidateConfig
from mnist_arch.model import Net, build_model, conv_macs
from mnist_arch.trainer import DeviceData, TrainResult, dropout_generator_after_weights


def fused_unsupported(config: CandidateConfig) -> str | None:
    """Why a FusedBank cannot train `config`, or None: banks are written for the seed's shape and recipe.

    A bank computes the seed's two-block layout (padded convs, a maxpool, an optional 1x1, unpadded
    convs, an optional maxpool; conv -> ReLU -> BatchNorm, Dropout2d after the convs, no biases) with
    SGD + StepLR and rotation only. Everything else trains on the separate engine.
    """
    recipe = config.train
    if not config.arch.is_two_block:
        return "the fused engine trains the seed's two-block layout only"
    if recipe.optimizer != "sgd" or recipe.nesterov or recipe.weight_decay:
        return "the fused engine trains plain SGD with momentum only"
    if recipe.lr_knots:
        return "the fused engine follows StepLR only"
    if recipe.augments or recipe.label_smoothing or recipe.init != "default":
        return "the fused engine trains with rotation only, no label smoothing, PyTorch's init"
    return None


@dataclass
class Member:
    """One candidate's whole training state, kept in its own model's layout between fused epochs."""

    config: CandidateConfig
    model: Net
    momentum: dict[str, torch.Tensor]  # SGD momentum buffer per parameter name of `model`
    data_generator: torch.Generator  # data order and rotation angles
    dropout_generator: torch.Generator
    batch: int
    epoch: int = 0  # epochs begun
    result: TrainResult = field(default_factory=TrainResult)

    @classmethod
    def start(cls, config: CandidateConfig, data: DeviceData, *, seed: int) -> Member:
        """Fresh weights and generators, seeded as `TrainingRun(config, data, seed=seed)` seeds its own."""
        reason = fused_unsupported(config)
        if reason is not None:
            raise ValueError(reason)
        device = data.train_x.device
        torch.manual_seed(seed)
        model = build_model(config.arch).to(device)
        dropout_generator = dropout_generator_after_weights(device)
        momentum = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        data_generator = torch.Generator(device=device).manual_seed(seed)
        batch = min(config.train.batch_size, len(data.train_y))
        member = cls(config, model, momentum, data_generator, dropout_generator, batch)
        member.result.model = model
        return member

    @property
    def bank_key(self) -> tuple[int, int]:
        """Members with equal keys can train in one bank: (batch size, convs after the pool)."""
        return (self.batch, len(self.config.arch.block2))


def padded_arch(archs: Sequence[ArchConfig]) -> ArchConfig:
    """The one architecture every member of a bank is computed as: the widest, deepest of each part."""
    transition = any(a.transition for a in archs)
    width2 = max(max(a.block2) for a in archs)
    if transition:  # an identity transition carries a member's block1 width into block2's
        width2 = max([width2] + [a.block1[-1] for a in archs if not a.transition])
    return ArchConfig.two_blocks(
        block1=(max(max(a.block1) for a in archs),) * max(len(a.block1) for a in archs),
        transition=transition,
        block2=(width2,) * len(archs[0].block2),
        pool_before_gap=any(a.pool_before_gap for a in archs),
        dropout=0.0,
    )


def group_members(members: Sequence[Member], max_size: int, max_padding: float = 1.5) -> list[list[Member]]:
    """Members split into banks of one bank key and at most `max_size` members each.

    Within a key, members are taken narrowest first, and a new bank starts where the next member would
    make the bank's padded convolutions cost over `max_padding` times what its members need alone:
    fewer, fuller banks save launches, but padding costs arithmetic.
    """
    by_key: dict[tuple[int, int], list[Member]] = {}
    for member in members:
        by_key.setdefault(member.bank_key, []).append(member)
    banks: list[list[Member]] = []
    for group in by_key.values():
        group.sort(key=lambda m: _width_order(m.config.arch))
        bank: list[Member] = []
        for member in group:
            grown = [*bank, member]
            archs = [m.config.arch for m in grown]
            too_padded = conv_macs(padded_arch(archs)) * len(grown) > max_padding * sum(map(conv_macs, archs))
            if bank and (len(grown) > max_size or too_padded):
                banks.append(bank)
                grown = [member]
            bank = grown
        banks.append(bank)
    return banks


def _width_order(arch: ArchConfig) -> tuple[int, int, int, bool]:
    # the convs before the pool run on 28x28 maps: their width and depth dominate a model's cost
    return (max(arch.block1), len(arch.block1), max(arch.block2), arch.transition)
