"""`mnist-arch evaluate`: an export's test accuracy, and whether the data are the ones it was trained on."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mnist_arch.data import load_mnist, normalize
from mnist_arch.dataset import DatasetIdentity, describe, fingerprint_of
from mnist_arch.device import resolve_device
from mnist_arch.trainer import evaluate
from search.commands import SUMMARIES
from search.export.export import CONFIG, load_export


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help=SUMMARIES["evaluate"],
        description="Loads config.json and weights.pt from an export folder and measures the test set. "
        "On the data and the device type it was trained on, the result equals the recorded test accuracy "
        "exactly; on other data (the export's dataset fingerprint differs) it says so.",
    )
    parser.add_argument("--weights", required=True, metavar="DIR", help="export folder")
    parser.add_argument(
        "--device",
        default="recorded",
        help="recorded (the device type it trained on) | auto | cpu | cuda[:N]",
    )
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: $MNIST_ARCH_DATA, else ./data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    exported, model = load_export(Path(args.weights), torch.device("cpu"))
    recorded_device = exported.trained.get("device")
    spec = args.device
    if spec == "recorded":
        spec = recorded_device if recorded_device == "cpu" or torch.cuda.is_available() else "cpu"
    device = resolve_device(spec or "auto")
    mnist = load_mnist(args.data)
    # Same eval-mode model, same device type and same batches as the trainer's final measurement.
    accuracy = evaluate(
        model.to(device), normalize(mnist.test_images.to(device)), mnist.test_labels.to(device)
    )
    recorded = exported.accuracies.get("test_acc")
    same_device = recorded_device is None or recorded_device == device.type
    model_data = exported.dataset  # the export's record of its data: a dict, a fingerprint, or None
    same_data = compare_data(model_data, mnist.identity)
    comparable = recorded is not None and same_data is not False  # not a figure measured on other data
    if args.json:
        print(
            json.dumps(
                {
                    "test_acc": accuracy,
                    "recorded_test_acc": recorded,
                    "matches": recorded == accuracy if comparable else None,
                    "same_data": same_data,
                    "dataset": mnist.identity.fingerprint,
                    "recorded_dataset": fingerprint_of(model_data),
                    "device": device.type,
                    "recorded_device": recorded_device,
                }
            )
        )
        return 0
    correct = round(accuracy * len(mnist.test_labels))
    print(f"test accuracy {100 * accuracy:.2f}% ({correct:,} / {len(mnist.test_labels):,}) on {device.type}")
    if same_data is False:
        print(
            f"other data than the model's: evaluated on {mnist.identity.summary()}, the model was trained "
            f"and measured on {describe(model_data)}; its recorded test accuracy "
            f"({_pct(recorded)}) is not comparable"
        )
    elif recorded is not None:
        verdict = (
            "identical" if recorded == accuracy else f"differs by {100 * (accuracy - recorded):+.2f} points"
        )
        note = "" if same_device else f" (recorded on {recorded_device}: only that device type is bit-exact)"
        if same_data is None:
            note += f"; the data could not be compared ({CONFIG} records no dataset fingerprint)"
        print(f"recorded test accuracy {100 * recorded:.2f}%: {verdict}{note}")
    return 0


def _pct(value: float | None) -> str:
    return "not recorded" if value is None else f"{100 * value:.2f}%"


def compare_data(model_data: Mapping[str, Any] | str | None, current: DatasetIdentity) -> bool | None:
    """True or False when the export records its data's fingerprint, None when it cannot be compared."""
    recorded = fingerprint_of(model_data)
    return None if recorded is None else recorded == current.fingerprint
