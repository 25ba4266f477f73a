"""MNIST as tensors: from a local folder of IDX files (gzipped or not), or torchvision's download.

The training set is split once, with a fixed seed, into a validation split (held out, used to choose
models) and the training pool; the test set is only ever measured.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_arch.errors import UsageError

DATA_ENV = "MNIST_ARCH_DATA"
VALIDATION_SIZE = 5000
VALIDATION_SEED = 20240501  # fixed for every study, so validation accuracies stay comparable
MEAN, STD = 0.1307, 0.3081

# name -> (IDX magic number, item shape)
_FILES = {
    "train-images-idx3-ubyte": (2051, (28, 28)),
    "train-labels-idx1-ubyte": (2049, ()),
    "t10k-images-idx3-ubyte": (2051, (28, 28)),
    "t10k-labels-idx1-ubyte": (2049, ()),
}
_HINT = f"pass --data DIR or set {DATA_ENV} to a folder with the four MNIST IDX files"


@dataclass
class Mnist:
    """uint8 images (N, 28, 28) and int64 labels, on one device."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def to(self, device: torch.device | str) -> Mnist:
        return Mnist(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))


def load_mnist(data_dir: str | os.PathLike[str] | None = None, subset: int | None = None) -> Mnist:
    """Load MNIST, hold out the validation split, and keep the first `subset` training images."""
    train_images, train_labels, test_images, test_labels = _read_all(data_dir)
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    is_val = torch.zeros(len(train_labels), dtype=torch.bool)
    is_val[order[:VALIDATION_SIZE]] = True
    pool_images, pool_labels = train_images[~is_val], train_labels[~is_val]
    if subset is not None:
        if subset < 1:
            raise UsageError(f"--subset must be a positive number of images, got {subset}")
        pool_images, pool_labels = pool_images[:subset], pool_labels[:subset]
    return Mnist(
        pool_images, pool_labels, train_images[is_val], train_labels[is_val], test_images, test_labels
    )


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """--data, else $MNIST_ARCH_DATA, else None (torchvision's ./data)."""
    chosen = data_dir or os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else None


def _read_all(data_dir: str | os.PathLike[str] | None) -> tuple[torch.Tensor, ...]:
    folder = resolve_data_dir(data_dir)
    if folder is None:
        return _torchvision_mnist(Path("data"))
    if not folder.is_dir():
        raise UsageError(f"data folder {folder} does not exist; {_HINT}")
    tensors = tuple(_read_idx(folder, name) for name in _FILES)
    for images, labels, split in ((tensors[0], tensors[1], "train"), (tensors[2], tensors[3], "t10k")):
        if len(images) != len(labels) or len(labels) == 0:
            raise UsageError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels; {_HINT}")
    return tensors


def _read_idx(folder: Path, name: str) -> torch.Tensor:
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    plain, packed = folder / name, folder / f"{name}.gz"
    if plain.is_file():
        raw, path = plain.read_bytes(), plain
    elif packed.is_file():
        path = packed
        try:
            raw = gzip.decompress(packed.read_bytes())
        except (OSError, EOFError) as error:
            raise UsageError(f"{packed} is not a readable gzip file ({error}); {_HINT}") from None
    else:
        raise UsageError(f"{folder} has no {name} (or {name}.gz); {_HINT}")
    _check_idx(raw, name, path)
    # torchvision's reader takes a path, not bytes: hand it the checked, decompressed file.
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp) / name
        unpacked.write_bytes(raw)
        tensor = read_sn3_pascalvincent_tensor(str(unpacked))
    return tensor if _FILES[name][1] else tensor.long()


def _check_idx(raw: bytes, name: str, path: Path) -> None:
    magic, item_shape = _FILES[name]
    header = 4 * (1 + 1 + len(item_shape))
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise UsageError(f"{path} is not an MNIST IDX file (wrong magic number); {_HINT}")
    dims = [int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, 2 + len(item_shape))]
    if tuple(dims[1:]) != item_shape:
        raise UsageError(f"{path} has items of shape {tuple(dims[1:])}, expected {item_shape}")
    expected = header + dims[0] * (item_shape[0] * item_shape[1] if item_shape else 1)
    if len(raw) != expected:
        raise UsageError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}; {_HINT}")


def _torchvision_mnist(root: Path) -> tuple[torch.Tensor, ...]:
    from torchvision.datasets import MNIST

    try:
        train = MNIST(str(root), train=True, download=True)
        test = MNIST(str(root), train=False, download=True)
    except Exception as error:  # noqa: BLE001 - any download failure means the same thing to the user
        raise UsageError(
            f"no MNIST in ./{root} and downloading it failed ({type(error).__name__}); {_HINT}"
        ) from None
    return train.data, train.targets.long(), test.data, test.targets.long()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), standardised with MNIST's training mean and std."""
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)
