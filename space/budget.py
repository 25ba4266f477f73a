"""The parameter budget: reachable counts, the share of draws that fit, and the up-front check."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from mnist_arch.config import ArchConfig
from mnist_arch.errors import UsageError
from mnist_arch.model import count_params
from space.space import SearchSpace
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

    Counts grow with every width, so the extremes sit at the narrowest / widest widths of some
    structure (conv counts, transition, pool); the structures are few enough to enumerate.
    """
    dims = space.dimensions
    smallest, largest = None, None
    for before, after, transition, pool in itertools.product(
        _values(dims["convs_before_pool"]),
        _values(dims["convs_after_pool"]),
        _values(dims["transition"]),
        _values(dims["pool_before_gap"]),
    ):
        for edge in (min, max):
            w1, w2 = edge(_values(dims["block1_width"])), edge(_values(dims["block2_width"]))
            arch = ArchConfig(
                block1=(w1,) * before, block2=(w2,) * after, transition=transition, pool_before_gap=pool
            )
            n = count_params(arch)
            smallest = n if smallest is None or n < smallest else smallest
            largest = n if largest is None or n > largest else largest
    assert smallest is not None and largest is not None
    return smallest, largest


def feasible_share(space: SearchSpace, max_params: int, draws: int = 1000, seed: int = 0) -> float:
    """Share of uniform random draws from the space whose model fits `max_params`."""
    rng = random.Random(seed)
    fits = sum(count_params(space.random_config(rng).arch) <= max_params for _ in range(draws))
    return fits / draws


def require_reachable(space: SearchSpace, max_params: int) -> None:
    """Reject a budget no model of the space can meet, before anything is stored or trained."""
    smallest, _ = reachable_params(space)
    if max_params < smallest:
        raise UsageError(
            f"--max-params {max_params:,} is below the smallest model this space can build "
            f"({smallest:,} parameters); raise it or narrow the widths in the space file"
        )


def _values(dim: Dimension) -> list:
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Choice):
        return list(dim.choices)
    if isinstance(dim, IntRange):
        return [dim.low, dim.high] if dim.high - dim.low > 16 else list(range(dim.low, dim.high + 1))
    raise TypeError(f"not a discrete dimension: {dim}")
