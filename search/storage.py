"""Opening an Optuna storage from a URL, with passwords kept out of every message."""

from __future__ import annotations

import re

import optuna

from mnist_arch.errors import UsageError

DEFAULT_STORAGE = "sqlite:///mnist_arch.db"

_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)", re.I)


def mask_url(text: str) -> str:
    """Replace the password of any URL in `text` with ***."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage (SQLite, PostgreSQL, MySQL) for `url`; a clear UsageError if it cannot open."""
    if "://" not in url:
        raise UsageError(
            f"--storage {mask_url(url)!r} is not a storage URL; use e.g. sqlite:///mnist_arch.db "
            "or postgresql://user:password@host/db"
        )
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as error:  # noqa: BLE001 - every failure to open means the same to the user
        reason = str(getattr(error, "orig", None) or error.__cause__ or error).strip().splitlines()
        reason_text = reason[0] if reason else type(error).__name__
        raise UsageError(
            f"cannot open storage {mask_url(url)}: {mask_url(reason_text)}; check the URL, "
            "that the database server runs and that the folder of a SQLite file exists"
        ) from None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Parallel writers wait for the lock instead of failing with "database is locked".
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}
