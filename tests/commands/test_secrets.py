"""Passwords never reach an output: every URL form masked, and a real PostgreSQL search + report."""

from __future__ import annotations

import sys
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import sqlalchemy

from search.study.masking import mask_url, remember_secrets
from search.study.storage import storage_scheme
from tests.results_study import assert_usage_error, run_cli
from tests.search_procs import postgres_url, run

SECRET = "Hunter2-secret"  # long enough to be remembered outside URLs too

# (URL, what it reads once masked); the secret is in every one that has a password.
URL_FORMS = [
    (
        f"postgresql://mnist:{SECRET}@db.example:5432/mnist_arch",
        "postgresql://mnist:***@db.example:5432/mnist_arch",
    ),
    (
        f"postgresql://mnist@db.example/mnist_arch?password={SECRET}",
        "postgresql://mnist@db.example/mnist_arch?password=***",
    ),
    (
        f"postgresql://mnist@db.example/mnist_arch?sslmode=require&PassWord={SECRET}&application_name=x",
        "postgresql://mnist@db.example/mnist_arch?sslmode=require&PassWord=***&application_name=x",
    ),
    (
        f"postgresql://mnist:p@ss{SECRET}@db.example/mnist_arch",
        "postgresql://mnist:***@db.example/mnist_arch",
    ),
    (
        f"postgresql://mnist:two {SECRET}@db.example/mnist_arch",
        "postgresql://mnist:***@db.example/mnist_arch",
    ),
    (
        f"postgresql://mnist:{quote('p@ss/w ' + SECRET, safe='')}@db.example/mnist_arch",
        "postgresql://mnist:***@db.example/mnist_arch",
    ),
    (
        f"postgresql+psycopg://mnist:{SECRET}@db.example/mnist_arch",
        "postgresql+psycopg://mnist:***@db.example/mnist_arch",
    ),
    (
        f"mysql+pymysql://mnist:{SECRET}@db.example/mnist_arch",
        "mysql+pymysql://mnist:***@db.example/mnist_arch",
    ),
    (
        f"postgresql://mnist@/mnist_arch?host=/var/run/postgresql&password={SECRET}",
        "postgresql://mnist@/mnist_arch?host=/var/run/postgresql&password=***",
    ),
    (
        f"postgresql:///mnist_arch?host=/tmp&user=mnist&password=with space {SECRET}&port=5433",
        "postgresql:///mnist_arch?host=/tmp&user=mnist&password=***&port=5433",
    ),
    (
        f"postgresql://mnist:{SECRET}@db/mnist_arch?sslpassword={SECRET}&passfile=/home/me/.pgpass",
        "postgresql://mnist:***@db/mnist_arch?sslpassword=***&passfile=/home/me/.pgpass",
    ),
    (f"postgresql://mnist:{SECRET}?x@db/mnist_arch", "postgresql://mnist:***@db/mnist_arch"),
]
NO_PASSWORD = [
    "sqlite:///mnist_arch.db",
    "sqlite:////tmp/a folder/study.db",
    "postgresql://mnist@db.example:5432/mnist_arch",
    "postgresql://db.example:5432/mnist_arch?sslmode=require&passfile=/home/me/.pgpass",
    "postgresql://mnist@db.example/mnist_arch?application_name=me@work",
    "mnist_arch.db",
]


@pytest.mark.parametrize(("url", "masked"), URL_FORMS)
def test_every_url_form_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert SECRET not in mask_url(f"  {url}\n")


