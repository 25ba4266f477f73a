"""Helpers for tests that run real `mnist-arch search` processes on a small slice of the real MNIST."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.data import DATA_ENV, VALIDATION_SIZE, _read_all
from tests.helpers import REPO, skip_outside_ci

ROOT = REPO
POSTGRES_ENV = "MNIST_ARCH_TEST_POSTGRES_URL"
TRAIN_POOL = 2000  # training images after the fixed validation split; most tests use --subset 300
TEST_IMAGES = 500  # a short test split keeps each trial's evaluation cheap on 2 cores
# The seed's two-block family with SGD + StepLR (the default space's other stages, optimizers and
# augmentations pinned off): small, fast models whose draws the tests can predict. TOML values as text.
SMALL_SPACE_TABLES: dict[str, dict[str, str]] = {
    "architecture": {
        "stages": "2",
        "padded_first": "true",
        "padded_after_pool": "false",
        "convs_before_pool": "2",
        "convs_after_pool": "3",
        "block1_width": "{low = 4, high = 8}",
        "block2_width": "{low = 6, high = 10}",
        "per_layer_widths": "false",
        "order": '"relu_bn"',
        "conv_bias": "false",
        "head_bias": "false",
    },
    "regularization": {"dropout_at": '"conv"', "label_smoothing": "0.0"},
    "augmentation": {
        "translate": "0.0",
        "scale": "0.0",
        "affine_p": "1.0",
        "brightness": "0.0",
        "contrast": "0.0",
    },
    "optimizer": {
        "optimizer": '"sgd"',
        "init": '"default"',
        "nesterov": "false",
        "weight_decay": "0.0",
        "batch_size": "{choices = [64, 128]}",
    },
    "schedule": {"schedule": '"step"'},
}


def small_space(**overrides: dict[str, str]) -> str:
    """SMALL_SPACE_TABLES as a space file, the keys of `overrides` (table -> key -> TOML text) replaced."""
    lines = []
    for table, values in SMALL_SPACE_TABLES.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {value}" for key, value in {**values, **overrides.get(table, {})}.items()]
    return "\n".join(lines) + "\n"


SMALL_SPACE = small_space()


def small_mnist(folder: Path) -> Path:
    """The first images of the real MNIST, written as the four gzipped IDX files."""
    source = os.environ.get(DATA_ENV)
    if not source or not Path(source).is_dir():
        skip_outside_ci(f"needs the real MNIST: set {DATA_ENV} to its folder")
    train_x, train_y, test_x, test_y = _read_all(source)
    n_train = VALIDATION_SIZE + TRAIN_POOL
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in (
        ("train-images-idx3-ubyte", train_x[:n_train]),
        ("train-labels-idx1-ubyte", train_y[:n_train]),
        ("t10k-images-idx3-ubyte", test_x[:TEST_IMAGES]),
        ("t10k-labels-idx1-ubyte", test_y[:TEST_IMAGES]),
    ):
        magic = 2051 if tensor.dim() == 3 else 2049
        header = b"".join(d.to_bytes(4, "big") for d in (magic, *tensor.shape))
        payload = tensor.to(torch.uint8).numpy().tobytes()
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + payload, 1))
    return folder


def postgres_url() -> str:
    """The live PostgreSQL .ci/run starts; a skip outside CI, a failure in CI when it is missing."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide a live PostgreSQL: {POSTGRES_ENV} is not set (.ci/run starts one)")
    pytest.skip(f"no live PostgreSQL: set {POSTGRES_ENV}=postgresql://user:password@127.0.0.1:PORT/db")


def env(**extra: str) -> dict[str, str]:
    """This checkout's code, short heartbeats (1 s, lost after 4 s), no leftover test hooks."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_ARCH_INJECT")}
    environment.update(PYTHONPATH=str(ROOT), MNIST_ARCH_HEARTBEAT="1,4", **extra)
    return environment


def search_cmd(storage: str, data: Path, study: str, trials: int, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "search.cli", "search", "--storage", storage, "--study", study),
        *("--trials", str(trials), "--data", str(data), "--epochs", "1", "--pruner", "none"),
        *("--device", "cpu", "--confirm-top", "0", *extra),
    ]


def start(cmd: list[str], cwd: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=cwd, env=env(**extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run(cmd: list[str], cwd: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout)


def load_trials(storage: str, study: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def trained(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in trials if t.state in done and "rejected" not in t.user_attrs]


def running(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.RUNNING]


def wait_for_training(
    storage: str, study: str, process: subprocess.Popen, timeout: float = 120
) -> FrozenTrial:
    """A running trial that passed the budget check, i.e. one that is training now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            trials = load_trials(storage, study)
        except KeyError:  # the study is not created yet
            trials = []
        for trial in running(trials):
            if "n_params" in trial.user_attrs and "worker" in trial.user_attrs:
                return trial
        time.sleep(0.1)
    raise AssertionError("no trial started training")


def distinct_configs(trials: list[FrozenTrial]) -> int:
    return len({json.dumps(t.user_attrs["config"], sort_keys=True) for t in trials})
