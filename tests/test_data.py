"""MNIST loading: the real files, the fixed validation split, and synthetic IDX files."""

from __future__ import annotations

import gzip

import pytest
import torch

from mnist_arch import UsageError, load_mnist
from mnist_arch.data import VALIDATION_SIZE


def write_idx(folder, name: str, items: torch.Tensor, magic: int, packed: bool) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in items.shape)
    raw = header + items.to(torch.uint8).numpy().tobytes()
    if packed:
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
    else:
        (folder / name).write_bytes(raw)


@pytest.mark.parametrize("packed", [True, False])
def test_synthetic_idx_files_load_exactly(tmp_path, packed: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 256, (VALIDATION_SIZE + 40, 28, 28), generator=gen)
    train_y = torch.randint(0, 10, (VALIDATION_SIZE + 40,), generator=gen)
    test_x = torch.randint(0, 256, (7, 28, 28), generator=gen)
    test_y = torch.randint(0, 10, (7,), generator=gen)
    write_idx(tmp_path, "train-images-idx3-ubyte", train_x, 2051, packed)
    write_idx(tmp_path, "train-labels-idx1-ubyte", train_y, 2049, packed)
    write_idx(tmp_path, "t10k-images-idx3-ubyte", test_x, 2051, packed)
    write_idx(tmp_path, "t10k-labels-idx1-ubyte", test_y, 2049, packed)
    data = load_mnist(tmp_path, subset=30)
    assert torch.equal(data.test_images, test_x.to(torch.uint8)) and torch.equal(data.test_labels, test_y)
    assert len(data.val_labels) == VALIDATION_SIZE and len(data.train_labels) == 30
    # The validation images and the training pool are disjoint rows of the training file, in file order.
    pool = load_mnist(tmp_path)
    assert len(pool.train_labels) == 40
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
