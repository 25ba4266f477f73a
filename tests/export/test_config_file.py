"""Reading config.json: every way the file itself can be unreadable is one line, before anything runs;
and `--out` is checked before a study is opened or a model trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_arch.iterations import get_iteration
from search.export.config_file import ExportedConfig, load_config_file
from tests.results_study import assert_usage_error, run_cli

VALID = get_iteration("iteration-3").config.to_dict()


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    return path


def train_with(config: Path | str, tmp_path: Path):
    # --data names a folder that does not exist: a config error must come first, data are never read
    out = tmp_path / "out"
    result = run_cli("train", "--config", str(config), "--out", str(out), "--data", str(tmp_path / "none"))
    assert not out.exists()
    return result


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe{\x00}\x00", "is not UTF-8 text (byte 0)"),
        (json.dumps({**VALID, "n_params": 7560}).encode("latin-1")[:-1] + b"\xe9}", "is not UTF-8 text"),
        (b'{"arch": {}, "accuracies": {"test_acc": NaN}}', "NaN is not a JSON number"),
        (b'{"arch": {}, "accuracies": {"test_acc": Infinity}}', "Infinity is not a JSON number"),
        (b'{"arch": {}, "accuracies": {"test_acc": -Infinity}}', "-Infinity is not a JSON number"),
        (b'{"arch": {}, "accuracies": {"test_acc": 1e999}}', "1e999 is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b'{"arch": {}', "is not JSON"),
        (b'{"arch": {}, "n_params": ' + b"9" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
    ],
)
def test_an_unreadable_config_file_is_one_line(tmp_path, content, needle):
    assert_usage_error(train_with(write(tmp_path, content), tmp_path), needle)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps(VALID).encode())
    assert load_config_file(path) == ExportedConfig.from_dict(VALID)


def test_a_folder_where_the_file_should_be(tmp_path):
    export = tmp_path / "export"
    (export / "config.json").mkdir(parents=True)  # an export folder whose config.json is a folder
    assert_usage_error(train_with(export, tmp_path), "is a folder")


@pytest.mark.unprivileged
def test_a_config_without_read_permission(tmp_path):
    path = write(tmp_path, json.dumps(VALID).encode())
    path.chmod(0)
    assert_usage_error(train_with(path, tmp_path), "permission denied")


def test_export_checks_out_before_opening_the_study(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    missing = f"sqlite:///{tmp_path / 'missing.db'}"  # would be its own error if it were opened first
    for out, needle in ((blocker, "is a file"), (blocker / "sub", f"{blocker} is a file")):
        result = run_cli("export", "--storage", missing, "--out", str(out))
        assert_usage_error(result, f"--out {out}", needle)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.unprivileged
def test_export_refuses_a_folder_it_cannot_write_in(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli(
        "export", "--storage", f"sqlite:///{tmp_path / 'missing.db'}", "--out", str(locked / "x")
    )
    assert_usage_error(result, "not writable")
