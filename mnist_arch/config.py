"""The candidate config: one frozen object that fully describes a network and how it is trained.

`space` produces it, `mnist_arch` builds and trains from it, `search` stores it with every trial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2  # 2: stages and the wider recipe; version-1 configs (two blocks) still load
# Bounds of a config that can be built and trained at all: a small CNN for 28x28 images of ten digits.
MAX_CHANNELS = 1024
MAX_CONVS_BEFORE_POOL = 32
MAX_STAGES = 4
MIN_CLASSES, MAX_CLASSES = 10, 1000
MAX_ROTATION = 180.0  # +/- degrees; more repeats angles already covered
MAX_BATCH_SIZE = 60000
MAX_LR = 1000.0  # far above any useful lr (the space reaches 0.3): bounds what a config file may ask
MAX_KNOTS = 16
ORDERS = ("relu_bn", "bn_relu")
DROPOUT_PLACES = ("conv", "pool")
OPTIMIZERS = ("sgd", "adam", "adamw")
INITS = ("default", "xavier")
INPUT_SIDE = 28


class ConfigError(ValueError):
    """A config dict that does not describe a valid candidate."""


@dataclass(frozen=True)
class Stage:
    """A run of convs at one resolution, optionally opened by a 1x1 and closed by a maxpool.

    widths: output channels of each conv, in order.
    kernel: 3 (3x3 convs) or 1 (1x1 convs with their norm and ReLU, as before some designs' GAP).
    padded: pad 1 (the side is kept) or 0 (each conv takes 2 pixels off the side).
    pool: a 2x2 maxpool after the last conv (the side halves, rounded down).
    transition: a bare 1x1 conv (no norm, no ReLU) into widths[0] before the first 3x3, as in the
        seed's iterations 1 and 2.
    """

    widths: tuple[int, ...]
    padded: bool = True
    pool: bool = True
    transition: bool = False
    kernel: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(c) for c in self.widths))
        if self.kernel not in (1, 3):
            raise ConfigError(f"a stage's kernel is 1 or 3, got {self.kernel}")

    @property
    def shrink(self) -> int:
        """Pixels each conv takes off the side."""
        return 0 if self.padded or self.kernel == 1 else 2


@dataclass(frozen=True)
class ArchConfig:
    """A network of the family: stages of 3x3 convs, global average pooling, a 1x1 conv to the classes.

    stages: the stages in order (see Stage); the default is the seed's iteration 3.
    order: each 3x3 conv is followed by ReLU then BatchNorm2d ("relu_bn", the seed's tables) or by
        BatchNorm2d then ReLU ("bn_relu", most public designs).
    dropout: Dropout2d rate (0 = none).
    dropout_at: "conv" puts a Dropout2d after every 3x3 conv's norm/ReLU; "pool" after every maxpool
        that is followed by another stage.
    last_dropout: with dropout_at "conv", whether the last 3x3 conv gets one too.
    conv_bias: a bias on every 3x3 conv and transition (redundant before BatchNorm, but counted:
        some public designs keep it).
    head_bias: a bias on the final 1x1 conv.
    num_classes: outputs of the head.
    """

    stages: tuple[Stage, ...] = (
        Stage((8, 8, 8), padded=True, pool=True),
        Stage((12, 12, 12, 12, 12), padded=False, pool=True),
    )
    order: str = "relu_bn"
    dropout: float = 0.05
    dropout_at: str = "conv"
    last_dropout: bool = True
    conv_bias: bool = False
    head_bias: bool = False
    num_classes: int = 10

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        _require_finite(self)
        if not stages or len(stages) > MAX_STAGES:
            raise ConfigError(f"an architecture has 1 to {MAX_STAGES} stages, got {len(stages)}")
        for number, stage in enumerate(stages, start=1):
            if not stage.widths:
                raise ConfigError(f"stage {number} needs at least one conv")
            if len(stage.widths) > MAX_CONVS_BEFORE_POOL:
                raise ConfigError(
                    f"stage {number} has {len(stage.widths)} convs; at most {MAX_CONVS_BEFORE_POOL}"
                )
        widths = [w for stage in stages for w in stage.widths]
        if min(widths) < 1:
            raise ConfigError("every conv needs at least one channel")
        if max(widths) > MAX_CHANNELS:
            raise ConfigError(f"a conv has {max(widths):,} channels; at most {MAX_CHANNELS}")
        if stages[0].transition:
            raise ConfigError("the first stage cannot open with a 1x1 transition (the input has 1 channel)")
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.dropout_at not in DROPOUT_PLACES:
            raise ConfigError(
                f"dropout_at must be one of {', '.join(DROPOUT_PLACES)}, got {self.dropout_at!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not MIN_CLASSES <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(
                f"num_classes must be {MIN_CLASSES} to {MAX_CLASSES} (MNIST's labels are 0..9), "
                f"got {self.num_classes}"
            )
        side = INPUT_SIDE
        for number, stage in enumerate(stages, start=1):
            if stage.shrink:
                side -= stage.shrink * len(stage.widths)
                if side < 1:
                    raise ConfigError(
                        f"{len(stage.widths)} unpadded convs in stage {number} shrink the image below 1x1"
                    )
            if stage.pool:
                side //= 2
                if side < 1 and number < len(stages):
                    raise ConfigError(f"the maxpool after stage {number} shrinks the image below 1x1")
        if self.final_size < 1:
            raise ConfigError("the convs and pools shrink the image below 1x1")

    @classmethod
    def two_blocks(
        cls,
        block1: tuple[int, ...] = (8, 8, 8),
        block2: tuple[int, ...] = (12, 12, 12, 12, 12),
        *,
        transition: bool = False,
        pool_before_gap: bool = True,
        **rest: Any,
    ) -> ArchConfig:
        """The seed's shape: padded convs, a maxpool, an optional 1x1, unpadded convs, an optional pool."""
        stages = (
            Stage(tuple(block1), padded=True, pool=True),
            Stage(tuple(block2), padded=False, pool=pool_before_gap, transition=transition),
        )
        return cls(stages=stages, **rest)

    @property
    def is_two_block(self) -> bool:
        """Whether this is the seed's shape (what the fused engine and version-1 files describe)."""
        s = self.stages
        return (
            len(s) == 2
            and s[0].padded
            and s[0].pool
            and not s[1].padded
            and s[0].kernel == s[1].kernel == 3
            and self.order == "relu_bn"
            and self.dropout_at == "conv"
            and not self.conv_bias
            and not self.head_bias
        )

    @property
    def block1(self) -> tuple[int, ...]:
        """Widths of the first stage (before the first maxpool)."""
        return self.stages[0].widths

    @property
    def block2(self) -> tuple[int, ...]:
        """Widths of every conv after the first maxpool, all later stages together."""
        return tuple(w for stage in self.stages[1:] for w in stage.widths)

    @property
    def transition(self) -> bool:
        """Whether the second stage opens with a 1x1 transition."""
        return len(self.stages) > 1 and self.stages[1].transition

    @property
    def pool_before_gap(self) -> bool:
        """Whether the last stage closes with a maxpool."""
        return self.stages[-1].pool

    @property
    def final_size(self) -> int:
        """Side of the feature map that reaches global average pooling."""
        side = INPUT_SIDE
        for stage in self.stages:
            side -= stage.shrink * len(stage.widths)
            if stage.pool:
                side = side // 2 if side >= 2 else 0
        return side


@dataclass(frozen=True)
class TrainConfig:
    """How a candidate trains; every epoch sees the whole training pool once, in a fresh order.

    optimizer: "sgd" (momentum, optionally Nesterov), "adam" or "adamw" (betas 0.9, 0.999, eps 1e-8).
    lr: the learning rate the schedule scales (the peak of a one-cycle schedule).
    momentum: SGD momentum (0 = plain SGD); unused by Adam.
    nesterov: Nesterov momentum for SGD.
    weight_decay: L2 penalty added to the gradient (sgd, adam) or decoupled decay (adamw).
    batch_size: images per step; the last partial batch of an epoch is dropped.
    lr_step, lr_gamma, lr_decay_start: StepLR (when lr_knots is empty): the lr is multiplied by
        lr_gamma every lr_step epochs, counting from the 1-based epoch lr_decay_start.
    lr_knots: a piecewise-linear schedule instead: (epoch, factor) points, epoch 0 being the start of
        training; epoch e (1-based) trains at lr x the factor interpolated at e - 1, and after the last
        point at its factor. Warm-up and one-cycle schedules are such points.
    label_smoothing: cross-entropy label smoothing.
    init: "default" (PyTorch's) or "xavier" (Xavier-uniform conv weights, zero conv biases).
    rotation: random rotation, +/- degrees.
    translate: random shift, +/- this share of the image side, each axis.
    scale: random zoom by a factor in [1 - scale, 1 + scale].
    affine_p: share of images that get the rotation, shift and zoom (the rest train as they are).
    brightness, contrast: random brightness shift and contrast factor, +/- on the 0..1 pixel scale,
        applied to a share color_p of the images, clipped to 0..1.
    """

    optimizer: str = "sgd"
    lr: float = 0.04
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 128
    lr_step: int = 2
    lr_gamma: float = 0.2
    lr_decay_start: int = 8
    lr_knots: tuple[tuple[float, float], ...] = ()
    label_smoothing: float = 0.0
    init: str = "default"
    rotation: float = 7.0
    translate: float = 0.0
    scale: float = 0.0
    affine_p: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0
    color_p: float = 1.0

    def __post_init__(self) -> None:
        knots = tuple((float(x), float(y)) for x, y in self.lr_knots)
        object.__setattr__(self, "lr_knots", knots)
        _require_finite(self)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.lr <= 0 or self.batch_size < 1 or self.lr_step < 1 or self.lr_decay_start < 1:
            raise ConfigError("lr, batch_size, lr_step and lr_decay_start must be positive")
        if self.lr > MAX_LR:
            raise ConfigError(f"lr must be at most {MAX_LR:g}, got {self.lr:g}")
        if not 0.0 <= self.momentum < 1.0 or not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError("momentum must be in [0, 1) and lr_gamma in (0, 1]")
        if not 0.0 <= self.weight_decay <= 0.1:
            raise ConfigError(f"weight_decay must be 0 to 0.1, got {self.weight_decay:g}")
        if not 0 <= self.rotation <= MAX_ROTATION:
            raise ConfigError(f"rotation must be 0 to {MAX_ROTATION:g} degrees, got {self.rotation}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ConfigError(f"batch_size must be at most {MAX_BATCH_SIZE:,} (MNIST's training images)")
        for name in ("translate", "scale", "brightness", "contrast"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ConfigError(f"{name} must be 0 to 0.5, got {getattr(self, name)}")
        for name in ("affine_p", "color_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be 0 to 1, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if len(knots) > MAX_KNOTS:
            raise ConfigError(f"lr_knots has {len(knots)} points; at most {MAX_KNOTS}")
        for (x0, _), (x1, _) in zip(knots, knots[1:], strict=False):
            if x1 < x0:
                raise ConfigError("lr_knots must be in order of epoch")
        if any(x < 0 or x > 10_000 or not 0 <= y <= 1 for x, y in knots):
            raise ConfigError("lr_knots points are (epoch >= 0, factor in 0..1)")

    @property
    def schedule(self) -> str:
        return "knots" if self.lr_knots else "step"

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based `epoch`: StepLR from `lr_decay_start`, or the knots' line."""
        if self.lr_knots:
            return self.lr * _interpolate(self.lr_knots, epoch - 1)
        decays = max(0, epoch - self.lr_decay_start) // self.lr_step
        return self.lr * self.lr_gamma**decays

    @property
    def augments(self) -> bool:
        """Whether any augmentation beyond rotation is on."""
        return bool(self.translate or self.scale or self.brightness or self.contrast) or (
            self.rotation > 0 and self.affine_p < 1
        )


def _interpolate(knots: tuple[tuple[float, float], ...], x: float) -> float:
    if x <= knots[0][0]:
        return knots[0][1]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:], strict=False):
        if x <= x1:
            return y1 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return knots[-1][1]


@dataclass(frozen=True)
class CandidateConfig:
    """One candidate: its network and its training recipe."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        arch = dataclasses.asdict(self.arch)
        arch["stages"] = [_plain(stage) for stage in arch["stages"]]
        train = dataclasses.asdict(self.train)
        train["lr_knots"] = [list(knot) for knot in self.train.lr_knots]
        return {"schema_version": SCHEMA_VERSION, "arch": arch, "train": train}

    @classmethod
    def from_dict(cls, data: Any) -> CandidateConfig:
        """Inverse of `to_dict`; unknown keys and wrong types raise ConfigError naming the key.

        Version-1 configs (block1, transition, block2, pool_before_gap) load as the same network.
        """
        if not isinstance(data, dict):
            raise ConfigError("a config must be a JSON object with 'arch' and 'train'")
        _check_keys(data, {"schema_version", "arch", "train"}, "config")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version not in (1, SCHEMA_VERSION) or isinstance(version, bool):
            raise ConfigError(f"config schema_version {version!r} is not supported (1 or {SCHEMA_VERSION})")
        arch_data = data.get("arch", {})
        # A file without schema_version that names the two blocks was written for version 1.
        legacy = "schema_version" not in data and isinstance(arch_data, dict) and "stages" not in arch_data
        if legacy and _V1_ONLY_KEYS & set(arch_data):
            version = 1
        arch = _build_v1_arch(arch_data) if version == 1 else _build_arch(arch_data)
        train = _build(TrainConfig, data.get("train", {}), "train")
        return cls(arch=arch, train=train)


_V1_ONLY_KEYS = {"block1", "block2", "transition", "pool_before_gap"}
_V1_ARCH_KEYS = {
    "block1",
    "transition",
    "block2",
    "pool_before_gap",
    "dropout",
    "last_dropout",
    "num_classes",
}


def _build_v1_arch(data: Any) -> ArchConfig:
    if not isinstance(data, dict):
        raise ConfigError("'arch' must be an object")
    _check_keys(data, _V1_ARCH_KEYS, "arch")
    defaults = {"block1": [8, 8, 8], "block2": [12] * 5, "transition": False, "pool_before_gap": True}
    values = {**defaults, **data}
    for key in ("block1", "block2"):
        values[key] = _coerce(values[key], "tuple[int, ...]", f"arch.{key}")
    for key in ("transition", "pool_before_gap", "last_dropout"):
        if key in values:
            values[key] = _coerce(values[key], "bool", f"arch.{key}")
    if "dropout" in values:
        values["dropout"] = _coerce(values["dropout"], "float", "arch.dropout")
    if "num_classes" in values:
        values["num_classes"] = _coerce(values["num_classes"], "int", "arch.num_classes")
    try:
        return ArchConfig.two_blocks(**values)
    except ConfigError as error:
        raise ConfigError(f"arch: {error}") from None


def _build_arch(data: Any) -> ArchConfig:
    if not isinstance(data, dict):
        raise ConfigError("'arch' must be an object")
    data = dict(data)
    stages = data.pop("stages", None)
    if stages is None:
        return _build(ArchConfig, data, "arch")
    if not isinstance(stages, list) or not stages:
        raise ConfigError("'arch.stages' must be a non-empty list of objects")
    if len(stages) > MAX_STAGES:
        raise ConfigError(f"'arch.stages' has {len(stages)} stages; at most {MAX_STAGES}")
    built = tuple(_build(Stage, stage, f"arch.stages[{i}]") for i, stage in enumerate(stages))
    fields = {f.name for f in dataclasses.fields(ArchConfig)} - {"stages"}
    _check_keys(data, fields | {"stages"}, "arch")
    values = {
        name: _coerce(value, _field_type(ArchConfig, name), f"arch.{name}") for name, value in data.items()
    }
    try:
        return ArchConfig(stages=built, **values)
    except ConfigError as error:
        raise ConfigError(f"arch: {error}") from None


def _field_type(kind: type, name: str) -> str:
    return str(next(f.type for f in dataclasses.fields(kind) if f.name == name))


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
    if text.startswith("tuple[tuple"):
        if not isinstance(value, list) or not all(
            isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) for v in value
        ):
            raise ConfigError(f"'{key}' must be a list of [epoch, factor] pairs of numbers")
        return tuple((_finite(x, key), _finite(y, key)) for x, y in value)
    if text == "str":
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string")
        return value
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
        if not _is_number(value):
            raise ConfigError(f"'{key}' must be a number")
        return _finite(value, key)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any, key: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"'{key}' is too large for a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"'{key}' must be a finite number, got {number}")
    return number


def _require_finite(config: Any) -> None:
    """NaN passes every comparison check (NaN < 0 is False), so non-finite floats are refused first."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{item.name} must be a finite number, got {value}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
