"""`mnist-arch space`: the dimensions, reachable parameter counts, the share that fits and at the wall."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from search.commands import SUMMARIES
from search.commands.args import positive_int
from space.budget import WALL, draw_stats, reachable_params, require_reachable
from space.space import DECAY, SearchSpace, decay_start
from space.spec import RULES, Choice, Fixed, FloatRange

DRAWS = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help=SUMMARIES["space"])
    parser.add_argument("--space", metavar="FILE", help="TOML file overriding the default space")
    parser.add_argument(
        "--max-params", type=positive_int, metavar="P", help="parameter budget (default: the space's, 8000)"
    )
    parser.add_argument(
        "--epochs", type=positive_int, metavar="E", help="epochs per trial (default: the space's, 15)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.space, max_params=args.max_params, epochs=args.epochs)
    max_params = space.max_params
    require_reachable(space, max_params)
    table = Table(title=f"search space ({escape(space.spec.source)})")
    for column in ("dimension", "values"):
        table.add_column(column)
    for name, dim in space.dimensions.items():
        described = _describe(dim)
        if name == DECAY and not isinstance(dim, Choice):
            described += f" of {space.epochs} epochs: {_decay_epochs(space)}"
        if name.endswith("_width") and space.fills(name.removesuffix("_width")):
            described += ", drawn as a fill in [0, 1] of the widths that still fit"
        table.add_row(f"{RULES[name].group}.{name}", described)
    table.add_row("architecture.per_layer_widths", str(space.spec.per_layer_widths).lower())
    table.add_row("architecture.budget_fill", str(space.spec.budget_fill).lower())
    console = Console()
    console.print(table)
    smallest, largest = reachable_params(space)
    stats = draw_stats(space, max_params, DRAWS)
    console.print(f"reachable parameter counts: {smallest:,} to {largest:,}")
    console.print(
        f"budget: {max_params:,} parameters; of {DRAWS} random draws {100 * stats.feasible:.1f}% fit, "
        f"{100 * stats.at_wall:.1f}% at the wall ({int(WALL * max_params):,} to {max_params:,}); "
        f"median of those that fit: {stats.median_feasible:,.0f}"
    )
    return 0


def _decay_epochs(space: SearchSpace) -> str:
    dim = space.dimensions[DECAY]
    low, high = (dim.value, dim.value) if isinstance(dim, Fixed) else (dim.low, dim.high)
    first, last = decay_start(low, space.epochs), decay_start(high, space.epochs)
    return f"StepLR from epoch {first}" + (f" to {last}" if last != first else "")


def _describe(dim: object) -> str:
    if isinstance(dim, Fixed):
        return f"{dim.value} (fixed)"
    if isinstance(dim, Choice):
        return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in dim.choices)
    assert not isinstance(dim, (Fixed, Choice))
    kind = "float" if isinstance(dim, FloatRange) else "int"
    return f"{kind} {dim.low} .. {dim.high}" + (" (log)" if dim.log else "")
