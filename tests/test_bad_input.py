"""Every bad input: one line on stderr, exit 2, no traceback, and the storage left as it was."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import optuna
import pytest
import torch

from search.cli import main
from tests.conftest import REPO, run_cli


def fails_cleanly(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        code = main(list(args))
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs: must be a positive integer, got 0"),
        (["--epochs", "-3"], "--epochs: must be a positive integer"),
        (["--trials", "-1"], "--trials: must be a positive integer"),
        (["--subset", "0"], "--subset: must be a positive integer"),
        (["--timeout", "-5"], "--timeout: must be a positive number"),
        (["--max-params", "900"], "below the smallest model this space can build (1,156"),
        (["--pruner", "magic"], "invalid choice: 'magic'"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_arguments(capsys, in_tmp, args, message) -> None:
    err = fails_cleanly(capsys, "search", *args)
    assert message in err
    assert not (in_tmp / "mnist_arch.db").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(capsys, in_tmp) -> None:
    err = fails_cleanly(capsys, "search", "--device", "cuda")
    assert "no CUDA GPU" in err and "--device cpu" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_invalid_space_file(capsys, in_tmp) -> None:
    (in_tmp / "space.toml").write_text("[architecture]\nblock2_width = {low = 20, high = 8}\n")
    err = fails_cleanly(capsys, "search", "--space", "space.toml")
    assert "'architecture.block2_width' has low 20 > high 8" in err
    assert not (in_tmp / "mnist_arch.db").exists()
    err = fails_cleanly(capsys, "space", "--space", "missing.toml")
    assert "cannot read space file missing.toml" in err


@pytest.fixture
def broken_data(tmp_path, mnist_dir):
    """A copy of the real IDX files that each test damages in its own way."""
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_dir, folder)
    return folder


def test_missing_idx_file(capsys, in_tmp, broken_data) -> None:
    (broken_data / "t10k-labels-idx1-ubyte.gz").unlink()
    err = fails_cleanly(capsys, "search", "--device", "cpu", "--data", str(broken_data))
    assert "has no t10k-labels-idx1-ubyte" in err and "--data DIR" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_truncated_idx_file(capsys, in_tmp, broken_data) -> None:
    path = broken_data / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1000]))
    err = fails_cleanly(capsys, "search", "--device", "cpu", "--data", str(broken_data))
    assert "t10k-images-idx3-ubyte.gz is truncated" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_wrong_magic_number(capsys, in_tmp, broken_data) -> None:
    path = broken_data / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[3] = 0x03
    path.unlink()
    (broken_data / "train-labels-idx1-ubyte").write_bytes(bytes(raw))  # uncompressed files work too
    err = fails_cleanly(capsys, "search", "--device", "cpu", "--data", str(broken_data))
    assert "not an MNIST IDX file (wrong magic number)" in err


def test_not_gzip(capsys, in_tmp, broken_data) -> None:
    (broken_data / "train-images-idx3-ubyte.gz").write_bytes(b"plain text, not gzip")
    err = fails_cleanly(capsys, "search", "--device", "cpu", "--data", str(broken_data))
    assert "not a readable gzip file" in err


def test_data_folder_that_does_not_exist(capsys, in_tmp) -> None:
    err = fails_cleanly(capsys, "search", "--device", "cpu", "--data", "no/such/folder")
    assert "no/such/folder does not exist" in err


def test_storage_that_cannot_be_opened(capsys, in_tmp, mnist_dir) -> None:
    for storage, message in (
        ("sqlite:////no/such/folder/x.db", "cannot open storage sqlite:////no/such/folder/x.db"),
        ("mnist_arch.db", "is not a storage URL"),
    ):
        args = (
            "search",
            "--device",
            "cpu",
            "--data",
            str(mnist_dir),
            "--subset",
            "100",
            "--storage",
            storage,
        )
        assert message in fails_cleanly(capsys, *args)
    assert not (in_tmp / "mnist_arch.db").exists()


def test_existing_study_with_another_objective_or_direction(capsys, in_tmp, mnist_dir) -> None:
    url = f"sqlite:///{in_tmp}/s.db"
    study = optuna.create_study(study_name="mnist-arch", storage=url, direction="maximize")
    study.set_user_attr("objective", "test")
    optuna.create_study(study_name="minimising", storage=url, direction="minimize")
    before = (in_tmp / "s.db").read_bytes()
    base = ["search", "--device", "cpu", "--data", str(mnist_dir), "--subset", "100", "--storage", url]
    err = fails_cleanly(capsys, *base)
    assert "created with --objective test" in err
    err = fails_cleanly(capsys, *base, "--study", "minimising")
    assert "study 'minimising' minimises" in err
    assert (in_tmp / "s.db").read_bytes() == before


def test_a_real_process_exits_2_without_traceback(tmp_path) -> None:
    result = run_cli("search", "--epochs", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist-arch search: error: argument --epochs: must be a positive integer, got 0 (see --help)"
    ]
    result = run_cli("search", "--max-params", "10", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "mnist_arch.db").exists()


def test_no_data_and_no_network_says_how_to_point_at_a_folder(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MNIST_ARCH_DATA"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--device",
            "cpu",
            "--trials",
            "1",
            "--epochs",
            "1",
            "--subset",
            "100",
            "--no-baselines",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode == 0:
        pytest.skip("this machine could download MNIST, so the offline error cannot be shown")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "downloading it failed" in result.stderr and "MNIST_ARCH_DATA" in result.stderr
    assert not (tmp_path / "mnist_arch.db").exists()
