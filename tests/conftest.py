"""Shared fixtures: real MNIST from $MNIST_ARCH_DATA, the small data and space of the worker tests.

Helpers (REPO, run_cli, run_subprocess) are in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def _bypasses_permissions() -> bool:
    """Whether this process reads a file of mode 000 (root with CAP_DAC_OVERRIDE): then no permission
    refusal can be shown. Probed, not guessed from the user id: .ci/run drops the capability."""
    import tempfile

    with tempfile.NamedTemporaryFile() as probe:
        os.chmod(probe.name, 0)
        try:
            with open(probe.name, "rb"):
                return True
        except PermissionError:
            return False


BYPASSES_PERMISSIONS = _bypasses_permissions()


def pytest_configure(config) -> None:  # noqa: ANN001
    config.addinivalue_line(
        "markers",
        "unprivileged: a permission refusal that root never sees; skipped where the process bypasses "
        "file permissions, .ci/run runs these again without that capability",
    )


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    if not BYPASSES_PERMISSIONS:
        return
    skip = pytest.mark.skip(reason="this process bypasses file permissions (root): .ci/run runs it without")
    for item in items:
        if item.get_closest_marker("unprivileged"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = os.environ.get("MNIST_ARCH_DATA")
    if not folder:
        if os.environ.get("CI"):
            pytest.fail("MNIST_ARCH_DATA must point at the MNIST IDX files in CI")
        pytest.skip("set MNIST_ARCH_DATA to a folder with the MNIST IDX files to run this test")
    return Path(folder)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small slice of real MNIST as IDX files, for the worker and fault tests."""
    from tests.search_procs import small_mnist

    return small_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def space(tmp_path) -> str:
    """The worker and fault tests' small search space, as a TOML file."""
    from tests.search_procs import SMALL_SPACE

    path = tmp_path / "small.toml"
    path.write_text(SMALL_SPACE)
    return str(path)


@pytest.fixture
def deterministic_cudnn():
    """cuDNN's nondeterministic kernels alone move a run's loss by a few percent; without them a
    run is bit-reproducible, so any difference left would come from runs sharing state."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
