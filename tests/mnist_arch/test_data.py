"""MNIST loading: the real files, the fixed validation split, and the checks on the files before use."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from mnist_arch import UsageError, load_mnist
from mnist_arch.data import MIN_POOL, MIN_TRAINING_IMAGES, VALIDATION_SIZE

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def write_idx(folder, name: str, items: torch.Tensor, magic: int, packed: bool) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in items.shape)
    raw = header + items.to(torch.uint8).numpy().tobytes()
    if packed:
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
    else:
        (folder / name).write_bytes(raw)


def synthetic(n_train: int, n_test: int, seed: int = 0) -> list[torch.Tensor]:
    """Random images and labels 0..9: training images, labels, then test images, labels."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (n_train, 28, 28), generator=gen),
        torch.randint(0, 10, (n_train,), generator=gen),
        torch.randint(0, 256, (n_test, 28, 28), generator=gen),
        torch.randint(0, 10, (n_test,), generator=gen),
    ]


def write_all(folder: Path, tensors: list[torch.Tensor], packed: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in zip(NAMES, tensors, strict=True):
        write_idx(folder, name, items, 2051 if items.dim() == 3 else 2049, packed)
    return folder


def refused(folder: Path, *needles: str) -> str:
    """load_mnist fails with one line that holds every needle."""
    with pytest.raises(UsageError) as error:
        load_mnist(folder)
    message = str(error.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("packed", [True, False])
def test_synthetic_idx_files_load_exactly(tmp_path, packed: bool) -> None:
    pool_size = MIN_POOL + 40
    train_x, train_y, test_x, test_y = synthetic(VALIDATION_SIZE + pool_size, 7)
    write_all(tmp_path, [train_x, train_y, test_x, test_y], packed)
    data = load_mnist(tmp_path, subset=30)
    assert torch.equal(data.test_images, test_x.to(torch.uint8)) and torch.equal(data.test_labels, test_y)
    assert len(data.val_labels) == VALIDATION_SIZE and len(data.train_labels) == 30
    # The validation images and the training pool are disjoint rows of the training file, in file order.
    pool = load_mnist(tmp_path)
    assert len(pool.train_labels) == pool_size
    rows = {bytes(img.numpy().tobytes()) for img in train_x.to(torch.uint8)}
    seen = {bytes(img.numpy().tobytes()) for img in torch.cat([pool.train_images, pool.val_images])}
    assert seen == rows
    assert torch.equal(data.train_images, pool.train_images[:30])


def test_real_mnist_and_its_fixed_validation_split(mnist_dir) -> None:
    first, second = load_mnist(mnist_dir), load_mnist(mnist_dir, subset=1000)
    assert (len(first.train_labels), len(first.val_labels), len(first.test_labels)) == (55000, 5000, 10000)
    assert first.test_labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.equal(first.val_images, second.val_images)  # --subset never changes validation
    assert torch.equal(first.train_images[:1000], second.train_images)
    mean = torch.cat([first.train_images, first.val_images]).float().div(255).mean().item()
    assert mean == pytest.approx(0.1307, abs=1e-4)


def test_subset_must_be_positive(mnist_dir) -> None:
    with pytest.raises(UsageError, match="--subset"):
        load_mnist(mnist_dir, subset=0)


def test_the_smallest_training_file_loads_and_one_image_less_is_refused(tmp_path) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES, 50)
    assert len(load_mnist(write_all(tmp_path / "enough", tensors)).train_labels) == MIN_POOL
    small = [tensors[0][:-1], tensors[1][:-1], *tensors[2:]]
    refused(
        write_all(tmp_path / "small", small),
        "train-images-idx3-ubyte.gz holds 5,127 images",
        f"at least {MIN_TRAINING_IMAGES:,}",
        "use a larger training file",
    )


@pytest.fixture
def mnist_names_swapped(tmp_path, mnist_dir) -> Path:
    """The real MNIST files with the train-* and t10k-* names exchanged (links, nothing copied)."""
    folder = tmp_path / "swapped"
    folder.mkdir()
    for name in NAMES:
        other = name.replace("train", "X").replace("t10k", "train").replace("X", "t10k")
        (folder / f"{other}.gz").symlink_to(Path(mnist_dir).resolve() / f"{name}.gz")
    return folder


def test_real_mnist_under_swapped_names_is_refused(mnist_names_swapped) -> None:
    refused(mnist_names_swapped, "train-images-idx3-ubyte.gz holds 10,000 images", "look swapped")


def test_small_swapped_files_are_refused(tmp_path) -> None:
    # A slice of the training set under the t10k names and a smaller one, still enough to train on,
    # under the train names.
    train_x, train_y, test_x, test_y = synthetic(MIN_TRAINING_IMAGES + 500, MIN_TRAINING_IMAGES + 10)
    refused(write_all(tmp_path, [test_x, test_y, train_x, train_y]), "look swapped")


@pytest.mark.parametrize("n_train", [300, 3000, 5000])
def test_a_training_file_too_small_beside_a_full_test_file_is_too_small_not_swapped(
    tmp_path, n_train: int
) -> None:
    # Exchanging the files would train on the test set: what is wrong is the training file's size.
    message = refused(
        write_all(tmp_path, synthetic(n_train, 10_000)), f"holds {n_train:,} images; training needs"
    )
    assert "swapped" not in message and "exchange" not in message


@pytest.mark.parametrize("n_train", [0, 300])
def test_a_small_training_file_beside_a_larger_but_small_test_file_is_too_small_not_swapped(
    tmp_path, n_train: int
) -> None:
    message = refused(
        write_all(tmp_path, synthetic(n_train, 1000)), f"holds {n_train:,} images; training needs"
    )
    assert "swapped" not in message


def test_an_empty_test_file_is_refused(tmp_path) -> None:
    refused(
        write_all(tmp_path, synthetic(MIN_TRAINING_IMAGES, 0)), "t10k-images-idx3-ubyte.gz holds no images"
    )


def test_image_files_swapped_but_not_the_labels_are_refused(tmp_path) -> None:
    train_x, train_y, test_x, test_y = synthetic(MIN_TRAINING_IMAGES + 10, 300)
    refused(write_all(tmp_path, [test_x, train_y, train_x, test_y]), "image files look swapped")


def test_the_training_images_under_the_test_names_are_refused(tmp_path) -> None:
    train_x, train_y, _, _ = synthetic(MIN_TRAINING_IMAGES + 10, 1)
    refused(
        write_all(tmp_path, [train_x, train_y, train_x, train_y]), "t10k-images-idx3-ubyte.gz is a copy of"
    )


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_more_images_than_labels_in_a_split_is_refused(tmp_path, split: str) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 10, 300)
    labels = 1 if split == "train" else 3
    tensors[labels] = tensors[labels][:-1]
    refused(write_all(tmp_path, tensors), f"{split}-labels-idx1-ubyte.gz", "images but", "labels")


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_a_label_above_nine_is_refused_in_either_file(tmp_path, split: str) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 10, 300)
    labels = tensors[1 if split == "train" else 3]
    labels[5], labels[17] = 10, 12
    refused(
        write_all(tmp_path, tensors),
        f"{split}-labels-idx1-ubyte.gz has 2 label(s) above 9 (largest 12)",
        "0..9",
    )


