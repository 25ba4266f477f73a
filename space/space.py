"""A search space: draws candidate configs from an Optuna trial (or at random) and maps configs back.

Two parameters are not dimensions of the space file but derived from them, so that one value means
the same thing for every structure and every epoch budget:

- `block2_fill` in [0, 1] (with `budget_fill = true`): block 2's width as a share of the widths that
  still fit the parameter budget once the structure and block 1 are drawn. The fitting widths
  low, low+1, .., widest split [0, 1] into equal bins and the fill picks its bin
  (index = floor(fill * n), fill = 1 -> the widest), so a uniform fill draws every fitting width
  equally often and fill ~ 1 is "at the budget wall" for every structure. `params_for` maps a width
  back to its bin's centre, (index + 0.5) / n. With `per_layer_widths = true` the fill sets the last
  conv's width; the convs before it keep plain draws.
- `lr_decay_at` (a dimension): StepLR starts counting at epoch 1 + round_half_up(lr_decay_at * epochs),
  so 0 is plain StepLR from the first epoch and 7/15 at 15 epochs is epoch 8.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from mnist_arch.config import ArchConfig, CandidateConfig, TrainConfig
from mnist_arch.model import count_params
from space.spec import RULES, Choice, Dimension, Fixed, FloatRange, IntRange, SpaceSpec, load_spec

FILL = "block2_fill"
DECAY = "lr_decay_at"
_FILL_RANGE = FloatRange(0.0, 1.0)
_ARCH_SCALARS = ("pool_before_gap", "last_dropout", "dropout")
_TRAIN_FIELDS = ("lr", "momentum", "batch_size", "lr_step", "lr_gamma", "rotation")


@dataclass(frozen=True)
class SearchSpace:
    """The space of a spec at a parameter budget and an epoch budget (0: the spec's own)."""

    spec: SpaceSpec
    max_params: int = 0
    epochs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_params", self.max_params or self.spec.max_params)
        object.__setattr__(self, "epochs", self.epochs or self.spec.epochs)

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, max_params: int | None = None, epochs: int | None = None
    ) -> SearchSpace:
        return cls(load_spec(path), max_params or 0, epochs or 0)

    def with_budget(self, max_params: int | None = None, epochs: int | None = None) -> SearchSpace:
        """The same space drawn for another parameter budget and/or epoch budget (None: keep)."""
        return replace(self, max_params=max_params or self.max_params, epochs=epochs or self.epochs)

    @property
    def dimensions(self) -> dict[str, Dimension]:
        return self.spec.dimensions

    @property
    def fixed_architecture(self) -> bool:
        """Whether every candidate has the same layers (only the training recipe is searched)."""
        return all(
            isinstance(dim, Fixed) or (isinstance(dim, Choice) and len(set(dim.choices)) == 1)
            for name, dim in self.dimensions.items()
            if RULES[name].group == "architecture"
        )

    @property
    def fills_block2(self) -> bool:
        """Whether block 2's width is drawn as `block2_fill` (on, and the width is searched)."""
        return self.spec.budget_fill and len(_ascending(self.dimensions["block2_width"])) > 1

    def suggest(self, trial: optuna.Trial) -> CandidateConfig:
        """Draw one candidate through Optuna's define-by-run API."""
        return self._draw(lambda name, dim: _suggest(trial, name, dim))

    def random_config(self, rng: random.Random) -> CandidateConfig:
        """Draw one candidate uniformly (log-uniformly on log dimensions), without Optuna."""
        return self._draw(lambda name, dim: _random_value(rng, dim))

    def block2_options(
        self, block1: tuple[int, ...], head: tuple[int, ...], count: int, transition: bool
    ) -> tuple[int, ...]:
        """Block-2 widths the fill maps onto: those of the dimension whose model fits the budget.

        `head` holds the per-layer widths before the last conv (empty with one width per block).
        The count grows with the width, so the fitting widths are a prefix of the ascending ones;
        when even the narrowest does not fit it is the only option (the draw is then rejected).
        """
        candidates = _ascending(self.dimensions["block2_width"])
        fitting: list[int] = []
        for width in candidates:
            block2 = head + (width,) if self.spec.per_layer_widths else (width,) * count
            arch = ArchConfig(block1=block1, block2=block2, transition=transition)
            if count_params(arch) > self.max_params:
                break
            fitting.append(width)
        return tuple(fitting) or candidates[:1]

    def _draw(self, pick: Callable[[str, Dimension], Any]) -> CandidateConfig:
        value = lambda name: pick(name, self.dimensions[name])  # noqa: E731
        # Structure and block 1 first: they decide how wide block 2 may be.
        n_before, n_after = value("convs_before_pool"), value("convs_after_pool")
        transition = value("transition")
        block1 = self._plain_widths(pick, "block1", n_before)
        if self.fills_block2:
            head = self._plain_widths(pick, "block2", n_after - 1) if self.spec.per_layer_widths else ()
            options = self.block2_options(block1, head, n_after, transition)
            width = options[fill_index(pick(FILL, _FILL_RANGE), len(options))]
            block2 = head + (width,) if self.spec.per_layer_widths else (width,) * n_after
        else:
            block2 = self._plain_widths(pick, "block2", n_after)
        arch = ArchConfig(
            block1=block1,
            block2=block2,
            transition=transition,
            **{name: value(name) for name in _ARCH_SCALARS},
        )
        train = {name: value(name) for name in _TRAIN_FIELDS}
        return CandidateConfig(
            arch, TrainConfig(lr_decay_start=decay_start(value(DECAY), self.epochs), **train)
        )

    def _plain_widths(self, pick: Callable[[str, Dimension], Any], block: str, count: int) -> tuple[int, ...]:
        dim = self.dimensions[f"{block}_width"]
        if self.spec.per_layer_widths:
            return tuple(pick(f"{block}_width_{i}", dim) for i in range(1, count + 1))
        return (pick(f"{block}_width", dim),) * count if count else ()

    def params_for(self, config: CandidateConfig) -> dict[str, Any]:
        """Optuna parameter values that make `suggest` return `config` (fixed dimensions omitted)."""
        values = self._values_of(config)
        params = {k: v for k, v in values.items() if not isinstance(self._dimension_of(k), Fixed)}
        if self.fills_block2:
            key, options = self._fill_key(config)
            width = params.pop(key)
            if width in options:
                params[FILL] = fill_for(options.index(width), len(options))
            else:  # not a point: the nearest one
                params[FILL] = 1.0 if width > options[-1] else 0.0
        return params

    def outside(self, config: CandidateConfig) -> list[str]:
        """Why `config` is not a point of this space; empty when it is."""
        reasons = []
        arch = config.arch
        if not self.spec.per_layer_widths:
            for block in ("block1", "block2"):
                if len(set(getattr(arch, block))) > 1:
                    reasons.append(f"{block} widths differ per layer but the space has one per block")
        for name, value in self._values_of(config).items():
            if not _holds(self._dimension_of(name), value):
                reasons.append(f"{name} = {value!r} is outside {self._dimension_of(name)}")
        start = config.train.lr_decay_start
        if decay_start(self._decay_fraction(start), self.epochs) != start:
            reasons.append(
                f"lr_decay_start = {start} is not reachable with {DECAY} {self.dimensions[DECAY]} "
                f"of {self.epochs} epochs"
            )
        if self.fills_block2:
            key, options = self._fill_key(config)
            width = arch.block2[-1]
            if width > options[-1] and _holds(self.dimensions["block2_width"], width):
                reasons.append(
                    f"{key} = {width} is wider than the {options[-1]} that fits "
                    f"{self.max_params:,} parameters with these layers"
                )
        return reasons

    def _fill_key(self, config: CandidateConfig) -> tuple[str, tuple[int, ...]]:
        """The width parameter the fill replaces, and the widths the fill maps onto."""
        arch, count = config.arch, len(config.arch.block2)
        if self.spec.per_layer_widths:
            key, head = f"block2_width_{count}", arch.block2[:-1]
        else:
            key, head = "block2_width", ()
        return key, self.block2_options(arch.block1, head, count, arch.transition)

    def _values_of(self, config: CandidateConfig) -> dict[str, Any]:
        arch = config.arch
        values: dict[str, Any] = {
            "convs_before_pool": len(arch.block1),
            "convs_after_pool": len(arch.block2),
            "transition": arch.transition,
        }
        for block in ("block1", "block2"):
            widths = getattr(arch, block)
            if self.spec.per_layer_widths:
                values.update({f"{block}_width_{i}": w for i, w in enumerate(widths, start=1)})
            else:
                values[f"{block}_width"] = widths[0]
        values.update({name: getattr(arch, name) for name in _ARCH_SCALARS})
        values.update({name: getattr(config.train, name) for name in _TRAIN_FIELDS})
        values[DECAY] = self._decay_fraction(config.train.lr_decay_start)
        return values

    def _decay_fraction(self, start: int) -> float:
        """A value of the lr_decay_at dimension that starts the decay at `start` where one does."""
        dim, exact = self.dimensions[DECAY], (start - 1) / self.epochs
        if isinstance(dim, Fixed):
            return dim.value
        if isinstance(dim, Choice):
            hits = [c for c in dim.choices if decay_start(c, self.epochs) == start]
            return hits[0] if hits else exact
        # Clamped into the range: a bound still maps to `start` when [start's bin] overlaps the range.
        return min(dim.high, max(dim.low, exact))

    def _dimension_of(self, param: str) -> Dimension:
        if param.startswith(("block1_width_", "block2_width_")):
            param = param.rsplit("_", 1)[0]
        return self.dimensions[param]


