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

from mnist_arch.config import ArchConfig, CandidateConfig, Stage, TrainConfig
from mnist_arch.model import count_params
from space.spec import RULES, Choice, Dimension, Fixed, FloatRange, IntRange, SpaceSpec, load_spec

FILL = "block2_fill"  # block 2's width as a fill, with one width per block ("block2_fill_3": its 3rd conv)
DECAY = "lr_decay_at"
_FILL_RANGE = FloatRange(0.0, 1.0)
_ARCH_SCALARS = ("order", "dropout_at", "last_dropout", "dropout")
_TRAIN_FIELDS = (
    "optimizer",
    "init",
    "momentum",
    "weight_decay",
    "batch_size",
    "label_smoothing",
    "rotation",
    "translate",
    "scale",
    "affine_p",
    "brightness",
    "contrast",
    "color_p",
)
_STEP = ("lr_step", "lr_gamma")
_ONECYCLE = ("start_factor", "peak_at", "anneal_at", "anneal_factor", "tail_at", "tail_ratio")


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
    def fused_compatible(self) -> bool:
        """Whether every draw is a config the fused engine trains: the seed's two-block layout (any widths,
        conv counts, transition and pool) and its SGD + StepLR recipe family with rotation only."""
        dims = self.dimensions
        return all(set(_values_of_dimension(dims[name])) <= allowed for name, allowed in _FUSED_ONLY.items())

    def fills(self, block: str) -> bool:
        """Whether the widths of `block` (block1, block2, block3) are drawn as fills of the budget."""
        return self.spec.budget_fill and len(_ascending(self.dimensions[f"{block}_width"])) > 1

    @property
    def fills_block2(self) -> bool:
        """Whether block 2's widths are drawn as fills (on, and the width is searched)."""
        return self.fills("block2")

    def suggest(self, trial: optuna.Trial) -> CandidateConfig:
        """Draw one candidate through Optuna's define-by-run API."""
        return self._draw(lambda name, dim: _suggest(trial, name, dim))

    def random_config(self, rng: random.Random) -> CandidateConfig:
        """Draw one candidate uniformly (log-uniformly on log dimensions), without Optuna."""
        return self._draw(lambda name, dim: _random_value(rng, dim))

    def _positions(self, counts: list[int]) -> list[tuple[int, int]]:
        """(stage, conv) of every drawn width: one per conv, or one per stage."""
        per_layer = self.spec.per_layer_widths
        return [
            (n, i)
            for n, count in enumerate(counts, start=1)
            for i in range(1, (count if per_layer else 1) + 1)
        ]

    def _width_param(self, position: tuple[int, int]) -> str:
        number, i = position
        block = f"block{number}"
        kind = "fill" if self.fills(block) else "width"
        return f"{block}_{kind}_{i}" if self.spec.per_layer_widths else f"{block}_{kind}"

    def width_options(
        self,
        structure: dict[str, Any],
        counts: list[int],
        chosen: dict[tuple[int, int], int],
        position: tuple[int, int],
    ) -> tuple[int, ...]:
        """Widths a fill maps onto: those that still fit the budget with every later width at its low.

        The count grows with every width, so the fitting widths are a prefix of the ascending ones (found
        by bisection); when even the narrowest does not fit it is the only option (the draw is then
        rejected).
        """
        positions = self._positions(counts)
        later = positions[positions.index(position) + 1 :]
        base = dict(chosen)
        for other in later:
            base[other] = _ascending(self.dimensions[f"block{other[0]}_width"])[0]
        candidates = _ascending(self.dimensions[f"block{position[0]}_width"])

        def fits(width: int) -> bool:
            trial = {**base, position: width}
            return count_params(build_arch(structure, self._assemble(counts, trial))) <= self.max_params

        low, high = 0, len(candidates)  # candidates[:low] fit, candidates[high:] do not
        while low < high:
            middle = (low + high) // 2
            if fits(candidates[middle]):
                low = middle + 1
            else:
                high = middle
        return candidates[:low] or candidates[:1]

    def _assemble(self, counts: list[int], chosen: dict[tuple[int, int], int]) -> list[tuple[int, ...]]:
        if self.spec.per_layer_widths:
            return [
                tuple(chosen[(n, i)] for i in range(1, count + 1)) for n, count in enumerate(counts, start=1)
            ]
        return [(chosen[(n, 1)],) * count for n, count in enumerate(counts, start=1)]

    def _draw(self, pick: Callable[[str, Dimension], Any]) -> CandidateConfig:
        value = lambda name: pick(name, self.dimensions[name])  # noqa: E731
        structure = self._structure(value)
        counts = fitting_counts(structure)
        chosen: dict[tuple[int, int], int] = {}
        for position in self._positions(counts):
            block = f"block{position[0]}"
            name = self._width_param(position)
            if self.fills(block):
                options = self.width_options(structure, counts, chosen, position)
                chosen[position] = options[fill_index(pick(name, _FILL_RANGE), len(options))]
            else:
                chosen[position] = pick(name, self.dimensions[f"{block}_width"])
        widths = self._assemble(counts, chosen)
        arch = build_arch(structure, widths, **{name: value(name) for name in _ARCH_SCALARS})
        return CandidateConfig(arch, self._recipe(value))

    def _structure(self, value: Callable[[str], Any]) -> dict[str, Any]:
        """Everything but the widths and the scalars, in the order Optuna draws it."""
        stages = value("stages")
        structure = {
            "stages": stages,
            "padded_first": value("padded_first"),
            "convs_before_pool": value("convs_before_pool"),
            "convs_after_pool": value("convs_after_pool"),
            "transition": value("transition"),
            "padded_after_pool": value("padded_after_pool"),
            "pool_before_gap": value("pool_before_gap"),
            # before the widths: biases take room that the fills then do not hand out
            "conv_bias": value("conv_bias"),
            "head_bias": value("head_bias"),
        }
        if stages == 3:
            structure["convs_stage3"] = value("convs_stage3")
            structure["stage3_kernel"] = value("stage3_kernel")
            structure["second_pool"] = value("second_pool")
        return structure

    def _recipe(self, value: Callable[[str], Any]) -> TrainConfig:
        train = {name: value(name) for name in _TRAIN_FIELDS}
        if train["optimizer"] == "sgd":
            train["lr"] = value("lr")
            train["nesterov"] = value("nesterov")
        else:
            train["lr"] = value("adam_lr")
        if value("schedule") == "step":
            train.update({name: value(name) for name in _STEP})
            train["lr_decay_start"] = decay_start(value(DECAY), self.epochs)
        else:
            train["lr_knots"] = onecycle_knots({name: value(name) for name in _ONECYCLE}, self.epochs)
        return TrainConfig(**train)

    def params_for(self, config: CandidateConfig) -> dict[str, Any]:
        """Optuna parameter values that make `suggest` return `config` (fixed dimensions omitted).

        A width the budget does not leave room for maps to the nearest fill (0 or 1): not a point.
        """
        values, _ = self._values_of(config)
        return {k: v for k, v in values.items() if not isinstance(self._dimension_of(k), Fixed)}

    def outside(self, config: CandidateConfig) -> list[str]:
        """Why `config` is not a point of this space; empty when it is."""
        reasons = _shape_reasons(config.arch)
        if reasons:
            return reasons
        arch = config.arch
        if not self.spec.per_layer_widths:
            for number, stage in enumerate(arch.stages, start=1):
                if len(set(stage.widths)) > 1:
                    reasons.append(f"block{number} widths differ per layer but the space has one per block")
        if reasons:
            return reasons
        values, reasons = self._values_of(config)
        for name, value in values.items():
            dim = self._dimension_of(name)
            if not _holds(dim, value):
                reasons.append(f"{name} = {value!r} is outside {dim}")
        if reasons:
            return reasons
        redrawn = self._draw(lambda name, dim: values[name] if name in values else _any_value(dim))
        if redrawn != config:
            reasons.extend(_differences(config, redrawn, self))
        return reasons

    def _values_of(self, config: CandidateConfig) -> tuple[dict[str, Any], list[str]]:
        """The parameter values a draw of `config` takes (only the dimensions its branch draws), and
        the widths that no fill reaches."""
        arch, recipe = config.arch, config.train
        structure = _structure_of(arch)
        values: dict[str, Any] = dict(structure)
        counts = [len(stage.widths) for stage in arch.stages]
        actual = {
            (n, i): w for n, stage in enumerate(arch.stages, start=1) for i, w in enumerate(stage.widths, 1)
        }
        reasons: list[str] = []
        chosen: dict[tuple[int, int], int] = {}
        for position in self._positions(counts):
            width, block = actual[position], f"block{position[0]}"
            name = self._width_param(position)
            chosen[position] = width
            if not self.fills(block):
                values[name] = width
                continue
            options = self.width_options(
                structure, counts, {k: v for k, v in chosen.items() if k != position}, position
            )
            if width in options:
                values[name] = fill_for(options.index(width), len(options))
            else:
                values[name] = 1.0 if width > options[-1] else 0.0
                if _holds(self.dimensions[f"{block}_width"], width):
                    reasons.append(
                        f"{block} width {width} is wider than the {options[-1]} that fits "
                        f"{self.max_params:,} parameters with these layers"
                    )
                else:
                    reasons.append(f"{block} width {width} is outside {self.dimensions[f'{block}_width']}")
        values.update({name: getattr(arch, name) for name in _ARCH_SCALARS})
        values.update({name: getattr(recipe, name) for name in _TRAIN_FIELDS})
        if recipe.optimizer == "sgd":
            values["lr"], values["nesterov"] = recipe.lr, recipe.nesterov
        else:
            values["adam_lr"] = recipe.lr
        if recipe.lr_knots:
            values["schedule"] = "onecycle"
            values.update(onecycle_values(recipe.lr_knots, self.epochs))
        else:
            values["schedule"] = "step"
            values.update({name: getattr(recipe, name) for name in _STEP})
            values[DECAY] = self._decay_fraction(recipe.lr_decay_start)
        return values, reasons

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
        if "_fill" in param:
            return _FILL_RANGE
        if param.startswith(("block1_width_", "block2_width_", "block3_width_")):
            param = param.rsplit("_", 1)[0]
        return self.dimensions[param]


