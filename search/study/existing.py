"""Opening a study that must already exist (report, export, dashboard never create or migrate one).

The storage is looked at before Optuna opens it: a missing file, a folder, an empty file or another
program's database is refused with one line and left byte for byte as it was (Optuna's RDBStorage
would create its tables in it first and only then find no study).
"""

from __future__ import annotations

import optuna

from mnist_arch.errors import UsageError
from search.study.storage import (
    OPTUNA_TABLES,
    describe_tables,
    mask_url,
    open_storage,
    sqlite_path,
    storage_scheme,
    storage_tables,
)


def open_existing_storage(url: str) -> optuna.storages.RDBStorage:
    """Open `url` without creating or migrating anything; a UsageError unless it holds Optuna's tables."""
    if storage_scheme(url) == "sqlite":
        _check_sqlite_file(url)
    tables = storage_tables(url)
    if not tables >= OPTUNA_TABLES:
        raise no_study_error(url, describe_tables(tables))
    return open_storage(url, create=False)


def no_study_error(url: str, what: str | None = None) -> UsageError:
    detail = f" ({what})" if what else ""
    return UsageError(
        f"{mask_url(url)} holds no mnist-arch/Optuna study{detail}; run mnist-arch search with this "
        "--storage first, or pass the storage of an existing search"
    )


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def open_existing_study(url: str, name: str) -> optuna.Study:
    storage = open_existing_storage(url)
    names = study_names(storage)
    if not names:
        raise no_study_error(url, "Optuna's tables, no study in them")
    if name not in names:
        raise UsageError(f"no study '{name}' in {mask_url(url)} (studies there: {', '.join(names)})")
    return optuna.load_study(study_name=name, storage=storage)


def _check_sqlite_file(url: str) -> None:
    """Opening a SQLite path that is not a file would create one (or fail with a vague message)."""
    path = sqlite_path(url)
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"storage {mask_url(url)} is a folder ({path}), not a SQLite file")
    if not path.is_file():
        raise UsageError(f"storage {mask_url(url)} does not exist (no file {path}); run a search first")
