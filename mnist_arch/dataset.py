"""Which data a study, an export or a report was made with: the dataset identity.

`mnist_arch.data.load_mnist` computes it while it loads the four IDX files (`Mnist.identity`): one sha256
per file over its decompressed content, so a gzipped and a plain copy of the same file are the same data.
When torchvision downloads MNIST instead, the same hashes are computed over the tensors written back in
the IDX format, which gives the hashes of the files they came from. `search` records it once per study as
the study user attribute `dataset`; exports copy that dict into config.json under `dataset`; `report` and
`evaluate` read it back.

`DatasetIdentity.to_dict()` is the stored form (JSON; `DatasetIdentity.from_dict` reads it back):

    {
      "name": "MNIST",                      # "MNIST", "Fashion-MNIST", "KMNIST" or "unknown"
      "fingerprint": "89e58b52b32c839c",    # 16 hex digits over the four content hashes: equal
                                            # fingerprints mean the same four files' content
      "files": {                            # keys: train_images, train_labels, test_images, test_labels
        "train_images": {"name": "train-images-idx3-ubyte.gz",
                         "bytes": 47040016,  # decompressed size: what the sha256 is over
                         "sha256": "<64 hex digits of the decompressed content>"},
        ...
      },
      "counts": {"train": 60000, "validation": 5000, "pool": 55000, "test": 10000},
      "image_shape": [28, 28],
      "label_range": [0, 9],                # smallest and largest label over both label files
      "normalization": {
        "mean": 0.1307, "std": 0.3081,      # as used by the trainer: MNIST's published training statistics
        "measured_mean": 0.130694, "measured_std": 0.308132  # of the training pool's pixels / 255
      }
    }

A run outside a study (the `train` command) gets the same dict from `load_mnist(...).identity.to_dict()`.
`counts.pool` is the whole training pool; `--subset` is a setting of the study, not part of the data.
Compare data with `fingerprint` only (`fingerprint_of` accepts the dict, a bare fingerprint string or None).

Names: MNIST is recognised by the sha256 of its four decompressed files (`MNIST_SHA256`). Fashion-MNIST and
KMNIST are recognised only when the four files are their published `.gz` files byte for byte: by the md5 of
each `.gz` that torchvision's dataset classes list. Anything else is "unknown".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
UNKNOWN = "unknown"
MNIST = "MNIST"
# sha256 of MNIST's four decompressed IDX files, in ROLES order.
MNIST_SHA256 = (
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)
_IDX_MAGIC = {3: 2051, 1: 2049}  # tensor dimensions -> magic number of unsigned-byte IDX data


@dataclass(frozen=True)
class FileDigest:
    name: str  # the file's name as found (with .gz when gzipped)
    bytes: int  # decompressed size
    sha256: str  # of the decompressed content


@dataclass(frozen=True)
class DatasetIdentity:
    name: str
    fingerprint: str
    files: dict[str, FileDigest]  # role (ROLES) -> digest
    counts: dict[str, int]  # train, validation, pool, test
    image_shape: tuple[int, int]
    label_range: tuple[int, int]
    normalization: dict[str, float]  # mean, std (as used), measured_mean, measured_std

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_shape"], data["label_range"] = list(self.image_shape), list(self.label_range)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetIdentity:
        return cls(
            name=data["name"],
            fingerprint=data["fingerprint"],
            files={role: FileDigest(**digest) for role, digest in data["files"].items()},
            counts=dict(data["counts"]),
            image_shape=tuple(data["image_shape"]),
            label_range=tuple(data["label_range"]),
            normalization=dict(data["normalization"]),
        )

    def summary(self) -> str:
        """One line: the name, the counts and the fingerprint."""
        return describe(self.to_dict())


def describe(identity: Mapping[str, Any] | str | None) -> str:
    """One line for a stored identity (dict), a bare fingerprint or nothing."""
    if identity is None:
        return "not recorded"
    if isinstance(identity, str):
        return f"fingerprint {identity}"
    counts = identity.get("counts", {})
    sizes = ", ".join(
        f"{counts[key]:,} {key}" for key in ("train", "validation", "pool", "test") if key in counts
    )
    return f"{identity.get('name', UNKNOWN)} ({sizes}; fingerprint {identity.get('fingerprint', '?')})"


def fingerprint_of(identity: Mapping[str, Any] | str | None) -> str | None:
    """The fingerprint of a stored identity: the dict's `fingerprint`, a bare string, else None."""
    if isinstance(identity, str):
        return identity
    if isinstance(identity, Mapping) and isinstance(identity.get("fingerprint"), str):
        return identity["fingerprint"]
    return None


def name_of(identity: Mapping[str, Any] | str | None) -> str:
    """The dataset's name in a stored identity; "unknown" when it holds none."""
    if isinstance(identity, Mapping) and isinstance(identity.get("name"), str):
        return identity["name"]
    return UNKNOWN


def digest(name: str, content: bytes) -> FileDigest:
    return FileDigest(name, len(content), hashlib.sha256(content).hexdigest())


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """A uint8 image or label tensor written as the content of an IDX file (what its sha256 is over)."""
    header = b"".join(d.to_bytes(4, "big") for d in (_IDX_MAGIC[tensor.dim()], *tensor.shape))
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def fingerprint(digests: Mapping[str, FileDigest]) -> str:
    joined = ":".join(digests[role].sha256 for role in ROLES)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def recognise(digests: Mapping[str, FileDigest], gz_md5: Mapping[str, str | None]) -> str:
    """The dataset's name from its content hashes (MNIST) or its published .gz files' md5s."""
    if tuple(digests[role].sha256 for role in ROLES) == MNIST_SHA256:
        return MNIST
    if all(gz_md5.get(role) for role in ROLES):
        for name, listed in _published_gz_md5().items():
            if all(gz_md5[role] == listed.get(digests[role].name) for role in ROLES):
                return name
    return UNKNOWN


def _published_gz_md5() -> dict[str, dict[str, str]]:
    """Dataset name -> {.gz file name: md5}, as torchvision's dataset classes list them."""
    from torchvision import datasets

    return {
        name: dict(getattr(datasets, cls).resources)
        for name, cls in (("MNIST", "MNIST"), ("Fashion-MNIST", "FashionMNIST"), ("KMNIST", "KMNIST"))
    }


def pixel_statistics(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images scaled to [0, 1], exact, from a 256-bin histogram."""
    counts = torch.bincount(images.reshape(-1).to(torch.int64), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum()
    mean = (counts * values).sum() / total
    variance = (counts * (values - mean) ** 2).sum() / total
    return round(mean.item(), 6), round(variance.sqrt().item(), 6)


def build_identity(
    digests: Mapping[str, FileDigest],
    gz_md5: Mapping[str, str | None],
    counts: Mapping[str, int],
    labels: tuple[torch.Tensor, torch.Tensor],
    pool_images: torch.Tensor,
    used: tuple[float, float],
) -> DatasetIdentity:
    """The identity of checked data: `labels` are the training and test labels, `used` the (mean, std)
    the trainer standardises with."""
    measured_mean, measured_std = pixel_statistics(pool_images)
    return DatasetIdentity(
        name=recognise(digests, gz_md5),
        fingerprint=fingerprint(digests),
        files=dict(digests),
        counts=dict(counts),
        image_shape=tuple(pool_images.shape[1:]),
        label_range=(min(int(y.min()) for y in labels), max(int(y.max()) for y in labels)),
        normalization={
            "mean": used[0],
            "std": used[1],
            "measured_mean": measured_mean,
            "measured_std": measured_std,
        },
    )
