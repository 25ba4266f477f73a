"""Opening an Optuna storage from a URL, with passwords kept out of every message.

A search opens SQLite tuned for several worker processes on one machine:
- WAL journal (`use_wal`, once the study is open): readers (the dashboard, the other workers'
  counts) never wait for a writer;
- a 60 s busy timeout: a writer waits for the lock instead of failing with "database is locked";
- every transaction starts with BEGIN IMMEDIATE: Python's sqlite3 driver otherwise opens the
  transaction only at the first write, so Optuna's read-check-write steps (a state change after
  reading the state) are not atomic between processes, and a read transaction that later writes can
  fail at once with SQLITE_BUSY, without waiting. Taking the write lock up front makes each step
  atomic and lets the busy timeout apply.
"""

from __future__ import annotations

import random
import re
import time
import warnings
from dataclasses import dataclass

import optuna
import sqlalchemy
from sqlalchemy import event

from mnist_arch.errors import UsageError

DEFAULT_STORAGE = "sqlite:///mnist_arch.db"
SCHEMES = ("sqlite", "postgresql", "mysql")  # optionally with a driver: postgresql+psycopg://
SQLITE_BUSY_TIMEOUT = 60  # seconds a writer waits for the lock
CONNECT_TIMEOUT = 10  # seconds to reach a database server

_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)", re.I)


def mask_url(text: str) -> str:
    """Replace the password of any URL in `text` with ***."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)


@dataclass(frozen=True)
class Heartbeat:
    """A running trial's worker writes a heartbeat every `interval` s; after `grace` s of silence
    the trial counts as lost (its worker was killed) and is failed and queued again."""

    interval: int = 5
    grace: int = 30


def storage_scheme(url: str) -> str:
    """'postgresql' for postgresql+psycopg://...; a UsageError for anything mnist-arch cannot open."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise UsageError(
            f"--storage {mask_url(url)!r} is not a storage URL mnist-arch can open; use sqlite:///FILE "
            "(one machine, several workers) or postgresql://user:password@host:port/db (several machines)"
        )
    return scheme


def open_storage(url: str, heartbeat: Heartbeat | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite, PostgreSQL, MySQL) for `url`; a clear UsageError if it cannot open.

    With `heartbeat` it is opened for a search worker: running trials record a heartbeat, stale
    ones can be failed (see search.run.heartbeat), and SQLite takes its write lock up front."""
    scheme = storage_scheme(url)
    parallel = heartbeat is not None
    beat = {}
    if heartbeat is not None:
        beat = {"heartbeat_interval": heartbeat.interval, "grace_period": heartbeat.grace}
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():  # Optuna flags the heartbeat arguments as experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(
                        url, engine_kwargs=_engine_kwargs(scheme, parallel), **beat
                    )
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Two machines creating the tables of a fresh database at once: one wins, the other
                # finds them on the next try.
                if attempt == 4:
                    raise
                time.sleep(random.uniform(0.2, 1.0))
        if scheme == "sqlite" and parallel:
            _begin_immediate(storage)
        return storage
    except Exception as error:  # noqa: BLE001 - every failure to open means the same to the user
        reason = str(getattr(error, "orig", None) or error.__cause__ or error).strip().splitlines()
        reason_text = reason[0] if reason else type(error).__name__
        raise UsageError(
            f"cannot open storage {mask_url(url)}: {mask_url(reason_text)}; check the URL, the password, "
            "that the database server runs and that the folder of a SQLite file exists"
        ) from None


def use_wal(storage: optuna.storages.RDBStorage) -> None:
    """Switch a SQLite file to the WAL journal (stored in the file, so once is enough). Called once
    the study is known to be the right one, so that a refused command leaves the file untouched."""
    if storage.engine.dialect.name != "sqlite":
        return
    raw = storage.engine.raw_connection()  # outside SQLAlchemy's transaction: the pragma refuses one
    try:
        raw.driver_connection.execute("PRAGMA journal_mode=WAL")
    finally:
        raw.close()


def _engine_kwargs(scheme: str, parallel: bool) -> dict:
    if scheme == "sqlite" and parallel:
        # isolation_level=None: the driver opens no transactions itself; _begin_immediate does.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "isolation_level": None}}
    if scheme == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    if scheme == "postgresql":
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return {"pool_pre_ping": True}


def _begin_immediate(storage: optuna.storages.RDBStorage) -> None:
    @event.listens_for(storage.engine, "begin")
    def begin(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql("BEGIN IMMEDIATE")
