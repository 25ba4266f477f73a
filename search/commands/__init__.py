"""One module per `mnist-arch` command; each has register(subparsers) and run(args).

The root parser lists every command with its summary without importing the command's module (most of them
import torch, which takes seconds): only the module of the command being run is imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SUMMARIES = {
    "search": "run or resume a search",
    "space": "show the search space and how much fits the budget",
    "baselines": "show the reference designs: the three iterations and the public ones",
    "bench": "time the trainer against the seed-style pipeline",
    "report": "write report.md and report.html: top models next to the three iterations",
    "export": "export a trial: config.json, weights.pt, summary.txt, model.pt2 (and model.onnx)",
    "train": "train one config from scratch and export it",
    "evaluate": "test accuracy of an exported model",
    "dashboard": "browse the studies in optuna-dashboard",
}


def load(name: str) -> ModuleType:
    """The module of command `name` (one of SUMMARIES)."""
    return importlib.import_module(f"search.commands.{name}")


__all__ = ["SUMMARIES", "load"]
