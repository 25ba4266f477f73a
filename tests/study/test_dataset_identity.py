"""The dataset identity: stable for the same content, different for other data, MNIST by name, recorded in a
study and carried to its report and exports; evaluate on other data says so; bad data leaves no study."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
import torch
from optuna_dashboard import get_note

from mnist_arch import load_mnist
from mnist_arch.data import MEAN, MIN_TRAINING_IMAGES, STD, VALIDATION_SIZE
from mnist_arch.dataset import ROLES, DatasetIdentity, digest, idx_bytes, recognise
from tests.helpers import run_cli as run_in_process
from tests.helpers import run_subprocess
from tests.mnist_arch.test_data import synthetic, write_all


def test_same_content_same_identity_gzipped_or_not_and_whatever_the_subset(tmp_path) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 50, 200)
    packed = load_mnist(write_all(tmp_path / "packed", tensors, packed=True)).identity
    plain = load_mnist(write_all(tmp_path / "plain", tensors, packed=False), subset=20).identity
    again = load_mnist(tmp_path / "packed", subset=7).identity
    assert packed == again
    assert packed.fingerprint == plain.fingerprint
    assert [packed.files[r].sha256 for r in ROLES] == [plain.files[r].sha256 for r in ROLES]
    assert packed.files["train_images"].name == "train-images-idx3-ubyte.gz"
    assert plain.files["train_images"].name == "train-images-idx3-ubyte"
    assert packed.counts == plain.counts  # the pool is the whole pool: --subset is no part of the data


@pytest.mark.parametrize("role", ROLES)
def test_any_changed_file_changes_the_fingerprint(tmp_path, role: str) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 50, 200)
    before = load_mnist(write_all(tmp_path / "before", tensors)).identity
    changed = [t.clone() for t in tensors]
    index = ROLES.index(role)
    changed[index].view(-1)[3] = (int(changed[index].view(-1)[3]) + 1) % 10  # one pixel or one label
    after = load_mnist(write_all(tmp_path / "after", changed)).identity
    assert after.fingerprint != before.fingerprint
    assert [r for r in ROLES if after.files[r] != before.files[r]] == [role]


def test_identity_records_counts_shape_labels_and_both_normalisations(tmp_path) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 50, 200)
    tensors[1] %= 8  # training labels 0..7
    tensors[3] = tensors[3] % 6 + 1  # test labels 1..6
    data = load_mnist(write_all(tmp_path, tensors))
    identity = data.identity
    assert identity.name == "unknown"
    n_train = MIN_TRAINING_IMAGES + 50
    assert identity.counts == {
        "train": n_train,
        "validation": VALIDATION_SIZE,
        "pool": n_train - 5000,
        "test": 200,
    }
    assert identity.image_shape == (28, 28) and identity.label_range == (0, 7)
    pool = data.train_images.double() / 255
    assert identity.normalization["mean"] == MEAN and identity.normalization["std"] == STD
    assert identity.normalization["measured_mean"] == pytest.approx(pool.mean().item(), abs=1e-6)
    assert identity.normalization["measured_std"] == pytest.approx(pool.std(unbiased=False).item(), abs=1e-6)
    assert identity.files["train_images"].bytes == 16 + n_train * 28 * 28
    stored = json.loads(json.dumps(identity.to_dict()))
    assert DatasetIdentity.from_dict(stored) == identity


def test_real_mnist_is_recognised_by_name_and_a_slice_of_it_is_not(mnist_dir, data) -> None:
    identity = load_mnist(mnist_dir).identity
    assert identity.name == "MNIST"
    assert identity.counts == {"train": 60000, "validation": 5000, "pool": 55000, "test": 10000}
    assert identity.label_range == (0, 9)
    # MNIST's published statistics are those of its 60,000 training images; the pool's are close to them.
    assert identity.normalization["measured_mean"] == pytest.approx(MEAN, abs=5e-4)
    assert identity.normalization["measured_std"] == pytest.approx(STD, abs=5e-4)
    assert identity.summary().startswith("MNIST (60,000 train, 5,000 validation, 55,000 pool, 10,000 test;")
    sliced = load_mnist(data).identity
    assert sliced.name == "unknown" and sliced.fingerprint != identity.fingerprint


@pytest.mark.parametrize(
    ("cls", "name"), [("MNIST", "MNIST"), ("FashionMNIST", "Fashion-MNIST"), ("KMNIST", "KMNIST")]
)
def test_published_gz_files_are_named_by_the_md5s_torchvision_lists(cls: str, name: str) -> None:
    from torchvision import datasets

    listed = dict(getattr(datasets, cls).resources)
    files = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    digests = {role: digest(f"{file}.gz", role.encode()) for role, file in zip(ROLES, files, strict=True)}
    md5s = {role: listed[f"{file}.gz"] for role, file in zip(ROLES, files, strict=True)}
    assert recognise(digests, md5s) == name
    assert recognise(digests, {**md5s, "test_labels": "0" * 32}) == "unknown"
    assert recognise(digests, {**md5s, "test_labels": None}) == "unknown"  # a plain file has no .gz md5


def test_torchvision_folder_gives_the_identity_of_the_files(mnist_dir, tmp_path, monkeypatch) -> None:
    # torchvision's MNIST folder layout, already downloaded: the identity comes from its tensors.
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for packed in Path(mnist_dir).glob("*-ubyte.gz"):
        (raw / packed.name[: -len(".gz")]).write_bytes(gzip.decompress(packed.read_bytes()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNIST_ARCH_DATA")
    from_tensors = load_mnist().identity
    from_files = load_mnist(mnist_dir).identity
    assert from_tensors.name == "MNIST" and from_tensors.fingerprint == from_files.fingerprint
    assert from_tensors.counts == from_files.counts
    assert from_tensors.normalization == from_files.normalization
    tensor = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2)
    assert idx_bytes(tensor) == b"\x00\x00\x08\x03" + b"".join(
        d.to_bytes(4, "big") for d in (3, 2, 2)
    ) + bytes(range(12))


def _search(storage: str, data: Path, cwd: Path, *extra: str):
    return run_subprocess(
        *("search", "--storage", storage, "--study", "identity", "--data", str(data), "--device", "cpu"),
        *("--trials", "3", "--epochs", "1", "--subset", "200", "--pruner", "none", "--confirm-top", "0"),
        *extra,
        cwd=cwd,
    )


def test_search_on_a_too_small_training_file_exits_2_and_creates_no_storage(tmp_path) -> None:
    bad = write_all(tmp_path / "bad", synthetic(VALIDATION_SIZE + 20, 100))
    result = _search("sqlite:///study.db", bad, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "train-images-idx3-ubyte.gz holds 5,020 images; training needs at least 5,128" in lines[0]
    assert not (tmp_path / "study.db").exists()


def test_search_with_a_label_above_nine_in_the_test_file_exits_2(tmp_path) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 20, 100)
    tensors[3][0] = 10
    result = _search("sqlite:///study.db", write_all(tmp_path / "bad", tensors), tmp_path)
    assert result.returncode == 2 and "t10k-labels-idx1-ubyte.gz has 1 label(s) above 9" in result.stderr
    assert not (tmp_path / "study.db").exists()


@pytest.fixture(scope="module")
def slice_study(data, tmp_path_factory) -> tuple[str, Path]:
    """A real study of the three iterations on a slice of MNIST (not MNIST itself, by content)."""
    folder = tmp_path_factory.mktemp("identity")
    storage = f"sqlite:///{folder / 'study.db'}"
    result = _search(storage, data, folder)
    assert result.returncode == 0, result.stderr
    return storage, folder


def test_the_study_records_the_identity_and_refuses_a_resume_on_other_data(slice_study, data, mnist_dir):
    storage, folder = slice_study
    attrs = optuna.load_study(study_name="identity", storage=storage).user_attrs
    assert attrs["dataset"] == load_mnist(data).identity.to_dict()
    assert attrs["dataset"]["name"] == "unknown"
    # the dashboard's study page names the data in the study's note
    study = optuna.load_study(study_name="identity", storage=storage)
    assert "Data: unknown (7,000 train" in get_note(study)
    assert load_mnist(data).identity.fingerprint in get_note(study)
    before = sqlite3.connect(folder / "study.db").execute("select count(*) from trials").fetchone()
    resumed = _search(storage, Path(mnist_dir), folder, "--trials", "4")
    assert resumed.returncode == 2 and "other data" in resumed.stderr, resumed.stderr
    assert sqlite3.connect(folder / "study.db").execute("select count(*) from trials").fetchone() == before


def test_report_names_the_data_and_shows_mnist_figures_only_on_mnist(slice_study, data, tmp_path):
    storage, _ = slice_study
    result = run_in_process(
        "report", "--storage", storage, "--study", "identity", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    identity = load_mnist(data).identity
    counts = "7,000 train, 5,000 validation, 2,000 pool, 500 test"
    assert f"- data: unknown ({counts}; fingerprint {identity.fingerprint}); published figures are" in md
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| iteration-")}
    assert sorted(rows) == ["iteration-1", "iteration-2", "iteration-3"]
    for row in rows.values():
        assert row.split(" | ")[6] == "-"  # the published column


@pytest.fixture(scope="module")
def slice_export(slice_study) -> Path:
    storage, folder = slice_study
    out = folder / "export"
    result = run_in_process(
        "export", "--storage", storage, "--study", "identity", "--trial", "0", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return out


def evaluate_json(export: Path, data: Path | str) -> dict:
    result = run_in_process("evaluate", "--weights", str(export), "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_evaluate_on_the_model_data_matches_and_on_other_data_says_so(slice_export, data, mnist_dir) -> None:
    same = evaluate_json(slice_export, data)
    assert same["same_data"] is True and same["matches"] is True
    other = evaluate_json(slice_export, mnist_dir)
    assert other["same_data"] is False and other["matches"] is None
    assert other["recorded_dataset"] == same["dataset"] != other["dataset"]
    text = run_in_process("evaluate", "--weights", str(slice_export), "--data", str(mnist_dir))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.strip().splitlines()
    assert len(lines) == 2 and "differs by" not in text.stdout
    assert lines[1].startswith("other data than the model's: evaluated on MNIST (60,000 train")
    assert "trained and measured on unknown (7,000 train" in lines[1]


def test_evaluate_an_export_without_a_dataset_says_the_data_could_not_be_compared(
    slice_export, data, tmp_path
):
    old = tmp_path / "old"
    shutil.copytree(slice_export, old)
    config = json.loads((old / "config.json").read_text())
    del config["dataset"]
    (old / "config.json").write_text(json.dumps(config))
    assert evaluate_json(old, data)["same_data"] is None
    text = run_in_process("evaluate", "--weights", str(old), "--data", str(data))
    assert text.returncode == 0, text.stderr
    assert (
        ": identical; the data could not be compared (config.json records no dataset fingerprint)"
        in text.stdout
    )
