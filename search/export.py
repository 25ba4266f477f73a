"""The export folder: config.json, weights.pt (a state_dict), summary.txt and the learning curve.

A folder is written completely or not at all: files go to a temporary sibling that is renamed into
place, so an interrupted export never leaves half a model behind.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from mnist_arch.errors import UsageError
from mnist_arch.model import Net, build_model
from mnist_arch.trainer import EpochStats
from search.artifacts import CURVE, SUMMARY, WEIGHTS, layer_summary
from search.config_file import ExportedConfig, load_config_file

CONFIG = "config.json"


def versions() -> dict[str, str]:
    """The versions that produced a set of weights, stored with them."""
    try:
        own = importlib.metadata.version("mnist-arch")
    except importlib.metadata.PackageNotFoundError:
        own = "unknown"
    return {"torch": torch.__version__, "mnist_arch": own}


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse a folder that holds anything (unless `force`) or a path that is a file; writes nothing."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} exists and is not empty; choose another folder or pass --force")


def write_export(
    out: Path,
    exported: ExportedConfig,
    weights: bytes,
    history: Sequence[EpochStats] = (),
    force: bool = False,
) -> list[str]:
    """Write the export folder; returns the file names written."""
    check_out_dir(out, force)
    files = {
        CONFIG: exported.to_json().encode(),
        WEIGHTS: weights,
        SUMMARY: layer_summary(exported.config).encode(),
    }
    if history:
        from search.plots import learning_curve_png

        files[CURVE] = learning_curve_png(history, title=exported.trained.get("source", "learning curve"))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would make the renamed export private
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        if out.is_dir() and any(out.iterdir()):  # --force: replace our files, keep the others
            for name in files:
                os.replace(staging / name, out / name)
        else:
            if out.is_dir():
                out.rmdir()
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return list(files)


def load_export(folder: Path, device: torch.device) -> tuple[ExportedConfig, Net]:
    """config.json and weights.pt of an export, as a model in eval mode on `device`."""
    if not folder.is_dir():
        raise UsageError(
            f"--weights {folder} is not a folder (expected an export with {CONFIG} and {WEIGHTS})"
        )
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise UsageError(f"{folder} has no {name}; export a trial or train a config into it first")
    exported = load_config_file(folder / CONFIG)
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file means the same to the user
        raise UsageError(f"{folder / WEIGHTS} is not a saved state_dict ({type(error).__name__})") from None
    model = build_model(exported.config.arch)
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        missing = sorted(set(expected) - set(state)) if isinstance(state, dict) else []
        detail = f"missing {missing[0]}" if missing else "different tensor names"
        raise UsageError(f"{folder / WEIGHTS} does not match {CONFIG}: {detail}")
    for key, tensor in expected.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != tensor.shape:
            shape = tuple(getattr(state[key], "shape", ()))
            raise UsageError(
                f"{folder / WEIGHTS} does not match {CONFIG}: {key} has shape {shape}, "
                f"the config needs {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    return exported, model.to(device).eval()
