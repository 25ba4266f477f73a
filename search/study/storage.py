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

import os
import random
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages._rdb import models as optuna_models
from sqlalchemy import event
from sqlalchemy.engine import make_url

from mnist_arch.errors import UsageError
from search.study.masking import has_raw_at_in_password, mask_url, remember_secrets

DEFAULT_STORAGE = "sqlite:///mnist_arch.db"
SCHEMES = ("sqlite", "postgresql", "mysql")  # optionally with a driver: postgresql+psycopg://
SQLITE_BUSY_TIMEOUT = 60  # seconds a writer waits for the lock
CONNECT_TIMEOUT = 10  # seconds to reach a database server
# The tables an Optuna storage has from its first opening on; opening one without them would create
# them (or, with table creation off, write version rows into another program's tables).
OPTUNA_TABLES = frozenset({"studies", "version_info", "alembic_version"})
# Every table Optuna makes: a file with any of them is an Optuna storage, maybe one being created.
ALL_OPTUNA_TABLES = frozenset(optuna_models.BaseModel.metadata.tables) | OPTUNA_TABLES
_TABLES_NAMED = 4  # another program's tables named in a refusal


@dataclass(frozen=True)
class Heartbeat:
    """A running trial's worker writes a heartbeat every `interval` s; after `grace` s of silence
    the trial counts as lost (its worker was killed) and is failed and queued again."""

    interval: int = 5
    grace: int = 30


def storage_scheme(url: str) -> str:
    """'postgresql' for postgresql+psycopg://...; a UsageError for anything mnist-arch cannot open.

    Its passwords are masked from here on wherever they appear in this process's output."""
    remember_secrets(url)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise UsageError(
            f"--storage {mask_url(url)!r} is not a storage URL mnist-arch can open; use sqlite:///FILE "
            "(one machine, several workers) or postgresql://user:password@host:port/db (several machines)"
        )
    if has_raw_at_in_password(url):
        # SQLAlchemy would cut the password at its first "@" and connect to a host named after the rest.
        raise UsageError(
            f"--storage {mask_url(url)}: the password holds an '@'; write it as %40 "
            "(postgresql://user:p%40ss@host/db), or keep the password in ~/.pgpass"
        )
    return scheme


def open_storage(
    url: str, heartbeat: Heartbeat | None = None, *, create: bool = True
) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite, PostgreSQL, MySQL) for `url`; a clear UsageError if it cannot open.

    With `heartbeat` it is opened for a search worker: running trials record a heartbeat, stale
    ones can be failed (see search.run.heartbeat), and SQLite takes its write lock up front. With
    `create=False` Optuna's tables must exist already (see `storage_tables`): nothing is created."""
    scheme = storage_scheme(url)
    if create and scheme == "sqlite":
        refuse_read_only_sqlite(url)
        _refuse_another_programs_file(url)
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
                        url,
                        engine_kwargs=_engine_kwargs(scheme, parallel),
                        skip_table_creation=not create,
                        **beat,
                    )
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Two machines creating the tables of a fresh database at once: one wins, the other
                # finds them on the next try.
                if attempt == 4 or not create:
                    raise
                time.sleep(random.uniform(0.2, 1.0))
        if scheme == "sqlite" and parallel:
            _begin_immediate(storage)
        return storage
    except Exception as error:  # noqa: BLE001 - every failure to open means the same to the user
        raise _cannot_open(url, error) from None


def storage_tables(url: str) -> set[str]:
    """The names of the tables in `url`'s database, read without creating or changing anything."""
    scheme = storage_scheme(url)
    try:
        engine = sqlalchemy.create_engine(url, **_engine_kwargs(scheme, parallel=False))
        try:
            return set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - a locked, corrupt or unreachable database alike
        raise _cannot_open(url, error) from None


def describe_tables(tables: set[str]) -> str:
    """What a database without Optuna's tables holds, for a one-line refusal."""
    if not tables:
        return "an empty database"
    if tables & ALL_OPTUNA_TABLES:
        return f"an incomplete Optuna storage, without {', '.join(sorted(OPTUNA_TABLES - tables))}"
    names = sorted(tables)
    more = f" and {len(names) - _TABLES_NAMED} more" if len(names) > _TABLES_NAMED else ""
    return f"another program's tables: {', '.join(names[:_TABLES_NAMED])}{more}"


def _refuse_another_programs_file(url: str) -> None:
    """A search would add Optuna's tables to a SQLite file that another program's tables fill."""
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    tables = storage_tables(url)
    if tables and tables.isdisjoint(ALL_OPTUNA_TABLES):
        raise UsageError(
            f"{mask_url(url)} holds {describe_tables(tables)}, not an mnist-arch/Optuna study; "
            "give the search a SQLite file of its own (--storage sqlite:///mnist_arch.db)"
        )


def refuse_read_only_sqlite(url: str) -> None:
    """A search writes its trials into the file and SQLite its journal (-wal, -shm) beside it: a file
    without write permission (by its mode bits too: root may write a 444 file, but its owner meant it
    read-only) or a folder that cannot be written is refused before anything is created."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(path, os.W_OK)):
        raise UsageError(
            f"{mask_url(url)} is read-only (mode {stat.S_IMODE(mode):o}): a search writes its trials there; "
            f"make it writable (chmod u+w {path}) or give the search another --storage"
        )
    folder = path.absolute().parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"the folder {folder} of {mask_url(url)} cannot be written: SQLite keeps its journal beside the "
            "file; make the folder writable or give the search another --storage"
        )


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL; None for an in-memory database or a URI filename."""
    path = make_url(url).database or ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _cannot_open(url: str, error: BaseException) -> UsageError:
    reason = str(getattr(error, "orig", None) or error.__cause__ or error).strip().splitlines()
    reason_text = reason[0] if reason else type(error).__name__
    if url.lower().startswith("sqlite"):
        hint = "check the path, that its folder exists and that the file is a SQLite database"
    else:
        hint = "check the URL, the password and that the database server runs"
    return UsageError(f"cannot open storage {mask_url(url)}: {mask_url(reason_text)}; {hint}")


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
