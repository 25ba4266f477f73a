"""The readers of a user's files read regular files only, and never more than a header or a limit says;
the test set must be held out from the training set by image content, not only by file."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from mnist_arch.data import MAX_SHARED_FRACTION, MIN_TRAINING_IMAGES, load_mnist, shared_images
from tests.helpers import REPO, run_subprocess
from tests.mnist_arch.test_data import NAMES, refused, synthetic, write_all

TIMEOUT = 60  # seconds; a reader that blocks on a FIFO would wait forever


def small_valid(folder: Path) -> Path:
    return write_all(folder, synthetic(MIN_TRAINING_IMAGES, 200))


def fifo_at(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def test_real_mnist_test_images_are_all_absent_from_its_training_images(mnist_dir) -> None:
    """The measurement behind MAX_SHARED_FRACTION: real MNIST shares no image between train and test."""
    from mnist_arch.data import _read_all

    train_x, _, test_x, _ = _read_all(mnist_dir)
    assert shared_images(train_x, test_x) == 0


def test_a_test_set_sharing_images_with_the_training_set_is_refused(tmp_path) -> None:
    train_x, train_y, test_x, test_y = synthetic(MIN_TRAINING_IMAGES, 1000)
    test_x[:50] = train_x[100:150]  # 5% of the test images are training images
    message = refused(write_all(tmp_path, [train_x, train_y, test_x, test_y]), "50 of the 1,000 images")
    assert "not held out" in message


def test_a_few_shared_images_are_accepted_as_real_data_has_them(tmp_path) -> None:
    train_x, train_y, test_x, test_y = synthetic(MIN_TRAINING_IMAGES, 1000)
    shared = int(MAX_SHARED_FRACTION * 1000)
    test_x[:shared] = train_x[:shared]
    assert len(load_mnist(write_all(tmp_path, [train_x, train_y, test_x, test_y])).test_labels) == 1000


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path) -> None:
    """A .gz whose header announces 200 images but that inflates to 256 MiB: only the announced bytes
    (plus one) are inflated, so memory stays far below the inflated size."""
    folder = small_valid(tmp_path)
    name = "t10k-images-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + (200).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with (folder / name).open("wb") as file:
        file.write(packer.compress(header))
        for _ in range(256):
            file.write(packer.compress(chunk))
        file.write(packer.flush())
    tracemalloc.start()
    try:
        refused(folder, name, "padded")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"reading the bomb took {peak >> 20} MiB"


def test_a_header_announcing_more_items_than_the_limit_is_refused(tmp_path) -> None:
    folder = small_valid(tmp_path)
    header = (2049).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + bytes(10)))
    refused(folder, "announces 4,294,967,295 items", "1,000,000")


def test_a_truncated_plain_file_is_refused_by_its_size(tmp_path) -> None:
    folder = write_all(tmp_path, synthetic(MIN_TRAINING_IMAGES, 200), packed=False)
    path = folder / NAMES[2]
    path.write_bytes(path.read_bytes()[:-7])
    refused(folder, "truncated or padded", f"expected {16 + 200 * 784}")


def _load_in_child(folder: Path) -> subprocess.CompletedProcess:
    code = "import sys\nfrom mnist_arch import load_mnist\ntry:\n    load_mnist(sys.argv[1])\n"
    code += "except Exception as e:\n    print(e)\n    sys.exit(2)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )


@pytest.mark.parametrize("packed", [True, False])
def test_a_fifo_as_an_idx_file_is_refused_at_once(tmp_path, packed: bool) -> None:
    folder = write_all(tmp_path, synthetic(MIN_TRAINING_IMAGES, 200), packed=packed)
    name = NAMES[1] + (".gz" if packed else "")
    fifo_at(folder / name)
    done = _load_in_child(folder)  # a reader that opens the FIFO blocks: TimeoutExpired fails the test
    assert done.returncode == 2
    assert "FIFO" in done.stdout and "not a regular file" in done.stdout, done.stdout


def test_a_device_as_an_idx_file_is_refused(tmp_path) -> None:
    folder = write_all(tmp_path, synthetic(MIN_TRAINING_IMAGES, 200), packed=False)
    (folder / NAMES[0]).unlink()
    (folder / NAMES[0]).symlink_to("/dev/zero")
    done = _load_in_child(folder)
    assert done.returncode == 2
    assert "character device" in done.stdout, done.stdout


def test_a_fifo_as_a_config_is_refused_at_once(tmp_path) -> None:
    fifo = fifo_at(tmp_path / "config.json")
    done = run_subprocess("train", "--config", str(fifo), "--out", str(tmp_path / "out"), timeout=TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "FIFO" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_oversized_config_is_refused(tmp_path) -> None:
    big = tmp_path / "config.json"
    big.write_text('{"arch": {}, "pad": "' + "x" * (2 << 20) + '"}')
    done = run_subprocess("train", "--config", str(big), "--out", str(tmp_path / "out"), timeout=TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "MiB" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["space", "search"])
def test_a_fifo_as_a_space_file_is_refused_at_once(tmp_path, command: str) -> None:
    fifo = fifo_at(tmp_path / "space.toml")
    args = ["--storage", f"sqlite:///{tmp_path / 'x.db'}"] if command == "search" else []
    done = run_subprocess(command, "--space", str(fifo), *args, timeout=TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "FIFO" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "x.db").exists()
