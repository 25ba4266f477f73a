"""An export is whole or absent, never two models mixed; its weights are checked against config.json's
sha256; a trial whose stored weights are gone is one line naming where they were looked for."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from mnist_arch.errors import UsageError
from search.export.artifacts import WEIGHTS
from search.export.export import CONFIG, _write_atomically, load_export
from tests.results_study import assert_usage_error, run_cli, small_study  # noqa: F401


@pytest.fixture(scope="module")
def exported(small_study, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("integrity") / "best"
    result = run_cli("export", "--storage", small_study.url, "--study", small_study.name, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_config_records_the_sha256_of_the_weights(exported) -> None:
    data = json.loads((exported / CONFIG).read_text())
    assert data["weights_sha256"] == hashlib.sha256((exported / WEIGHTS).read_bytes()).hexdigest()


def test_evaluate_refuses_weights_that_are_not_the_exported_ones(exported, tmp_path) -> None:
    copy = shutil.copytree(exported, tmp_path / "copy")
    state = torch.load(copy / WEIGHTS, weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 0.5  # same names and shapes: only the digest can tell
    torch.save(state, copy / WEIGHTS)
    assert_usage_error(run_cli("evaluate", "--weights", str(copy)), "is not the file exported", "sha256")


def test_an_export_without_a_digest_still_loads(exported, tmp_path) -> None:
    copy = shutil.copytree(exported, tmp_path / "old")
    data = json.loads((copy / CONFIG).read_text())
    del data["weights_sha256"]
    (copy / CONFIG).write_text(json.dumps(data))
    loaded, _ = load_export(copy, torch.device("cpu"))
    assert loaded.weights_sha256 is None


def test_export_of_a_trial_whose_weights_are_gone_names_what_is_missing(small_study, tmp_path) -> None:  # noqa: F811
    folder = shutil.copytree(small_study.folder, tmp_path / "study")
    artifacts = folder / "study.artifacts"
    for file in artifacts.iterdir():
        file.unlink()
    url = f"sqlite:///{folder / 'study.db'}"
    out = tmp_path / "out"
    result = run_cli("export", "--storage", url, "--study", small_study.name, "--out", str(out))
    assert_usage_error(result, f"{WEIGHTS} is recorded in the study but missing", f"looked for {artifacts}/")
    assert not out.exists()


def _files(tag: str) -> dict[str, bytes]:
    return {CONFIG: f'{{"model": "{tag}"}}'.encode(), WEIGHTS: tag.encode()}


def test_an_export_refuses_a_folder_another_export_filled_meanwhile(tmp_path) -> None:
    # The race: two exports found the folder empty; the first renamed its folder into place.
    out = tmp_path / "out"
    _write_atomically(out, _files("first"), force=False)
    with pytest.raises(UsageError, match="filled by another export"):
        _write_atomically(out, _files("second"), force=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == _files("first")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


def test_force_replaces_the_whole_folder(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"another model's program")
    _write_atomically(out, _files("new"), force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == _files("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
