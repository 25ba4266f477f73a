"""MNIST-format data as tensors: from a local folder of IDX files (gzipped or not), or torchvision's download.

The training set is split once, with a fixed seed, into a validation split (held out, used to choose
models) and the training pool; the test set is only ever measured.

The data are checked before anything uses them; every failure is one line naming the file and the fix:

- each file: readable, a complete gzip stream when it ends in .gz, the IDX magic number of its kind,
  28x28 images, exactly as many bytes as its header announces;
- each split holds as many images as labels, and every label is a digit class 0..9;
- MNIST, Fashion-MNIST and KMNIST hold 60,000 training and 10,000 test images. Other counts are accepted
  (a slice of MNIST, for instance) when they are consistent: the training files hold at least
  `MIN_TRAINING_IMAGES` (the 5,000-image validation split plus one batch of 128 for the training pool;
  a smaller training file is refused as too small, whatever the test file holds) and no fewer images than
  the test files (else the train and test files look swapped), and at most `MAX_SHARED_FRACTION` of the
  test images appear, byte for byte, among the training images (MNIST: none of them).

`load_mnist` also computes the data's identity (`mnist_arch.dataset`): content hashes, name, counts and
pixel statistics, as `Mnist.identity`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO

import torch

from mnist_arch.dataset import ROLES, DatasetIdentity, FileDigest, build_identity, digest, idx_bytes
from mnist_arch.errors import UsageError
from mnist_arch.pixels import MEAN, STD, normalize
from mnist_arch.regular_files import file_size, open_regular, read_at_most

__all__ = ["MEAN", "STD", "normalize"]  # re-exported from mnist_arch.pixels

DATA_ENV = "MNIST_ARCH_DATA"
VALIDATION_SIZE = 5000
VALIDATION_SEED = 20240501  # fixed for every study, so validation accuracies stay comparable
MIN_POOL = 128  # one batch at the default batch size: fewer training images leave nothing to learn from
MIN_TRAINING_IMAGES = VALIDATION_SIZE + MIN_POOL
CLASSES = 10
# A stated limit on top of the header's own count: EMNIST, the largest MNIST-format set, holds 814,255.
MAX_IDX_ITEMS = 1_000_000
# Test images that may also appear, byte for byte, in the training set. Real data has a few duplicates,
# but MNIST's 10,000 test images share none with its 60,000 training images (measured by content hash);
# above 1% the test set is not held out (a slice of the training file, a merged or re-split set).
MAX_SHARED_FRACTION = 0.01
MAX_GZ_BYTES = (16 + MAX_IDX_ITEMS * 28 * 28) + (1 << 20)  # a .gz never exceeds its content by much

# name -> (IDX magic number, item shape), in ROLES order
_FILES = {
    "train-images-idx3-ubyte": (2051, (28, 28)),
    "train-labels-idx1-ubyte": (2049, ()),
    "t10k-images-idx3-ubyte": (2051, (28, 28)),
    "t10k-labels-idx1-ubyte": (2049, ()),
}
_HINT = f"pass --data DIR or set {DATA_ENV} to a folder with the four MNIST IDX files"


@dataclass
class Mnist:
    """uint8 images (N, 28, 28) and int64 labels, on one device, and the identity of the files."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    identity: DatasetIdentity | None = field(default=None, compare=False)

    def to(self, device: torch.device | str) -> Mnist:
        tensors = (getattr(self, f.name).to(device) for f in fields(self) if f.name != "identity")
        return Mnist(*tensors, identity=self.identity)


@dataclass
class _Source:
    """The four tensors as read, with what identifies them."""

    tensors: tuple[torch.Tensor, ...]  # ROLES order
    digests: dict[str, FileDigest]
    gz_md5: dict[str, str | None]  # md5 of the .gz file as found, None for a plain file


def load_mnist(data_dir: str | os.PathLike[str] | None = None, subset: int | None = None) -> Mnist:
    """Load and check the data, hold out the validation split, and keep the first `subset` training images."""
    if subset is not None and subset < 1:
        raise UsageError(f"--subset must be a positive number of images, got {subset}")
    source = _read_source(data_dir)
    train_images, train_labels, test_images, test_labels = source.tensors
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    is_val = torch.zeros(len(train_labels), dtype=torch.bool)
    is_val[order[:VALIDATION_SIZE]] = True
    pool_images, pool_labels = train_images[~is_val], train_labels[~is_val]
    identity = build_identity(
        source.digests,
        source.gz_md5,
        {
            "train": len(train_labels),
            "validation": VALIDATION_SIZE,
            "pool": len(pool_labels),
            "test": len(test_labels),
        },
        (train_labels, test_labels),
        pool_images,
        (MEAN, STD),
    )
    if subset is not None and subset > len(pool_labels):
        raise UsageError(
            f"--subset {subset:,} is more than the {len(pool_labels):,} images of the training pool "
            f"({len(train_labels):,} training images less the {VALIDATION_SIZE:,}-image validation split); "
            f"give at most {len(pool_labels):,}, or leave --subset out to train on them all"
        )
    if subset is not None:
        pool_images, pool_labels = pool_images[:subset], pool_labels[:subset]
    return Mnist(
        pool_images,
        pool_labels,
        train_images[is_val],
        train_labels[is_val],
        test_images,
        test_labels,
        identity,
    )


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """--data, else $MNIST_ARCH_DATA, else None (torchvision's ./data)."""
    chosen = data_dir or os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else None


