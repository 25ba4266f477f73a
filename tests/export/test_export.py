"""export -> evaluate reproduces the recorded accuracy exactly; train --config; the config file's checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from mnist_arch.config import ConfigError
from mnist_arch.data import MEAN, STD
from mnist_arch.iterations import get_iteration
from mnist_arch.model import count_params
from search.export.config_file import ExportedConfig
from search.export.export import load_export
from search.export.standalone import ONNX_MISSING, onnx_available
from search.results.table import top_trials
from tests.results_study import (  # noqa: F401
    SUBSET,
    assert_usage_error,
    mnist_dir,
    run_cli,
    run_subprocess,
    small_study,
)


@pytest.fixture(scope="module")
def exported(small_study, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("export") / "best"
    result = run_cli("export", "--storage", small_study.url, "--study", small_study.name, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "is unconfirmed" in result.stdout  # the shared study was searched with --confirm-top 0
    return out


def test_export_writes_config_weights_and_summary(small_study, exported):  # noqa: F811
    best = top_trials(small_study.load(), 1)[0]
    programs = ["model.onnx", "model.pt2"] if onnx_available() else ["model.pt2"]
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        ["config.json", "learning_curve.png", "summary.txt", "weights.pt", *programs]
    )
    data = json.loads((exported / "config.json").read_text())
    assert data["standalone"]["files"] == programs
    assert data["standalone"]["skipped"] == ({} if onnx_available() else {"model.onnx": ONNX_MISSING})
    assert data["input"]["mean"] == MEAN and data["input"]["std"] == STD
    assert data["input"]["shape"] == ["N", 1, 28, 28] and data["input"]["classes"] == 10
    assert data["dataset"] == small_study.load().user_attrs["dataset"]
    assert data["schema_version"] == 2
    assert data["n_params"] == best.user_attrs["n_params"] <= data["max_params"]
    attrs = best.user_attrs
    assert data["accuracies"] == {"val_acc": attrs["val_acc"], "test_acc": attrs["test_acc"]}
    assert data["trained"]["seed"] == best.user_attrs["seed"] and data["trained"]["device"] == "cpu"
    config = ExportedConfig.from_dict(data).config
    assert config.to_dict() == best.user_attrs["config"]
    state = torch.load(exported / "weights.pt", weights_only=True)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == (
        count_params(config.arch)
    )
    summary = (exported / "summary.txt").read_text()
    assert f"Total params: {data['n_params']:,}" in summary and "Conv2d-1" in summary
    assert f"(pixels / 255 - {MEAN}) / {STD}" in summary and "model.pt2: uint8" in summary
    assert f"fingerprint {data['dataset']['fingerprint']}" in summary
    assert (exported / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def test_evaluate_reproduces_the_recorded_test_accuracy_exactly(small_study, exported):  # noqa: F811
    recorded = top_trials(small_study.load(), 1)[0].user_attrs["test_acc"]
    result = run_cli("evaluate", "--weights", str(exported), "--json", "--data", mnist_dir())
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["test_acc"] == recorded and measured["matches"] is True


def test_train_config_of_an_export_retrains_it(small_study, exported, tmp_path):  # noqa: F811
    # Same seed, images, epochs and device as the trial: on a CPU the rerun is bit-identical.
    data = json.loads((exported / "config.json").read_text())
    out = tmp_path / "retrained"
    result = run_cli(
        "train", "--config", str(exported), "--epochs", str(data["trained"]["epochs"]),
        "--seed", str(data["trained"]["seed"]), "--subset", str(SUBSET), "--device", "cpu",
        "--data", mnist_dir(), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch   1:" in result.stdout
    again = json.loads((out / "config.json").read_text())
    assert again["arch"] == data["arch"] and again["train"] == data["train"]
    assert again["accuracies"] == data["accuracies"]
    assert (out / "weights.pt").is_file() and (out / "summary.txt").is_file()


def test_train_an_iteration_by_name(tmp_path):
    result = run_cli(
        "train", "--config", "iteration-3", "--epochs", "1", "--subset", "300", "--device", "cpu",
        "--data", mnist_dir(), "--out", str(tmp_path / "it3"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "it3" / "config.json").read_text())
    assert data["n_params"] == 7560 and data["trained"]["source"] == "iteration-3"
    assert ExportedConfig.from_dict(data).config == get_iteration("iteration-3").config
    _, model = load_export(tmp_path / "it3", torch.device("cpu"))
    assert not model.training


def test_export_refuses_bad_trials_and_folders(small_study, exported, tmp_path):  # noqa: F811
    study = small_study.load()
    args = ("export", "--storage", small_study.url, "--study", small_study.name)
    not_complete = [t for t in study.get_trials() if t.state != TrialState.COMPLETE]
    if not not_complete:  # every draw fitted the budget: record an over-budget draw as the loop would
        trial = study.ask()
        trial.set_user_attr("rejected", "over budget")
        study.tell(trial, state=TrialState.PRUNED)
        not_complete = [study.trials[-1]]
    out = tmp_path / "x"
    assert_usage_error(run_cli(*args, "--trial", str(not_complete[0].number), "--out", str(out)), "pruned")
    assert_usage_error(run_cli(*args, "--trial", "999", "--out", str(out)), "no trial 999")
    assert_usage_error(run_cli(*args, "--trial", "first", "--out", str(out)), "--trial")
    assert_usage_error(run_cli(*args, "--out", str(exported)), "not empty", "--force")
    no_study = run_cli("export", "--storage", small_study.url, "--study", "nope", "--out", str(out))
    assert_usage_error(no_study, "no study 'nope'")
    missing = tmp_path / "missing.db"
    no_storage = run_cli("export", "--storage", f"sqlite:///{missing}", "--out", str(out))
    assert_usage_error(no_storage, "does not exist")
    assert not out.exists() and not missing.exists()
    forced = run_cli(*args, "--out", str(exported), "--force")
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "is not JSON"),
        ('{"arch": {"block1": [8, 8]}, "colour": "red"}', "unknown key 'config.colour'"),
        ('{"arch": {"block1": "8"}}', "'arch.block1' must be a list of integers"),
        ('{"arch": {"block1": [32, 32, 32]}, "max_params": 8000}', "over its own max_params 8,000"),
        ('{"arch": {}, "n_params": 5}', "'n_params' is 5"),
        ('{"arch": {}, "trained": {"seed": "zero"}}', "'trained.seed' must be int"),
        (
            '{"arch": {}, "accuracies": {"confirmation": {"seeds": 0}}}',
            "'accuracies.confirmation.seeds' must be a positive integer",
        ),
        ('{"arch": {}, "accuracies": {"confirmation": {"val_mean": 2}}}', "must be a number in [0, 1]"),
        ('{"arch": {}, "accuracies": {"confirmation": {"luck": 1}}}', "'accuracies.confirmation.luck'"),
    ],
)
def test_train_refuses_a_bad_config_file(tmp_path, content, needle):
    config = tmp_path / "config.json"
    config.write_text(content)
    out = tmp_path / "out"
    result = run_cli("train", "--config", str(config), "--out", str(out), "--data", mnist_dir())
    assert_usage_error(result, needle)
    assert not out.exists()


def test_evaluate_refuses_weights_that_do_not_match_the_config(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    data = json.loads((broken / "config.json").read_text())
    first = data["arch"]["stages"][0]
    first["widths"] = [w + 1 for w in first["widths"]]
    for key in ("n_params", "max_params", "model"):  # derived from arch: a hand edit drops them
        data.pop(key)
    (broken / "config.json").write_text(json.dumps(data))
    assert_usage_error(run_subprocess("evaluate", "--weights", str(broken)), "does not match config.json")
    assert_usage_error(run_cli("evaluate", "--weights", str(tmp_path / "none")), "not a folder")


def test_exported_config_round_trip_and_checks():
    config = get_iteration("iteration-1").config
    accuracies = {"val_acc": 0.5, "test_acc": 0.25}
    exported = ExportedConfig(config, 8088, None, accuracies, {"epochs": 2, "subset": None})
    assert ExportedConfig.from_dict(json.loads(exported.to_json())) == exported
    with pytest.raises(ConfigError, match="over its own max_params"):
        ExportedConfig.from_dict({**config.to_dict(), "max_params": 8000})
    with pytest.raises(ConfigError, match="accuracies.test_acc"):
        ExportedConfig.from_dict({**config.to_dict(), "accuracies": {"test_acc": 1.5}})
