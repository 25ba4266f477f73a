"""report, export and dashboard open an existing storage without creating or changing anything in it.

They may be pointed at the wrong file or database: it stays as it was, and the refusal is one line."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

import search.study.storage
from tests.results_study import Result, assert_usage_error, run_cli, small_study  # noqa: F401
from tests.search_procs import postgres_url

COMMANDS = {
    "report": lambda out: ("report", "--out", str(out)),
    "export": lambda out: ("export", "--trial", "best", "--out", str(out)),
    "dashboard": lambda out: ("dashboard", "--port", "1"),  # refused before any port is opened
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def another_programs_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('keep me')")
    connection.close()


def optuna_tables_without_a_study(path: Path) -> None:
    optuna.storages.RDBStorage(f"sqlite:///{path}").engine.dispose()


def random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


REFUSED = [
    (empty_file, "holds no mnist-arch/Optuna study (an empty database)"),
    (another_programs_database, "holds no mnist-arch/Optuna study (another program's tables: notes)"),
    (optuna_tables_without_a_study, "holds no mnist-arch/Optuna study (Optuna's tables, no study in them)"),
    (random_bytes, "file is not a database"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("make", "message"), REFUSED, ids=[make.__name__ for make, _ in REFUSED])
def test_a_file_without_a_study_is_refused_and_left_as_it_was(command, make, message, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "store.db"
    make(path)
    before = sha256(path)
    out = tmp_path / "out"
    result = run_cli(*COMMANDS[command](out), "--storage", f"sqlite:///{path}")
    assert_usage_error(result, f"sqlite:///{path}", message)
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]  # no journal, no output, no artifacts


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_file_or_a_folder_is_refused_and_nothing_is_created(command, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    missing = tmp_path / "missing.db"
    result = run_cli(*COMMANDS[command](out), "--storage", f"sqlite:///{missing}")
    assert_usage_error(result, "does not exist")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert_usage_error(run_cli(*COMMANDS[command](out), "--storage", f"sqlite:///{folder}"), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.db"] and not any(folder.iterdir())


def test_a_locked_database_is_one_line(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    optuna.create_study(study_name="locked", storage=url)
    monkeypatch.setattr(search.study.storage, "SQLITE_BUSY_TIMEOUT", 1)  # the real wait is a minute
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another program writing: no reader gets in
        for args in COMMANDS.values():
            result = run_cli(*args(tmp_path / "out"), "--storage", url)
            assert_usage_error(result, f"cannot open storage {url}", "database is locked")
    finally:
        holder.close()


def checkpointed_sha256(database: Path) -> str:
    """The file's hash once everything written to its WAL journal is in it: a write by a command
    still sitting in the journal changes the hash too."""
    with sqlite3.connect(database) as connection:
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    connection.close()
    assert busy == 0, "another connection kept the checkpoint from finishing"
    return sha256(database)


def test_report_and_export_leave_a_real_study_byte_for_byte(small_study, tmp_path) -> None:  # noqa: F811
    database = small_study.folder / "study.db"
    before = checkpointed_sha256(database)
    study = ("--storage", small_study.url, "--study", small_study.name)
    reported = run_cli("report", *study, "--out", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr
    exported = run_cli("export", *study, "--trial", "best", "--out", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr
    assert checkpointed_sha256(database) == before


def test_an_empty_postgresql_schema_gets_no_tables(tmp_path) -> None:  # noqa: ANN001
    url = postgres_url()
    schema = f"read_only_{uuid.uuid4().hex[:8]}"  # an empty place in the test database
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        in_schema = f"{url}?options=-csearch_path%3D{schema}"
        for args in COMMANDS.values():
            result = run_cli(*args(tmp_path / "out"), "--storage", in_schema)
            assert_usage_error(result, "holds no mnist-arch/Optuna study (an empty database)")
            assert sqlalchemy.inspect(engine).get_table_names(schema=schema) == []
        assert not any(tmp_path.iterdir())
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def tiny_search(storage: str, data: Path) -> Result:
    return run_cli(
        *("search", "--storage", storage, "--data", str(data), "--subset", "400"),
        *("--epochs", "1", "--trials", "1", "--device", "cpu", "--confirm-top", "0", "--no-baselines"),
    )


def test_a_search_leaves_another_programs_database_alone(data, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "notes.db"
    another_programs_database(path)
    before = sha256(path)
    result = tiny_search(f"sqlite:///{path}", data)
    assert_usage_error(result, "holds another program's tables: notes", "a SQLite file of its own")
    assert sha256(path) == before


def test_a_search_on_a_corrupt_file_or_a_folder_is_one_line(data, tmp_path) -> None:  # noqa: ANN001
    corrupt = tmp_path / "corrupt.db"
    random_bytes(corrupt)
    before = sha256(corrupt)
    assert_usage_error(tiny_search(f"sqlite:///{corrupt}", data), "cannot open storage", "not a database")
    assert sha256(corrupt) == before
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert_usage_error(tiny_search(f"sqlite:///{folder}", data), "cannot open storage", "unable to open")
    assert not any(folder.iterdir())
