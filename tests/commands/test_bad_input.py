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
from tests.helpers import REPO, run_subprocess


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
        (["--max-params", "800"], "below the smallest model this space can build (820"),
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
    result = run_subprocess("search", "--epochs", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist-arch search: error: argument --epochs: must be a positive integer, got 0 (see --help)"
    ]
    result = run_subprocess("search", "--max-params", "10", cwd=tmp_path)
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


# Failures that used to come after the study was created, or after the training.


def cheap_search(data, *extra: str) -> list[str]:
    return [
        *("search", "--device", "cpu", "--data", str(data), "--subset", "200", "--epochs", "1"),
        *("--trials", "1", "--confirm-top", "0", "--no-baselines", *extra),
    ]


def test_artifact_folder_that_cannot_be_created(capsys, in_tmp, data) -> None:
    (in_tmp / "a-file").write_text("x")
    for artifacts, message in (
        ("a-file", "--artifacts a-file is a file, not a folder"),
        ("a-file/sub", f"--artifacts a-file/sub: {in_tmp / 'a-file'} is a file, not a folder"),
    ):
        assert message in fails_cleanly(capsys, *cheap_search(data, "--artifacts", artifacts))
    # The default folder beside the SQLite file, taken by a file.
    (in_tmp / "mnist_arch.artifacts").write_text("x")
    assert "the artifact folder mnist_arch.artifacts is a file" in fails_cleanly(capsys, *cheap_search(data))
    assert not (in_tmp / "mnist_arch.db").exists()


@pytest.mark.unprivileged
def test_artifact_folder_in_a_read_only_folder(capsys, in_tmp, data) -> None:
    locked = in_tmp / "locked"
    locked.mkdir(mode=0o500)
    err = fails_cleanly(capsys, *cheap_search(data, "--artifacts", "locked/artifacts"))
    assert "--artifacts locked/artifacts is not writable" in err
    assert not (in_tmp / "mnist_arch.db").exists()


def test_study_name_that_rich_reads_as_markup(capsys, in_tmp, data) -> None:
    assert main(cheap_search(data, "--study", "[/red]")) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "study '[/red]'" in out
    assert optuna.get_all_study_names(storage="sqlite:///mnist_arch.db") == ["[/red]"]


def test_a_space_file_name_with_markup_is_shown(capsys, in_tmp) -> None:
    (in_tmp / "[bold]x.toml").write_text("[optimizer]\nlr = 0.05\n")
    assert main(["space", "--space", "[bold]x.toml"]) == 0
    assert "[bold]x.toml" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "4294967296"], "--seed: must be an integer from 0 to 4294967295, got 4294967296"),
        (["--seed", "-1"], "--seed: must be an integer from 0 to 4294967295"),
        (["--workers", "65"], "--workers: must be an integer from 1 to 64, got 65"),
        (["--workers", "0"], "--workers: must be an integer from 1 to 64"),
        (["--timeout", "inf"], "--timeout: must be a positive number"),
        (["--timeout", "nan"], "--timeout: must be a positive number"),
        (["--study", "a\nb"], "--study: must be 1 to 512 printable characters"),
        (["--study", " "], "--study: must be 1 to 512 printable characters"),
        (["--study", "x" * 513], "--study: must be 1 to 512 printable characters"),
        (["--trials", "9" * 5000], "--trials: must be a positive integer, got '99999"),
    ],
)
def test_bounded_arguments(capsys, in_tmp, args, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err and len(err) < 300
    assert not (in_tmp / "mnist_arch.db").exists()


def test_the_largest_seed_runs(capsys, in_tmp, data) -> None:
    """The sampler's seed is the study's plus its trial count, kept in numpy's range."""
    assert main(cheap_search(data, "--seed", "4294967295")) == 0, capsys.readouterr().err
    assert main(cheap_search(data, "--seed", "4294967295", "--trials", "2")) == 0, capsys.readouterr().err


def test_error_messages_stay_one_line(capsys, in_tmp) -> None:
    err = fails_cleanly(capsys, "search", "--space", "no\nsuch.toml")
    assert "cannot read space file no\\nsuch.toml" in err
    with pytest.raises(SystemExit):
        main(["search", "unexpected\nargument"])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unexpected\\nargument" in err


# Output paths checked before the training or the benchmark, creating nothing.


def test_train_out_is_checked_before_training(capsys, in_tmp) -> None:
    (in_tmp / "a-file").write_text("x")
    (in_tmp / "full").mkdir()
    (in_tmp / "full" / "kept.txt").write_text("x")
    train = ["train", "--config", "iteration-3", "--device", "cpu", "--data", "no/such/data", "--out"]
    for out, message in (
        ("a-file", "--out a-file is a file, not a folder"),
        ("a-file/run", f"--out a-file/run: {in_tmp / 'a-file'} is a file, not a folder"),
        ("full", "--out full exists and is not empty; choose another folder or pass --force"),
        ("", "--out needs a path"),
    ):
        assert message in fails_cleanly(capsys, *train, out)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["a-file", "full"]


def test_bench_out_is_checked_before_benchmarking(capsys, in_tmp) -> None:
    (in_tmp / "folder").mkdir()
    (in_tmp / "binary.md").write_bytes(b"\xff\xfe\x00")
    bench = ["bench", "--device", "cpu", "--data", "no/such/data", "--out"]
    for out, message in (
        ("folder", "--out folder is not a regular file"),
        ("missing/b.md", "--out missing/b.md: folder missing does not exist"),
        ("binary.md", "--out binary.md is not a UTF-8 text file"),
    ):
        assert message in fails_cleanly(capsys, *bench, out)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["binary.md", "folder"]
    with pytest.raises(SystemExit):
        main(["bench", "--concurrency", "1,100000"])
    assert "integers from 1 to 1024" in capsys.readouterr().err


# Values no check used to see.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[optimizer]\nlr = {low = nan, high = 0.1}\n", "'optimizer.lr' must be finite, got nan"),
        ("[optimizer]\nlr = {low = 0.01, high = inf}\n", "'optimizer.lr' must be finite, got inf"),
        ("[regularization]\nrotation = nan\n", "'regularization.rotation' must be finite"),
        ("[optimizer]\nlr = {low = 0.2, high = 0.1}\n", "'optimizer.lr' has low 0.2 > high 0.1; swap them"),
        ("[optimizer]\nlr = " + "[" * 5000 + "]" * 5000 + "\n", "nests arrays or tables too deeply"),
    ],
)
def test_space_values(capsys, in_tmp, text, message) -> None:
    (in_tmp / "s.toml").write_text(text)
    assert message in fails_cleanly(capsys, "space", "--space", "s.toml")


