"""The parameter budget: reachable counts, the share of draws that fit, and the up-front check."""

from __future__ import annotations

import itertools
import random
import statistics
from dataclasses import dataclass

from mnist_arch.config import ArchConfig
from mnist_arch.errors import UsageError
from mnist_arch.model import count_params
from space.space import SearchSpace, build_arch, fitting_counts
from space.spec import Choice, Dimension, Fixed, IntRange


@dataclass(frozen=True)
class BudgetCheck:
    n_params: int
    max_params: int

    @property
    def fits(self) -> bool:
        return self.n_params <= self.max_params

    @property
    def excess(self) -> int:
        """Parameters over the budget (<= 0 when it fits): the trial's Optuna constraint value."""
        return self.n_params - self.max_params

    @property
    def reason(self) -> str:
        return f"over budget: {self.n_params:,} parameters > {self.max_params:,}"


def check_budget(arch: ArchConfig, max_params: int) -> BudgetCheck:
    return BudgetCheck(count_params(arch), max_params)


def reachable_params(space: SearchSpace) -> tuple[int, int]:
    """Smallest and largest parameter counts the space can build.

    Counts grow with every width, conv count, transition and bias, so the smallest model has the fewest
    and narrowest of each and the largest the most and widest; the shape choices that change which convs
    a map can hold (stages, padding, kernels, pools) are few enough to enumerate.
    """
    dims = space.dimensions
    shapes = [
        "stages",
        "padded_first",
        "padded_after_pool",
        "stage3_kernel",
        "second_pool",
        "pool_before_gap",
    ]
    growing = [
        "convs_before_pool",
        "convs_after_pool",
        "convs_stage3",
        "transition",
        "conv_bias",
        "head_bias",
    ]
    counts: list[int] = []
    for combo in itertools.product(*(_values(dims[name]) for name in shapes)):
        for edge in (min, max):
            structure = dict(zip(shapes, combo, strict=True))
            structure.update({name: edge(_values(dims[name])) for name in growing})
            convs = fitting_counts(structure)
            widths = [
                (edge(_values(dims[f"block{n}_width"])),) * count for n, count in enumerate(convs, start=1)
            ]
            counts.append(count_params(build_arch(structure, widths)))
    return min(counts), max(counts)


# "At the wall": within 1/16 of the budget below it (7,500 to 8,000 of 8,000), where the best models sit.
WALL = 0.9375


@dataclass(frozen=True)
class DrawStats:
    """How uniform random draws of a space meet a budget."""

    draws: int
    feasible: float  # share that fits
    at_wall: float  # share that fits and has at least WALL * max_params parameters
    median_feasible: float  # median parameter count of the draws that fit (0 if none)


def draw_stats(space: SearchSpace, max_params: int, draws: int = 1000, seed: int = 0) -> DrawStats:
    """Uniform random draws of `space` drawn for `max_params` (block2_fill included), counted."""
    rng, space = random.Random(seed), space.with_budget(max_params=max_params)
    counts = [count_params(space.random_config(rng).arch) for _ in range(draws)]
    fits = [n for n in counts if n <= max_params]
    at_wall = sum(n >= WALL * max_params for n in fits)
    return DrawStats(draws, len(fits) / draws, at_wall / draws, statistics.median(fits) if fits else 0.0)


def feasible_share(space: SearchSpace, max_params: int, draws: int = 1000, seed: int = 0) -> float:
    """Share of uniform random draws from the space (drawn for `max_params`) whose model fits it."""
    return draw_stats(space, max_params, draws, seed).feasible


def require_reachable(space: SearchSpace, max_params: int) -> None:
    """Reject a budget no model of the space can meet, before anything is stored or trained."""
    smallest, _ = reachable_params(space)
    if max_params < smallest:
        raise UsageError(
            f"--max-params {max_params:,} is below the smallest model this space can build "
            f"({smallest:,} parameters); raise it or narrow the widths in the space file"
        )


FEASIBILITY_DRAWS = 200


def require_feasible(space: SearchSpace, max_params: int) -> None:
    """Reject a budget that (almost) no draw of the space meets: the search would store over-budget draws
    until it gives up, after the study was created. Uniform draws stand in for the sampler's."""
    if draw_stats(space, max_params, FEASIBILITY_DRAWS).feasible == 0:
        smallest, _ = reachable_params(space)
        raise UsageError(
            f"none of {FEASIBILITY_DRAWS:,} random draws of this space fits --max-params {max_params:,} "
            f"(its smallest model has {smallest:,} parameters); raise the budget or narrow the space's "
            "widths and conv counts"
        )


def _values(dim: Dimension) -> list:
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Choice):
        return list(dim.choices)
    if isinstance(dim, IntRange):
        return [dim.low, dim.high] if dim.high - dim.low > 16 else list(range(dim.low, dim.high + 1))
    raise TypeError(f"not a discrete dimension: {dim}")
