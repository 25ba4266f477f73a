"""`mnist-arch baselines`: the three hand-designed iterations, their counts and layer tables."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from mnist_arch.iterations import ITERATIONS
from mnist_arch.model import count_params, describe, layer_rows, receptive_field, summary_text
from search.commands import SUMMARIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baselines", help=SUMMARIES["baselines"])
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([_as_json(it) for it in ITERATIONS], indent=2))
        return 0
    console = Console()
    for it in ITERATIONS:
        arch = it.config.arch
        console.print(
            f"[bold]{it.name}[/bold]: {count_params(arch):,} parameters, receptive field "
            f"{receptive_field(arch)}, {describe(arch)}; published "
            f"{100 * it.published_test_acc:.2f}% ({it.published_note})"
        )
        console.print(summary_text(arch), highlight=False)
    return 0


def _as_json(it) -> dict:  # noqa: ANN001
    arch = it.config.arch
    return {
        "name": it.name,
        "params": count_params(arch),
        "receptive_field": receptive_field(arch),
        "architecture": describe(arch),
        "published_test_acc": it.published_test_acc,
        "config": it.config.to_dict(),
        "layers": [
            {"layer": name, "output_shape": [-1, *shape], "params": params}
            for name, shape, params in layer_rows(arch)
        ],
    }