def _read_all(data_dir: str | os.PathLike[str] | None) -> tuple[torch.Tensor, ...]:
    """The checked training images and labels, then the test images and labels."""
    return _read_source(data_dir).tensors


def _read_source(data_dir: str | os.PathLike[str] | None) -> _Source:
    folder = resolve_data_dir(data_dir)
    if folder is None:
        return _torchvision_mnist(Path("data"))
    try:
        is_folder = folder.is_dir()
    except OSError as error:
        raise UsageError(f"data folder {folder} cannot be read ({_reason(error)}); {_HINT}") from None
    if not is_folder:
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"data folder {folder} {what}; {_HINT}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UsageError(f"data folder {folder} cannot be read: permission denied; make it readable")
    tensors, digests, gz_md5 = [], {}, {}
    for role, name in zip(ROLES, _FILES, strict=True):
        path, raw, packed_md5 = _read_file(folder, name)
        tensors.append(_parse_idx(raw, name))
        digests[role], gz_md5[role] = digest(path.name, raw), packed_md5
    paths = {role: folder / digests[role].name for role in ROLES}
    _check_consistent(tuple(tensors), paths, digests)
    return _Source(tuple(tensors), digests, gz_md5)


def _read_file(folder: Path, name: str) -> tuple[Path, bytes, str | None]:
    """(the file used, its decompressed content, the md5 of the .gz file or None).

    Only a regular file is read, and never more than its IDX header announces (at most
    `MAX_IDX_ITEMS` items): a .gz that inflates to gigabytes is refused after the announced bytes."""
    plain, packed = folder / name, folder / f"{name}.gz"
    path = next((p for p in (plain, packed) if os.path.lexists(p)), None)
    if path is None:
        raise UsageError(f"{folder} has no {name} (or {name}.gz); {_HINT}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder, not an IDX file; remove or rename it; {_HINT}")
    try:
        with open_regular(path, "IDX file") as file:
            if path is plain:
                return path, _read_idx(file, name, path, file_size(file)), None
            packed_raw = read_at_most(file, MAX_GZ_BYTES)
    except PermissionError:
        raise UsageError(f"{path} cannot be read: permission denied; make it readable (chmod +r)") from None
    except OSError as error:
        raise UsageError(f"{path} cannot be read ({_reason(error)}); {_HINT}") from None
    if len(packed_raw) > MAX_GZ_BYTES:
        raise UsageError(f"{path} is over {MAX_GZ_BYTES >> 20} MiB: too large for an MNIST-format file")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed_raw)) as stream:
            content = _read_idx(stream, name, path, None)
    except EOFError:
        raise UsageError(f"{path} is truncated (the gzip stream ends early); copy the file again") from None
    except (OSError, zlib.error) as error:
        raise UsageError(f"{path} is not a readable gzip file ({_reason(error)}); {_HINT}") from None
    return path, content, hashlib.md5(packed_raw, usedforsecurity=False).hexdigest()


def _read_idx(stream: BinaryIO, name: str, path: Path, size: int | None) -> bytes:
    """The IDX file's bytes, read up to what its header announces (plus one, to see padding).

    `size` is the file's size when known (a plain file): a mismatch is refused before reading the data."""
    item_shape = _FILES[name][1]
    header_size = 4 * (2 + len(item_shape))
    header = stream.read(header_size)
    _check_header(header, name, path)
    count = int.from_bytes(header[4:8], "big")
    if count > MAX_IDX_ITEMS:
        raise UsageError(
            f"{path} announces {count:,} items, over the {MAX_IDX_ITEMS:,} an MNIST-format file may hold; "
            f"{_HINT}"
        )
    expected = header_size + count * (math.prod(item_shape) if item_shape else 1)
    if size is not None and size != expected:
        raise UsageError(f"{path} is truncated or padded: {size} bytes, expected {expected}; {_HINT}")
    body = read_at_most(stream, expected - header_size)
    actual = header_size + len(body)
    if actual > expected:
        raise UsageError(
            f"{path} is padded: it holds more than the {expected} bytes its header announces; {_HINT}"
        )
    if actual < expected:
        raise UsageError(f"{path} is truncated or padded: {actual} bytes, expected {expected}; {_HINT}")
    return header + body


def _reason(error: OSError | zlib.error) -> str:
    return (getattr(error, "strerror", None) or str(error) or type(error).__name__).rstrip(".")