# Dimensions whose values the fused engine trains (mnist_arch.members.fused_unsupported).
_FUSED_ONLY: dict[str, set[Any]] = {
    "stages": {2},
    "padded_first": {True},
    "padded_after_pool": {False},
    "order": {"relu_bn"},
    "conv_bias": {False},
    "head_bias": {False},
    "dropout_at": {"conv"},
    "optimizer": {"sgd"},
    "nesterov": {False},
    "weight_decay": {0.0},
    "schedule": {"step"},
    "label_smoothing": {0.0},
    "init": {"default"},
    "translate": {0.0},
    "scale": {0.0},
    "brightness": {0.0},
    "contrast": {0.0},
    "affine_p": {1.0},
}


def _values_of_dimension(dim: Dimension) -> tuple[Any, ...]:
    """The values a dimension takes; a range stands for values the fused engine does not all train."""
    if isinstance(dim, Fixed):
        return (dim.value,)
    if isinstance(dim, Choice):
        return dim.choices
    return (dim.low, dim.high, object())


_SEED_STRUCTURE: dict[str, Any] = {
    "stages": 2,
    "padded_first": True,
    "transition": False,
    "padded_after_pool": False,
    "pool_before_gap": True,
}


def fitting_counts(structure: dict[str, Any]) -> list[int]:
    """Conv counts per stage, each cut to what the image side allows (a draw never fails on shape).

    Unpadded convs take 2 px each: a stage keeps at most (side - 1) // 2 of them (on a map under 3x3
    its convs are padded instead), and a maxpool on a 1x1 map is skipped. Only unpadded stages late in
    a deep draw are cut.
    """
    counts = [structure["convs_before_pool"], structure["convs_after_pool"]]
    if structure["stages"] == 3:
        counts.append(structure["convs_stage3"])
    side = 28
    for number, count in enumerate(counts, start=1):
        shrinks = _stage_shrinks(structure, number) and side >= 3
        if shrinks:
            counts[number - 1] = max(1, min(count, (side - 1) // 2))
            side -= 2 * counts[number - 1]
        if _stage_pools(structure, number) and side >= 2:
            side //= 2
    return counts


def _stage_shrinks(structure: dict[str, Any], number: int) -> bool:
    if number == 1:
        return not structure["padded_first"]
    if number == 3 and structure["stage3_kernel"] == 1:
        return False
    return not structure["padded_after_pool"]


def _stage_pools(structure: dict[str, Any], number: int) -> bool:
    if number == structure["stages"]:
        return structure["pool_before_gap"]
    return True if number == 1 else structure["second_pool"]


def build_arch(structure: dict[str, Any], widths: list[tuple[int, ...]], **scalars: Any) -> ArchConfig:
    """The architecture of a structure and its widths per stage."""
    stages = []
    side = 28
    for number, stage_widths in enumerate(widths, start=1):
        kernel = 1 if number == 3 and structure["stage3_kernel"] == 1 else 3
        shrinks = _stage_shrinks(structure, number) and side >= 3  # else padded, as _fitting_counts
        side -= 2 * len(stage_widths) if shrinks else 0
        pool = _stage_pools(structure, number) and side >= 2
        side = side // 2 if pool else side
        stages.append(
            Stage(
                tuple(stage_widths),
                padded=not shrinks and kernel == 3,
                pool=pool,
                transition=number == 2 and structure["transition"],
                kernel=kernel,
            )
        )
    biases = {"conv_bias": structure.get("conv_bias", False), "head_bias": structure.get("head_bias", False)}
    return ArchConfig(stages=tuple(stages), **biases, **scalars)


def _structure_of(arch: ArchConfig) -> dict[str, Any]:
    """The structure values a draw of `arch` takes (see _shape_reasons for what is not drawable)."""
    stages = arch.stages
    structure: dict[str, Any] = {
        "stages": len(stages),
        "padded_first": stages[0].padded,
        "convs_before_pool": len(stages[0].widths),
        "convs_after_pool": len(stages[1].widths) if len(stages) > 1 else 0,
        "transition": len(stages) > 1 and stages[1].transition,
        "padded_after_pool": len(stages) > 1 and stages[1].padded,
        "pool_before_gap": stages[-1].pool,
        "conv_bias": arch.conv_bias,
        "head_bias": arch.head_bias,
    }
    if len(stages) == 3:
        structure["convs_stage3"] = len(stages[2].widths)
        structure["stage3_kernel"] = stages[2].kernel
        structure["second_pool"] = stages[1].pool
        if stages[2].kernel == 3:
            structure["padded_after_pool"] = stages[1].padded
    return structure


def _shape_reasons(arch: ArchConfig) -> list[str]:
    """Why no structure of the default dimensions builds `arch`'s stages at all."""
    stages = arch.stages
    if len(stages) not in (2, 3):
        return [f"{len(stages)} stages; the space draws 2 or 3"]
    reasons = []
    if not stages[0].pool:
        reasons.append("the first stage has no maxpool")
    if any(stage.kernel != 3 for stage in stages[:2]):
        reasons.append("1x1 stages are drawn only third")
    if any(stage.transition for stage in stages[2:]):
        reasons.append("a 1x1 transition is drawn only before the second stage")
    return reasons


def _differences(config: CandidateConfig, redrawn: CandidateConfig, space: SearchSpace) -> list[str]:
    """What a draw at `config`'s values builds differently (a schedule between epochs, a cut count)."""
    reasons = []
    if config.arch != redrawn.arch:
        reasons.append(f"the space builds {redrawn.arch} from these values, not {config.arch}")
    if config.train.lr_knots != redrawn.train.lr_knots:
        reasons.append(
            f"lr_knots {config.train.lr_knots} are not one-cycle points of {space.epochs} epochs "
            f"(the space builds {redrawn.train.lr_knots})"
        )
    if config.train.lr_decay_start != redrawn.train.lr_decay_start:
        reasons.append(
            f"lr_decay_start = {config.train.lr_decay_start} is not reachable with {DECAY} "
            f"{space.dimensions[DECAY]} of {space.epochs} epochs"
        )
    if not reasons and config != redrawn:
        reasons.append("the space builds another config from these values")
    return reasons


def onecycle_knots(values: dict[str, float], epochs: int) -> tuple[tuple[float, float], ...]:
    """The one-cycle dimensions as lr_knots in epochs (shares rounded half up; a tail at the end dropped)."""
    at = lambda share: float(math.floor(share * epochs + 0.5))  # noqa: E731
    peak = at(values["peak_at"])
    anneal = max(peak, at(values["anneal_at"]))
    tail = max(anneal, at(values["tail_at"]))
    knots = [(0.0, values["start_factor"]), (peak, 1.0), (anneal, values["anneal_factor"])]
    if tail < epochs:
        knots.append((tail, values["anneal_factor"] * values["tail_ratio"]))
    knots.append((float(epochs), 0.0))
    return tuple(knots)


def onecycle_values(knots: tuple[tuple[float, float], ...], epochs: int) -> dict[str, float]:
    """The one-cycle dimensions that build `knots` at `epochs` where they do (see onecycle_knots)."""
    factors = [y for _, y in knots]
    positions = [x / epochs for x, _ in knots]
    values = {
        "start_factor": factors[0],
        "peak_at": positions[1] if len(knots) > 1 else 0.0,
        "anneal_at": positions[2] if len(knots) > 2 else 1.0,
        "anneal_factor": factors[2] if len(knots) > 2 else 0.0,
        "tail_at": 1.0,
        "tail_ratio": 0.0,
    }
    if len(knots) == 5:
        values["tail_at"] = positions[3]
        values["tail_ratio"] = factors[3] / factors[2] if factors[2] else 0.0
    return values


def _any_value(dim: Dimension) -> Any:
    if isinstance(dim, Fixed):
        return dim.value
    if isinstance(dim, Choice):
        return dim.choices[0]
    return dim.low


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