def test_images_of_another_size_are_refused(tmp_path) -> None:
    tensors = synthetic(MIN_TRAINING_IMAGES + 10, 300)
    tensors[2] = torch.zeros(300, 32, 32)
    refused(write_all(tmp_path, tensors), "t10k-images-idx3-ubyte.gz has items of shape (32, 32)")


@pytest.fixture
def valid(tmp_path) -> Path:
    return write_all(tmp_path / "data", synthetic(MIN_TRAINING_IMAGES + 10, 300))


def test_a_truncated_gzip_file_is_refused(valid) -> None:
    packed = valid / "train-labels-idx1-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:-100])
    refused(valid, f"{packed} is truncated", "copy the file again")


def test_a_corrupt_gzip_stream_is_refused(valid) -> None:
    packed = valid / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(packed.read_bytes())
    raw[20:40] = bytes(20)  # inside the deflate stream
    packed.write_bytes(bytes(raw))
    refused(valid, f"{packed} is not a readable gzip file")


def test_a_folder_in_place_of_a_file_is_refused(valid) -> None:
    (valid / "t10k-images-idx3-ubyte.gz").unlink()
    (valid / "t10k-images-idx3-ubyte").mkdir()
    refused(valid, "t10k-images-idx3-ubyte is a folder, not an IDX file")


@pytest.mark.parametrize("target", ["missing-file", "loop"])
def test_a_broken_link_is_refused_with_the_reason(valid, target: str) -> None:
    link = valid / "train-images-idx3-ubyte.gz"
    link.unlink()
    link.symlink_to(valid / target if target != "loop" else link)
    reason = "No such file or directory" if target != "loop" else "Too many levels of symbolic links"
    refused(valid, f"{link} cannot be read ({reason})")


@pytest.mark.unprivileged
def test_an_unreadable_file_is_refused(valid) -> None:
    locked = valid / "train-labels-idx1-ubyte.gz"
    locked.chmod(0)
    refused(valid, f"{locked} cannot be read: permission denied")


def test_a_file_given_as_the_data_folder_is_refused(valid) -> None:
    refused(valid / "train-labels-idx1-ubyte.gz", "is a file, not a folder", "--data")
