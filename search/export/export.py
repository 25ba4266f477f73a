"""The export folder: config.json, weights.pt (a state_dict), summary.txt, the learning curve, and the
standalone programs model.pt2 and (with the `onnx` extra) model.onnx.

config.json states the input contract and the layers (search.export.config_file), so weights.pt can be used
with torch alone; the programs need not even that: they take raw pixels (search.export.standalone).
A folder is written completely or not at all: files go to a temporary sibling that is renamed into
place, so an interrupted export never leaves half a model behind, two exports into one new folder never
mix (the second is refused), and --force replaces the whole folder. config.json records the sha256 of
weights.pt (`weights_sha256`), which `load_export` checks; exports without it still load.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from mnist_arch.data import MEAN, STD
from mnist_arch.errors import UsageError
from mnist_arch.model import Net, build_model
from mnist_arch.regular_files import open_regular, read_at_most
from mnist_arch.trainer import EpochStats
from search.export.artifacts import CURVE, SUMMARY, WEIGHTS, layer_summary
from search.export.config_file import ExportedConfig, load_config_file
from search.export.output_paths import check_output_folder
from search.export.standalone import INPUT_DTYPE, INPUT_SHAPE, build_programs

CONFIG = "config.json"


def versions() -> dict[str, str]:
    """The versions that produced a set of weights, stored with them."""
    try:
        own = importlib.metadata.version("mnist-arch")
    except importlib.metadata.PackageNotFoundError:
        own = "unknown"
    return {"torch": torch.__version__, "mnist_arch": own}


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse a folder that holds anything (unless `force`), a path that is a file, or a place that
    cannot be written; writes nothing. Commands call it before any slow step."""
    check_output_folder(out, "--out", force=force)


def write_export(
    out: Path,
    exported: ExportedConfig,
    weights: bytes,
    history: Sequence[EpochStats] = (),
    force: bool = False,
) -> list[str]:
    """Write the export folder; returns the file names written."""
    check_out_dir(out, force)
    programs = build_programs(_model_from_bytes(exported, weights))
    exported = replace(
        exported, standalone=programs.description(), weights_sha256=hashlib.sha256(weights).hexdigest()
    )
    files = {
        CONFIG: exported.to_json().encode(),
        WEIGHTS: weights,
        SUMMARY: (layer_summary(exported.config) + contract_text(exported)).encode(),
        **programs.files,
    }
    if history:
        from search.results.plots import learning_curve_png

        files[CURVE] = learning_curve_png(history, title=exported.trained.get("source", "learning curve"))
    try:
        _write_atomically(out, files, force)
    except OSError as error:
        raise UsageError(f"cannot write the export to {out}: {error.strerror or error}") from None
    return list(files)


def contract_text(exported: ExportedConfig) -> str:
    """summary.txt's lines on how to feed the model, its programs and its data."""
    mean, std = exported.normalisation
    lines = [
        "",
        f"Input of weights.pt: float32 (N, 1, 28, 28) = (pixels / 255 - {mean}) / {std}, "
        "pixels the raw grey values 0-255",
    ]
    standalone = exported.standalone or {}
    for name in standalone.get("files", []):
        lines.append(
            f"{name}: {INPUT_DTYPE} ({', '.join(map(str, INPUT_SHAPE))}) raw pixels 0-255 -> logits "
            "(N, classes); the normalisation is inside"
        )
    for name, why in standalone.get("skipped", {}).items():
        lines.append(f"{name}: {why}")
    lines.append(f"Dataset: {_dataset_text(exported.dataset)}")
    return "\n".join(lines) + "\n"


def _dataset_text(dataset: dict | str | None) -> str:
    if dataset is None:
        return "not recorded (config.json has no `dataset`)"
    if isinstance(dataset, str):
        return f"fingerprint {dataset}"
    return f"{dataset.get('name', 'unknown')}, fingerprint {dataset.get('fingerprint', 'unknown')}"


def _model_from_bytes(exported: ExportedConfig, weights: bytes) -> Net:
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model = build_model(exported.config.arch)
    model.load_state_dict(state)
    return model.eval()


def _write_atomically(out: Path, files: dict[str, bytes], force: bool) -> None:
    """Write `files` into a temporary sibling, then rename it to `out`: the folder appears whole or not at
    all. Without `force` an `out` that another export filled meanwhile is refused (a rename never replaces
    a folder that holds files); with `force` the whole old folder is replaced, so no file of another model
    stays beside the new config."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would make the renamed export private
    old: Path | None = None
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        if force and out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            os.replace(out, old / out.name)
        try:
            os.rename(staging, out)  # replaces an empty folder; fails on one that holds files
        except OSError as error:
            if old is not None:
                os.replace(old / out.name, out)  # put the old export back
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise UsageError(
                    f"--out {out} was filled by another export while this one ran; nothing written: "
                    "choose another folder or pass --force"
                ) from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


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
    if exported.normalisation != (MEAN, STD):
        mean, std = exported.normalisation
        raise UsageError(
            f"{folder / CONFIG} records input mean {mean} and std {std}, but this version of mnist-arch "
            f"normalises with {MEAN} and {STD}; run the export's model.pt2, which carries its own"
        )
    weights = _read_weights(folder / WEIGHTS)
    if exported.weights_sha256 is not None:
        actual = hashlib.sha256(weights).hexdigest()
        if actual != exported.weights_sha256:
            raise UsageError(
                f"{folder / WEIGHTS} is not the file exported with {CONFIG}: its sha256 is {actual[:16]}..., "
                f"{CONFIG} records {exported.weights_sha256[:16]}...; export the model again"
            )
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
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


MAX_WEIGHTS_BYTES = 1 << 30  # the models have tens of thousands of parameters: far below a GiB


def _read_weights(path: Path) -> bytes:
    try:
        with open_regular(path, "weights") as file:
            weights = read_at_most(file, MAX_WEIGHTS_BYTES)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    if len(weights) > MAX_WEIGHTS_BYTES:
        raise UsageError(
            f"{path} is over {MAX_WEIGHTS_BYTES >> 30} GiB: not the weights of an exported model"
        )
    return weights
