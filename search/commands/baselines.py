"""`mnist-arch baselines`: the reference designs (the three iterations and the public ones), their counts,
published figures, sources, what the family does not copy exactly, and their layer tables."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from mnist_arch.model import count_params, layer_rows, receptive_field, summary_text
from mnist_arch.notation import describe
from mnist_arch.references import REFERENCES, Reference
from search.commands import SUMMARIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baselines", help=SUMMARIES["baselines"])
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.add_argument("--tables", action="store_true", help="print every reference's layer table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([_as_json(reference) for reference in REFERENCES], indent=2))
        return 0
    console = Console(highlight=False)
    for reference in REFERENCES:
        arch = reference.config.arch
        console.print(
            f"[bold]{reference.name}[/bold]: {count_params(arch):,} parameters, receptive field "
            f"{receptive_field(arch)}, {escape(describe(arch))}, {reference.epochs} epochs; published "
            f"{reference.published_note}"
        )
        console.print(f"  source: {escape(reference.source)}")
        for difference in reference.differences:
            console.print(f"  not copied exactly: {escape(difference)}")
        if args.tables or reference.is_iteration:
            console.print(summary_text(arch))
    return 0


def _as_json(reference: Reference) -> dict[str, Any]:
    arch = reference.config.arch
    return {
        "name": reference.name,
        "params": count_params(arch),
        "receptive_field": receptive_field(arch),
        "architecture": describe(arch),
        "epochs": reference.epochs,
        "published_test_acc": reference.published_best,
        "published_final_test_acc": reference.published_final,
        "best_epoch": reference.best_epoch,
        "source": reference.source,
        "differences": list(reference.differences),
        "config": reference.config.to_dict(),
        "layers": [
            {"layer": name, "output_shape": [-1, *shape], "params": params}
            for name, shape, params in layer_rows(arch)
        ],
    }
