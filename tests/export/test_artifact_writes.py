"""A trial's files are written whole or not at all: a real write failure (RLIMIT_FSIZE makes the kernel
refuse to grow a file past the limit with EFBIG, as a full disk refuses with ENOSPC) leaves no truncated
artifact, and the search gets one line instead of an OSError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

CHILD = r"""
import io, json, resource, sys
from pathlib import Path

import optuna
from mnist_arch.errors import UsageError
from mnist_arch.iterations import get_iteration
from mnist_arch.model import build_model
from mnist_arch.trainer import EpochStats, TrainResult
from search.export.artifacts import open_artifact_store, publish_trial

folder = Path(sys.argv[1])
store = open_artifact_store(folder, create=True)
config = get_iteration("iteration-3").config
model = build_model(config.arch)
import search.results.plots  # imported before the limit: matplotlib writes caches on import
study = optuna.create_study()  # in memory: only the artifacts touch the disk
trial = study.ask()
result = TrainResult.__new__(TrainResult)
result.model, result.history = model, [EpochStats(1, 0.0, 0.0, 0.5, 0.5, 0.0)]
limit = int(sys.argv[2])
if sys.argv[3] == "store":  # the store alone: a 1 MiB artifact over the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        store.write("big", io.BytesIO(bytes(1 << 20)))
    except OSError as error:
        print(json.dumps({"error": type(error).__name__, "errno": error.errno}))
    sys.exit(0)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    publish_trial(trial, config, result, store)
except UsageError as error:
    print(json.dumps({"usage": str(error)}))
"""


def child(folder: Path, limit: int, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(limit), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_write_over_the_limit_leaves_no_file(tmp_path) -> None:
    outcome = child(tmp_path / "artifacts", 64 << 10, "store")
    assert outcome["error"] in ("OSError", "FileTooLargeError") or outcome["errno"] == 27  # EFBIG
    assert list((tmp_path / "artifacts").iterdir()) == []  # neither "big" truncated nor a temporary


def test_publishing_a_trial_on_a_full_disk_is_one_line_and_leaves_only_whole_files(tmp_path) -> None:
    folder = tmp_path / "artifacts"
    outcome = child(folder, 8 << 10, "publish")
    message = outcome["usage"]
    assert "\n" not in message and "cannot write trial 0's files" in message and "File too large" in message
    for file in folder.iterdir():  # whatever was written before the failure is whole: no temporaries
        assert not file.name.startswith("."), file.name
