"""What may be searched: the default space, TOML overrides, sampling, and the parameter budget."""

from space.budget import (
    BudgetCheck,
    check_budget,
    feasible_share,
    reachable_params,
    require_reachable,
)
from space.space import SearchSpace
from space.spec import Choice, Dimension, Fixed, FloatRange, IntRange, SpaceSpec, load_spec

__all__ = [
    "BudgetCheck",
    "Choice",
    "Dimension",
    "Fixed",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "SpaceSpec",
    "check_budget",
    "feasible_share",
    "load_spec",
    "reachable_params",
    "require_reachable",
]
