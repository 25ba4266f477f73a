"""The candidate config: one frozen object that fully describes a network and how it is trained.

`space` produces it, `mnist_arch` builds and trains from it, `search` stores it with every trial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
# Bounds of a config that can be built and trained at all: a small CNN for 28x28 images of ten digits.
MAX_CHANNELS = 1024
MAX_CONVS_BEFORE_POOL = 32
MIN_CLASSES, MAX_CLASSES = 10, 1000
MAX_ROTATION = 180.0  # +/- degrees; more repeats angles already covered
MAX_BATCH_SIZE = 60000


class ConfigError(ValueError):
    """A config dict that does not describe a valid candidate."""


@dataclass(frozen=True)
class ArchConfig:
    block1: tuple[int, ...] = (8, 8, 8)  # channels of each padded 3x3 conv before the first maxpool
    transition: bool = False  # 1x1 conv after the pool, from block1's width to block2's first width
    block2: tuple[int, ...] = (12, 12, 12, 12, 12)  # channels of each unpadded 3x3 conv after the pool
    pool_before_gap: bool = True  # 2x2 maxpool right before global average pooling
    dropout: float = 0.05  # Dropout2d rate after every conv's BatchNorm
    last_dropout: bool = True  # whether the last conv gets a Dropout2d too
    num_classes: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "block1", tuple(int(c) for c in self.block1))
        object.__setattr__(self, "block2", tuple(int(c) for c in self.block2))
        _require_finite(self)
        if not self.block1 or not self.block2:
            raise ConfigError("architecture needs at least one conv before and one after the pool")
        if len(self.block1) > MAX_CONVS_BEFORE_POOL:
            raise ConfigError(
                f"block1 has {len(self.block1)} convs; at most {MAX_CONVS_BEFORE_POOL} before the pool"
            )
        if min(self.block1 + self.block2) < 1:
            raise ConfigError("every conv needs at least one channel")
        widest = max(self.block1 + self.block2)
        if widest > MAX_CHANNELS:
            raise ConfigError(f"a conv has {widest:,} channels; at most {MAX_CHANNELS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not MIN_CLASSES <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(
                f"num_classes must be {MIN_CLASSES} to {MAX_CLASSES} (MNIST's labels are 0..9), "
                f"got {self.num_classes}"
            )
        if self.final_size < 1:
            raise ConfigError(f"{len(self.block2)} unpadded convs after the pool shrink the image below 1x1")

    @property
    def final_size(self) -> int:
        """Side of the feature map that reaches global average pooling."""
        side = 28 // 2 - 2 * len(self.block2)
        if self.pool_before_gap:
            side = side // 2 if side >= 2 else 0
        return side


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 0.04  # initial SGD learning rate
    momentum: float = 0.9
    batch_size: int = 128  # images per step; the last partial batch of an epoch is dropped
    lr_step: int = 2  # StepLR step size, in epochs
    lr_gamma: float = 0.2  # StepLR factor per step
    lr_decay_start: int = 8  # 1-based epoch StepLR starts counting from (1 = plain StepLR)
    rotation: float = 7.0  # random rotation of every training image, +/- degrees

    def __post_init__(self) -> None:
        _require_finite(self)
        if self.lr <= 0 or self.batch_size < 1 or self.lr_step < 1 or self.lr_decay_start < 1:
            raise ConfigError("lr, batch_size, lr_step and lr_decay_start must be positive")
        if not 0.0 <= self.momentum < 1.0 or not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError("momentum must be in [0, 1) and lr_gamma in (0, 1]")
        if not 0 <= self.rotation <= MAX_ROTATION:
            raise ConfigError(f"rotation must be 0 to {MAX_ROTATION:g} degrees, got {self.rotation}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ConfigError(f"batch_size must be at most {MAX_BATCH_SIZE:,} (MNIST's training images)")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based `epoch`: StepLR that starts counting at `lr_decay_start`."""
        decays = max(0, epoch - self.lr_decay_start) // self.lr_step
        return self.lr * self.lr_gamma**decays


@dataclass(frozen=True)
class CandidateConfig:
    arch: ArchConfig = field(default_factory=ArchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "arch": _plain(dataclasses.asdict(self.arch)),
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, data: Any) -> CandidateConfig:
        """Inverse of `to_dict`; unknown keys and wrong types raise ConfigError naming the key."""
        if not isinstance(data, dict):
            raise ConfigError("a config must be a JSON object with 'arch' and 'train'")
        _check_keys(data, {"schema_version", "arch", "train"}, "config")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(f"config schema_version {version!r} is not supported")
        arch = _build(ArchConfig, data.get("arch", {}), "arch")
        train = _build(TrainConfig, data.get("train", {}), "train")
        return cls(arch=arch, train=train)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown key '{where}.{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def _build(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"'{where}' must be an object")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    _check_keys(data, set(fields), where)
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _coerce(value, fields[name].type, f"{where}.{name}")
    try:
        return kind(**values)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    text = str(annotation)
    if text.startswith("tuple"):
        if not isinstance(value, list) or not all(_is_int(v) for v in value):
            raise ConfigError(f"'{key}' must be a list of integers")
        return tuple(value)
    if text == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false")
        return value
    if text == "int":
        if not _is_int(value):
            raise ConfigError(f"'{key}' must be an integer")
        return value
    if text == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"'{key}' is too large for a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"'{key}' must be a finite number, got {number}")
        return number
    return value


def _require_finite(config: Any) -> None:
    """NaN passes every comparison check (NaN < 0 is False), so non-finite floats are refused first."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{item.name} must be a finite number, got {value}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
