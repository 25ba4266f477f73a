"""One ArchConfig -> one nn.Module, with its exact parameter count, receptive field and layer table.

The layer plan is the single source of truth: the builder, the count and the table all walk it, so the
count known before training is the count of the model that trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mnist_arch.config import ArchConfig

INPUT_SIDE = 28


@dataclass(frozen=True)
class Layer:
    kind: str  # Conv2d | ReLU | BatchNorm2d | Dropout2d | MaxPool2d | AdaptiveAvgPool2d
    in_channels: int = 0
    out_channels: int = 0
    kernel: int = 0
    padding: int = 0
    rate: float = 0.0
    bias: bool = False

    @property
    def params(self) -> int:
        if self.kind == "Conv2d":
            weights = self.in_channels * self.out_channels * self.kernel * self.kernel
            return weights + (self.out_channels if self.bias else 0)
        if self.kind == "BatchNorm2d":
            return 2 * self.out_channels
        return 0


def layer_plan(arch: ArchConfig) -> list[Layer]:
    """Every layer in forward order: per stage an optional 1x1, its 3x3 convs (each followed by ReLU and
    BatchNorm2d in the config's order, and Dropout2d where the config puts it), an optional maxpool;
    then global average pooling and a 1x1 conv to the classes."""
    plan: list[Layer] = []
    n_convs = sum(len(stage.widths) for stage in arch.stages)
    drop_each_conv = arch.dropout_at == "conv" and arch.dropout > 0
    seen = 0

    def conv_block(cin: int, cout: int, kernel: int, padding: int) -> None:
        nonlocal seen
        seen += 1
        plan.append(Layer("Conv2d", cin, cout, kernel, padding, bias=arch.conv_bias))
        norm_act = [Layer("ReLU", cout, cout), Layer("BatchNorm2d", cout, cout)]
        plan.extend(norm_act if arch.order == "relu_bn" else norm_act[::-1])
        if drop_each_conv and (arch.last_dropout or seen < n_convs):
            plan.append(Layer("Dropout2d", cout, cout, rate=arch.dropout))

    channels = 1
    for number, stage in enumerate(arch.stages, start=1):
        if stage.transition:
            plan.append(Layer("Conv2d", channels, stage.widths[0], 1, 0, bias=arch.conv_bias))
            channels = stage.widths[0]
        for width in stage.widths:
            conv_block(channels, width, stage.kernel, padding=1 if stage.padded and stage.kernel == 3 else 0)
            channels = width
        if stage.pool:
            plan.append(Layer("MaxPool2d", channels, channels, kernel=2))
            if arch.dropout_at == "pool" and arch.dropout > 0 and number < len(arch.stages):
                plan.append(Layer("Dropout2d", channels, channels, rate=arch.dropout))
    plan.append(Layer("AdaptiveAvgPool2d", channels, channels))
    plan.append(Layer("Conv2d", channels, arch.num_classes, 1, 0, bias=arch.head_bias))
    return plan


def count_params(arch: ArchConfig) -> int:
    """Exact number of parameters (BatchNorm affine included) of `build_model(arch)`."""
    return sum(layer.params for layer in layer_plan(arch))


def receptive_field(arch: ArchConfig) -> int:
    """Receptive field, in input pixels, of one unit of the map that reaches global average pooling."""
    field, jump = 1, 1
    for layer in layer_plan(arch):
        if layer.kind == "Conv2d":
            field += (layer.kernel - 1) * jump
        elif layer.kind == "MaxPool2d":
            field += (layer.kernel - 1) * jump
            jump *= layer.kernel
    return field


def pool_receptive_field(arch: ArchConfig) -> int:
    """Receptive field where the first maxpool sits (7 for three 3x3 convs)."""
    return 1 + 2 * len(arch.stages[0].widths)


class Net(nn.Module):
    """The layer plan as a Sequential; forward returns logits of shape (batch, classes)."""

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.arch = arch
        self.layers = nn.Sequential(*(_module(layer) for layer in layer_plan(arch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)


def build_model(arch: ArchConfig) -> Net:
    return Net(arch)


def _module(layer: Layer) -> nn.Module:
    if layer.kind == "Conv2d":
        return nn.Conv2d(
            layer.in_channels, layer.out_channels, layer.kernel, padding=layer.padding, bias=layer.bias
        )
    if layer.kind == "ReLU":
        return nn.ReLU()
    if layer.kind == "BatchNorm2d":
        return nn.BatchNorm2d(layer.out_channels)
    if layer.kind == "Dropout2d":
        return nn.Dropout2d(layer.rate)
    if layer.kind == "MaxPool2d":
        return nn.MaxPool2d(layer.kernel)
    return nn.AdaptiveAvgPool2d(1)


def conv_macs(arch: ArchConfig) -> int:
    """Multiply-accumulates of the model's convolutions for one image (forward pass)."""
    rows = layer_rows(arch)
    return sum(
        layer.in_channels * layer.out_channels * layer.kernel**2 * side * side
        for layer, (_, (_, side, _), _) in zip(layer_plan(arch), rows, strict=True)
        if layer.kind == "Conv2d"
    )


def layer_rows(arch: ArchConfig) -> list[tuple[str, tuple[int, int, int], int]]:
    """(name, output shape (C, H, W), params) per layer, numbered like torchsummary."""
    rows = []
    side = INPUT_SIDE
    for number, layer in enumerate(layer_plan(arch), start=1):
        if layer.kind == "Conv2d":
            side = side + 2 * layer.padding - layer.kernel + 1
        elif layer.kind == "MaxPool2d":
            side //= layer.kernel
        elif layer.kind == "AdaptiveAvgPool2d":
            side = 1
        rows.append((f"{layer.kind}-{number}", (layer.out_channels, side, side), layer.params))
    return rows


def summary_text(arch: ArchConfig) -> str:
    """Layer table in the seed write-up's (torchsummary) style."""
    rule = "-" * 64
    lines = [rule, f"{'Layer (type)':>25}  {'Output Shape':>25} {'Param #':>15}", "=" * 64]
    for name, (c, h, w), params in layer_rows(arch):
        lines.append(f"{name:>25}  {str([-1, c, h, w]):>25} {params:>15,}")
    total = count_params(arch)
    lines += [
        "=" * 64,
        f"Total params: {total:,}",
        f"Trainable params: {total:,}",
        "Non-trainable params: 0",
        rule,
    ]
    return "\n".join(lines)
