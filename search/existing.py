"""Opening a study that must already exist (report, export, dashboard never create one)."""

from __future__ import annotations

from pathlib import Path

import optuna

from mnist_arch.errors import UsageError
from search.storage import mask_url, open_storage


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """Open `url`, refusing a SQLite file that does not exist (opening would create an empty one)."""
    if url.startswith("sqlite:///"):
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).is_file():
            raise UsageError(f"storage {mask_url(url)} does not exist (no file {path}); run a search first")
    return open_storage(url)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def open_existing_study(url: str, name: str) -> optuna.Study:
    storage = open_existing_storage(url)
    names = study_names(storage)
    if name not in names:
        known = f"studies there: {', '.join(names)}" if names else "it holds no study"
        raise UsageError(f"no study '{name}' in {mask_url(url)} ({known})")
    return optuna.load_study(study_name=name, storage=storage)
