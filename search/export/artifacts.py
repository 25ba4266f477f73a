"""Per-trial files kept next to the study: weights, layer table and learning curve of every complete trial.

They live in an Optuna FileSystemArtifactStore in a folder derived from the storage URL
(sqlite:///runs/x.db -> runs/x.artifacts), which optuna-dashboard serves with --artifact-dir.
Weights are kept rather than recomputed on export because only the trained tensors reproduce the
recorded test accuracy exactly: retraining on a GPU (CUDA graphs, atomics) is not bit-for-bit repeatable.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from mnist_arch.config import CandidateConfig
from mnist_arch.errors import UsageError
from search.study.optuna_private import storage_of

if TYPE_CHECKING:  # torch and the model are imported where used: `dashboard` reads artifacts without them
    import torch

    from mnist_arch.trainer import EpochStats, TrainResult

WEIGHTS = "weights.pt"
SUMMARY = "summary.txt"
CURVE = "learning_curve.png"
# Given, not guessed: ".pt" guesses as an unrelated type and the dashboard would mislabel it.
MIMETYPES = {WEIGHTS: "application/octet-stream", SUMMARY: "text/plain", CURVE: "image/png"}


def artifact_dir_for(storage_url: str, override: str | None = None) -> Path | None:
    """The artifact folder of a storage: --artifacts, else <database name>.artifacts beside a SQLite file."""
    if override:
        return Path(override)
    if storage_url.startswith("sqlite"):
        path = storage_url.split(":///", 1)[-1]
        if not path or path == ":memory:" or "://" in path:
            return None
        return Path(path).with_suffix(".artifacts")
    name = urlsplit(storage_url).path.strip("/").split("/")[-1]
    return Path(f"{name}.artifacts") if name else None


class AtomicArtifactStore(FileSystemArtifactStore):
    """Optuna's file store, but a file appears whole or not at all: written to a temporary name beside
    it, then renamed. A full disk leaves no truncated artifact behind."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(base_path)
        self.folder = Path(base_path)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        target = self.folder / artifact_id
        fd, temporary = tempfile.mkstemp(prefix=f".{artifact_id}-", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as file:
                shutil.copyfileobj(content_body, file)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def open_artifact_store(folder: Path | None, *, create: bool) -> AtomicArtifactStore | None:
    """The store in `folder`; created when `create`, else None if the folder does not exist."""
    if folder is None:
        return None
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        return None
    return AtomicArtifactStore(folder)


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """The model's state_dict on the CPU, loadable with torch.load(weights_only=True)."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def layer_summary(config: CandidateConfig) -> str:
    from mnist_arch.model import receptive_field, summary_text

    return summary_text(config.arch) + f"\nReceptive field: {receptive_field(config.arch)} pixels\n"


def note_trial(trial: optuna.Trial, headline: str, config: CandidateConfig) -> None:
    """The dashboard note of a running trial, shown at the top of its page: the headline (what the trial is
    and its key figures), then the architecture and its layer table."""
    from optuna_dashboard import save_note

    from mnist_arch.notation import describe

    save_note(trial, f"{headline}\n\n**{describe(config.arch)}**\n\n```\n{layer_summary(config)}```\n")


def publish_trial(
    trial: optuna.Trial, config: CandidateConfig, result: TrainResult, store: FileSystemArtifactStore | None
) -> None:
    """Attach weights, layer table and learning curve to a running trial (frozen after)."""
    if store is None or result.model is None:
        return
    from search.results.plots import learning_curve_png  # matplotlib only where a curve is drawn

    files = {
        WEIGHTS: state_dict_bytes(result.model),
        SUMMARY: layer_summary(config).encode(),
        CURVE: learning_curve_png(result.history, title=f"trial {trial.number}"),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in files.items():
                path = Path(tmp) / name
                path.write_bytes(content)
                optuna.artifacts.upload_artifact(
                    artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=MIMETYPES[name]
                )
    except OSError as error:  # a full disk, a file size limit: the trial fails, no file is left half-written
        where = getattr(store, "folder", "the artifact folder")
        raise UsageError(
            f"cannot write trial {trial.number}'s files to {where}: "
            f"{error.strerror or error}; free space (or pass --artifacts DIR elsewhere) and run the command "
            "again to resume (the trial is marked failed)"
        ) from None


def trial_artifact(
    study: optuna.Study, trial: FrozenTrial, store: FileSystemArtifactStore | None, filename: str
) -> bytes | None:
    """The content of `trial`'s artifact named `filename`, or None when it has none."""
    if store is None:
        return None
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage_of(study))
    for meta in reversed(metas):  # the latest upload wins
        if meta.filename == filename:
            try:
                with store.open_reader(meta.artifact_id) as reader:
                    return reader.read()
            except ArtifactNotFound:
                where = Path(getattr(store, "_base_path", "")) / meta.artifact_id
                raise UsageError(
                    f"trial {trial.number}'s {filename} is recorded in the study but missing from the "
                    f"artifact folder: looked for {where}; pass --artifacts DIR if the "
                    "files were moved, or retrain its config with `mnist-arch train`"
                ) from None
    return None


def history_of(trial: FrozenTrial) -> list[EpochStats]:
    """Per-epoch accuracies recorded by the objective, as EpochStats (lr, loss, time unknown)."""
    from mnist_arch.trainer import EpochStats

    attrs = trial.user_attrs
    pairs = zip(attrs.get("val_curve", []), attrs.get("test_curve", []), strict=False)
    return [EpochStats(i, 0.0, 0.0, val, test, 0.0) for i, (val, test) in enumerate(pairs, start=1)]