@pytest.mark.parametrize("url", NO_PASSWORD)
def test_a_url_without_password_stays_unchanged(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(("url", "_"), URL_FORMS)
def test_urls_inside_a_message_or_traceback_are_masked(url: str, _: str) -> None:
    text = (
        "Traceback (most recent call last):\n"
        f'  File "x.py", line 1, in <module>\n'
        f"sqlalchemy.exc.OperationalError: (psycopg.OperationalError) cannot reach '{url}'\n"
        f"retrying {url} (attempt 2)"
    )
    assert SECRET not in mask_url(text)
    assert "Traceback (most recent call last):" in mask_url(text)


def test_libpq_keywords_and_dict_reprs_are_masked() -> None:
    text = f"dsn 'host=db password={SECRET} user=mnist' kwargs {{'password': '{SECRET}', 'port': 5432}}"
    masked = mask_url(text)
    assert SECRET not in masked and "password=*** user=mnist" in masked and "'port': 5432" in masked


def test_an_opened_storage_password_is_masked_anywhere() -> None:
    password = "only-in-" + uuid.uuid4().hex
    storage_scheme(
        f"postgresql://mnist:{password}@db.example/mnist_arch"
    )  # every storage opening passes here
    message = f"the server said: {password!r} is not accepted ({quote(password + '/x')})"
    assert password not in mask_url(message)
    remember_secrets(f"postgresql://mnist@db/x?password={quote('a b@c ' + password)}")
    assert "a b@c" not in mask_url(f"odd quoting: a b@c {password}")


def test_a_raw_at_in_the_password_is_refused_masked(data, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # where the artifact folder of a PostgreSQL storage would go
    url = f"postgresql://mnist:p@ss{SECRET}@127.0.0.1:9/db"
    result = run_cli("search", "--storage", url, "--device", "cpu", "--data", str(data), "--subset", "400")
    assert_usage_error(result, "holds an '@'", "%40", "postgresql://mnist:***@127.0.0.1:9/db")
    assert SECRET not in result.stderr + result.stdout


def test_a_mistyped_option_does_not_echo_the_password() -> None:
    result = run_cli("report", "--storge", f"postgresql://mnist:{SECRET}@db.example/mnist_arch")
    assert_usage_error(result, "unrecognized arguments", "mnist:***@db.example")
    assert SECRET not in result.stderr


def _with_query_password(url: str) -> tuple[str, str]:
    """The live server's URL rewritten as libpq's ?password= form; and the password."""
    parts = urlsplit(url)
    assert parts.password, f"the test PostgreSQL URL has no password: {mask_url(url)}"
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    query = f"password={quote(parts.password, safe='')}"
    return urlunsplit(parts._replace(netloc=netloc, query=query)), parts.password


def test_query_string_password_reaches_no_output_or_file(data, space, tmp_path) -> None:  # noqa: ANN001
    url, password = _with_query_password(postgres_url())
    study = f"secrets-{uuid.uuid4().hex[:8]}"
    search = [
        *(sys.executable, "-m", "search.cli", "search", "--storage", url, "--study", study),
        *("--subset", "400", "--epochs", "1", "--trials", "1", "--confirm-top", "0", "--no-baselines"),
        *("--data", str(data), "--space", space, "--device", "cpu", "--pruner", "none"),
    ]
    searched = run(search, tmp_path)
    assert searched.returncode == 0, mask_url(searched.stdout + searched.stderr)
    report = [
        sys.executable,
        "-m",
        "search.cli",
        "report",
        "--storage",
        url,
        "--study",
        study,
        "--out",
        "report",
    ]
    reported = run(report, tmp_path)
    assert reported.returncode == 0, mask_url(reported.stdout + reported.stderr)

    outputs = searched.stdout + searched.stderr + reported.stdout + reported.stderr
    unfolded = outputs.replace("\n", "")  # rich folds a long line inside a word
    assert password not in unfolded and mask_url(url) in unfolded
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"report.md", "report.html"} <= {p.name for p in written}
    assert "password=***" in (tmp_path / "report" / "report.md").read_text()
    for path in written:
        content = path.read_bytes()
        assert password.encode() not in content and quote(password, safe="").encode() not in content, path
    # Nor in the database, where anyone with the dashboard can read it.
    engine = sqlalchemy.create_engine(postgres_url())
    try:
        with engine.connect() as connection:
            for table in sqlalchemy.inspect(engine).get_table_names():
                rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')).fetchall()
                assert password not in repr(rows), table
    finally:
        engine.dispose()


@pytest.mark.parametrize("key", ["pass%77ord", "%70assword", "PASS%57ORD", "sslpass%77ord"])
def test_a_percent_encoded_password_key_is_masked(key: str) -> None:
    url = f"postgresql://mnist@db.example/mnist_arch?{key}={SECRET}&port=5433"
    assert mask_url(url) == f"postgresql://mnist@db.example/mnist_arch?{key}=***&port=5433"
    assert SECRET not in mask_url(f"unrecognized arguments: {url} --more")


def test_a_percent_encoded_password_key_is_masked_in_an_argparse_error(capsys) -> None:
    from search.cli import main

    url = f"postgresql://mnist@db.example/mnist_arch?pass%77ord={SECRET}"
    with pytest.raises(SystemExit):
        main(["report", "--storage", url, "--no-such-flag", url])
    err = capsys.readouterr().err
    assert SECRET not in err and "pass%77ord=***" in err


def test_masking_a_query_password_keeps_the_rest_of_the_message() -> None:
    text = f"cannot open storage postgresql://m@db/x?password={SECRET}: connection refused; check the URL"
    assert (
        mask_url(text)
        == "cannot open storage postgresql://m@db/x?password=***: connection refused; check the URL"
    )