def _check_header(raw: bytes, name: str, path: Path) -> None:
    """The magic number and item shape of an IDX header (the first bytes of the file)."""
    magic, item_shape = _FILES[name]
    header = 4 * (1 + 1 + len(item_shape))
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise UsageError(f"{path} is not an MNIST IDX file (wrong magic number); {_HINT}")
    dims = [int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, 2 + len(item_shape))]
    if tuple(dims[1:]) != item_shape:
        raise UsageError(f"{path} has items of shape {tuple(dims[1:])}, expected {item_shape}")


def _parse_idx(raw: bytes, name: str) -> torch.Tensor:
    """The items of a checked IDX file: uint8 images (N, 28, 28) or int64 labels (N,)."""
    item_shape = _FILES[name][1]
    header = 4 * (2 + len(item_shape))
    payload = bytearray(raw[header:])
    flat = torch.frombuffer(payload, dtype=torch.uint8) if payload else torch.empty(0, dtype=torch.uint8)
    items = flat.reshape(-1, *item_shape)
    return items if item_shape else items.long()


def _check_consistent(
    tensors: tuple[torch.Tensor, ...], paths: dict[str, Path | str], digests: dict[str, FileDigest]
) -> None:
    """Counts, splits and labels (the rules in the module docstring)."""
    train_x, train_y, test_x, test_y = (len(t) for t in tensors)
    if train_x == test_y and test_x == train_y and train_x != train_y:
        raise UsageError(
            f"{paths['train_images']} holds {train_x:,} images and {paths['test_images']} {test_x:,}, the "
            "label files the other way round: the train and test image files look swapped; rename them"
        )
    for split, n_images, n_labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        if n_images != n_labels:
            raise UsageError(
                f"{paths[f'{split}_images']} holds {n_images:,} images but {paths[f'{split}_labels']} "
                f"{n_labels:,} labels; use the image and label files of one dataset"
            )
    if test_x == 0:
        raise UsageError(f"{paths['test_images']} holds no images; {_HINT}")
    if train_x < MIN_TRAINING_IMAGES:
        raise UsageError(
            f"{paths['train_images']} holds {train_x:,} images; training needs at least "
            f"{MIN_TRAINING_IMAGES:,} (the {VALIDATION_SIZE:,}-image validation split and one batch of "
            f"{MIN_POOL}); use a larger training file"
        )
    if train_x < test_x:
        raise UsageError(
            f"{paths['train_images']} holds {train_x:,} images and {paths['test_images']} {test_x:,}: "
            "train and test files look swapped; exchange the train-* and t10k-* names "
            "(the training set is the larger one)"
        )
    if digests["test_images"].sha256 == digests["train_images"].sha256:
        raise UsageError(
            f"{paths['test_images']} is a copy of {paths['train_images']}; "
            "put the test set under the t10k-* names"
        )
    _check_held_out(tensors[0], tensors[2], paths)
    for role in ("train_labels", "test_labels"):
        labels = tensors[ROLES.index(role)]
        largest = int(labels.max())
        if largest >= CLASSES:
            count = int((labels >= CLASSES).sum())
            raise UsageError(
                f"{paths[role]} has {count:,} label(s) above {CLASSES - 1} (largest {largest}); labels must "
                f"be the digit classes 0..{CLASSES - 1}: use the labels of a 10-class MNIST-format dataset"
            )


def shared_images(train_images: torch.Tensor, test_images: torch.Tensor) -> int:
    """How many test images have a byte-identical image in the training set (by content hash)."""
    train = {_image_hash(row) for row in train_images.reshape(len(train_images), -1).numpy()}
    return sum(_image_hash(row) in train for row in test_images.reshape(len(test_images), -1).numpy())


def _image_hash(row) -> bytes:  # noqa: ANN001 - a numpy row
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()


def _check_held_out(
    train_images: torch.Tensor, test_images: torch.Tensor, paths: dict[str, Path | str]
) -> None:
    shared = shared_images(train_images, test_images)
    if shared > MAX_SHARED_FRACTION * len(test_images):
        raise UsageError(
            f"{shared:,} of the {len(test_images):,} images in {paths['test_images']} also appear in "
            f"{paths['train_images']}: the test set is not held out; use test files that share at most "
            f"{MAX_SHARED_FRACTION:.0%} of their images with the training files"
        )


def _torchvision_mnist(root: Path) -> _Source:
    from torchvision.datasets import MNIST

    try:
        train = MNIST(str(root), train=True, download=True)
        test = MNIST(str(root), train=False, download=True)
    except Exception as error:  # noqa: BLE001 - any download failure means the same thing to the user
        raise UsageError(
            f"no MNIST in ./{root} and downloading it failed ({type(error).__name__}); {_HINT}"
        ) from None
    tensors = (train.data, train.targets.long(), test.data, test.targets.long())
    # The hashes of the IDX files these tensors were read from, rebuilt from the tensors themselves.
    digests = {role: digest(name, idx_bytes(t)) for role, name, t in zip(ROLES, _FILES, tensors, strict=True)}
    raw_folder = Path(train.raw_folder)
    paths = {role: raw_folder / name for role, name in zip(ROLES, _FILES, strict=True)}
    _check_consistent(tensors, paths, digests)
    return _Source(tensors, digests, dict.fromkeys(ROLES))