def decay_start(fraction: float, epochs: int) -> int:
    """1-based epoch StepLR starts counting from: 1 + fraction * epochs, rounded half up."""
    return 1 + math.floor(fraction * epochs + 0.5)


def fill_index(fill: float, n_options: int) -> int:
    """Which of `n_options` equal bins of [0, 1] `fill` falls in (1.0 -> the last)."""
    return min(int(fill * n_options), n_options - 1)


def fill_for(index: int, n_options: int) -> float:
    """The centre of bin `index`: the fill `params_for` gives, far from rounding at either edge."""
    return (index + 0.5) / n_options


def _ascending(dim: Dimension) -> tuple[int, ...]:
    if isinstance(dim, Fixed):
        return (dim.value,)
    if isinstance(dim, Choice):
        return tuple(sorted(dim.choices))
    assert isinstance(dim, IntRange)
    return tuple(range(dim.low, dim.high + 1))


def _suggest(trial: optuna.Trial, name: str, dim: Dimension) -> Any:
    if isinstance(dim, Fixed):
        return dim.value
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return trial.suggest_categorical(name, list(dim.choices))


def _random_value(rng: random.Random, dim: Dimension) -> Any:
    if isinstance(dim, Fixed):
        return dim.value
    if isinstance(dim, Choice):
        return rng.choice(dim.choices)
    if dim.log:
        value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
    else:
        value = rng.uniform(dim.low, dim.high)
    if isinstance(dim, IntRange):
        return min(dim.high, max(dim.low, round(value))) if dim.log else rng.randint(dim.low, dim.high)
    return value


def _holds(dim: Dimension, value: Any) -> bool:
    if isinstance(dim, Fixed):
        return value == dim.value or (
            isinstance(value, float) and math.isclose(value, dim.value, rel_tol=1e-9)
        )
    if isinstance(dim, Choice):
        return value in dim.choices
    return dim.low <= value <= dim.high
