"""`mnist-arch space`: the dimensions, reachable parameter counts and the share that fits."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from search.commands.args import positive_int
from space.budget import feasible_share, reachable_params, require_reachable
from space.space import SearchSpace
from space.spec import RULES, Choice, Fixed, FloatRange

DRAWS = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="show the search space and how much fits the budget")
    parser.add_argument("--space", metavar="FILE", help="TOML file overriding the default space")
    parser.add_argument(
        "--max-params", type=positive_int, metavar="P", help="parameter budget (default: the space's, 8000)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.space)
    max_params = args.max_params or space.spec.max_params
    require_reachable(space, max_params)
    table = Table(title=f"search space ({space.spec.source})")
    for column in ("dimension", "values"):
        table.add_column(column)
    for name, dim in space.dimensions.items():
        table.add_row(f"{RULES[name].group}.{name}", _describe(dim))
    table.add_row("architecture.per_layer_widths", str(space.spec.per_layer_widths).lower())
    console = Console()
    console.print(table)
    smallest, largest = reachable_params(space)
    share = feasible_share(space, max_params, DRAWS)
    console.print(f"reachable parameter counts: {smallest:,} to {largest:,}")
    console.print(f"budget: {max_params:,} parameters; {100 * share:.1f}% of {DRAWS} random draws fit")
    return 0


def _describe(dim: object) -> str:
    if isinstance(dim, Fixed):
        return f"{dim.value} (fixed)"
    if isinstance(dim, Choice):
        return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in dim.choices)
    assert not isinstance(dim, (Fixed, Choice))
    kind = "float" if isinstance(dim, FloatRange) else "int"
    return f"{kind} {dim.low} .. {dim.high}" + (" (log)" if dim.log else "")