def test_space_files_that_cannot_be_read(capsys, in_tmp) -> None:
    (in_tmp / "latin1.toml").write_bytes("[optimizer]\n# d\xe9faut\nlr = 0.05\n".encode("latin-1"))
    (in_tmp / "a-folder.toml").mkdir()
    (in_tmp / "huge.toml").write_bytes(b"#" * (2 << 20))
    for path, message in (
        ("latin1.toml", "space file latin1.toml is not UTF-8 text (byte 15); save it as UTF-8"),
        ("a-folder.toml", "cannot read space file a-folder.toml: Is a directory"),
        ("huge.toml", "space file huge.toml is over 1 MiB"),
    ):
        assert message in fails_cleanly(capsys, "space", "--space", path)
        assert message in fails_cleanly(capsys, "search", "--space", path)
    assert not (in_tmp / "mnist_arch.db").exists()


@pytest.mark.unprivileged
def test_space_file_without_read_permission(capsys, in_tmp) -> None:
    path = in_tmp / "private.toml"
    path.write_text("[optimizer]\nlr = 0.05\n")
    path.chmod(0)
    assert "cannot read space file private.toml: Permission denied" in fails_cleanly(
        capsys, "space", "--space", "private.toml"
    )


@pytest.mark.parametrize(
    ("train", "arch", "message"),
    [
        ('{"lr": ' + "9" * 400 + "}", "{}", "'train.lr' is too large for a number"),
        ('{"rotation": -1e-300}', "{}", "rotation must be 0 to 180 degrees"),
        ('{"rotation": 1e6}', "{}", "rotation must be 0 to 180 degrees"),
        ('{"batch_size": 1000000}', "{}", "batch_size must be at most 60,000"),
        ("{}", '{"num_classes": -3}', "num_classes must be 10 to 1000"),
        ("{}", '{"num_classes": "10"}', "'arch.num_classes' must be an integer"),
        ("{}", '{"block1": [100000, 8]}', "a conv has 100,000 channels; at most 1024"),
        ("{}", '{"block1": [' + ", ".join(["4"] * 40) + "]}", "stage 1 has 40 convs; at most 32"),
        ("{}", '{"dropout": -' + "9" * 400 + "}", "'arch.dropout' is too large for a number"),
    ],
)
def test_config_values(capsys, in_tmp, train, arch, message) -> None:
    (in_tmp / "config.json").write_text(f'{{"arch": {arch}, "train": {train}}}')
    err = fails_cleanly(capsys, "train", "--config", "config.json", "--device", "cpu", "--out", "run")
    assert message in err
    assert not (in_tmp / "run").exists()


def test_non_finite_values_in_a_config_object() -> None:
    from mnist_arch.config import ArchConfig, CandidateConfig, ConfigError, TrainConfig

    for bad in ({"lr": float("nan")}, {"rotation": float("nan")}, {"momentum": float("inf")}):
        with pytest.raises(ConfigError, match="must be a finite number"):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="'train.lr_gamma' must be a finite number"):
        CandidateConfig.from_dict({"train": {"lr_gamma": float("nan")}})
    with pytest.raises(ConfigError, match="'train.lr' must be a finite number, got inf"):
        CandidateConfig.from_dict({"train": {"lr": 1e400}})
    with pytest.raises(ConfigError, match="num_classes"):
        ArchConfig(num_classes=-1)


def test_a_budget_no_draw_meets_is_refused_before_the_study(capsys, in_tmp, data) -> None:
    """Above the smallest model, but none of 200 draws fits: the search would only store rejected draws."""
    (in_tmp / "wide.toml").write_text(
        "[architecture]\nbudget_fill = false\nblock1_width = {low = 1, high = 256}\n"
        "block2_width = {low = 1, high = 256}\n"
    )
    err = fails_cleanly(capsys, *cheap_search(data, "--space", "wide.toml", "--max-params", "200"))
    assert "none of 200 random draws of this space fits --max-params 200 (its smallest model has 54" in err
    assert not (in_tmp / "mnist_arch.db").exists()
