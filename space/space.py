"""A search space: draws candidate configs from an Optuna trial (or at random) and maps configs back."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from mnist_arch.config import ArchConfig, CandidateConfig, TrainConfig
from space.spec import RULES, Choice, Dimension, Fixed, FloatRange, IntRange, SpaceSpec, load_spec

_ARCH_SCALARS = ("transition", "pool_before_gap", "last_dropout", "dropout")
_TRAIN_FIELDS = ("lr", "momentum", "batch_size", "lr_step", "lr_gamma", "lr_decay_start", "rotation")


@dataclass(frozen=True)
class SearchSpace:
    spec: SpaceSpec

    @classmethod
    def load(cls, path: str | Path | None = None) -> SearchSpace:
        return cls(load_spec(path))

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

    def suggest(self, trial: optuna.Trial) -> CandidateConfig:
        """Draw one candidate through Optuna's define-by-run API."""
        return self._draw(lambda name, dim: _suggest(trial, name, dim))

    def random_config(self, rng: random.Random) -> CandidateConfig:
        """Draw one candidate uniformly (log-uniformly on log dimensions), without Optuna."""
        return self._draw(lambda name, dim: _random_value(rng, dim))

    def _draw(self, pick: Callable[[str, Dimension], Any]) -> CandidateConfig:
        value = lambda name: pick(name, self.dimensions[name])  # noqa: E731
        n_before, n_after = value("convs_before_pool"), value("convs_after_pool")
        widths = {}
        for block, count in (("block1", n_before), ("block2", n_after)):
            dim = self.dimensions[f"{block}_width"]
            if self.spec.per_layer_widths:
                widths[block] = tuple(pick(f"{block}_width_{i}", dim) for i in range(1, count + 1))
            else:
                widths[block] = (pick(f"{block}_width", dim),) * count
        arch = ArchConfig(
            block1=widths["block1"],
            block2=widths["block2"],
            **{name: value(name) for name in _ARCH_SCALARS},
        )
        return CandidateConfig(arch, TrainConfig(**{name: value(name) for name in _TRAIN_FIELDS}))

    def params_for(self, config: CandidateConfig) -> dict[str, Any]:
        """Optuna parameter values that make `suggest` return `config` (fixed dimensions omitted)."""
        values = self._values_of(config)
        return {k: v for k, v in values.items() if not isinstance(self._dimension_of(k), Fixed)}

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
        return reasons

    def _values_of(self, config: CandidateConfig) -> dict[str, Any]:
        arch = config.arch
        values: dict[str, Any] = {
            "convs_before_pool": len(arch.block1),
            "convs_after_pool": len(arch.block2),
        }
        for block in ("block1", "block2"):
            widths = getattr(arch, block)
            if self.spec.per_layer_widths:
                values.update({f"{block}_width_{i}": w for i, w in enumerate(widths, start=1)})
            else:
                values[f"{block}_width"] = widths[0]
        values.update({name: getattr(arch, name) for name in _ARCH_SCALARS})
        values.update({name: getattr(config.train, name) for name in _TRAIN_FIELDS})
        return values

    def _dimension_of(self, param: str) -> Dimension:
        if param.startswith(("block1_width_", "block2_width_")):
            param = param.rsplit("_", 1)[0]
        return self.dimensions[param]


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
