"""A long CPU run trains compiled (torch.compile); the compiled step trains the same model as the eager one
up to float rounding, and where compiling fails (here: a C++ compiler that does not exist) the run warns
and goes on eagerly. Both run in one fresh process with an empty compile cache of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mnist_arch.trainer import COMPILE_MIN_IMAGE_EPOCHS, compile_pays
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # compiling takes tens of seconds on two cores

SCRIPT = """
import json, warnings
import torch
import torch._inductor.config
from dataclasses import replace
from mnist_arch.config import ArchConfig
from mnist_arch.iterations import ITERATIONS
from mnist_arch.trainer import DeviceData, train
g = torch.Generator().manual_seed(0)
x, y = torch.randn(384, 1, 28, 28, generator=g), torch.randint(0, 10, (384,), generator=g)
data = DeviceData(x[:256], y[:256], x[256:320], y[256:320], x[320:], y[320:])
seed = ITERATIONS[2].config
config = replace(seed, train=replace(seed.train, batch_size=64))


def run(config, compiled):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, data, epochs=2, seed=3, compiled=compiled)
    failed = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    return result, failed


def weights_gap(a, b):
    pairs = zip(a.model.state_dict().values(), b.model.state_dict().values())
    return max((p - q).abs().max().item() for p, q in pairs if p.is_floating_point())


eager, _ = run(config, False)
compiled, failed = run(config, True)
# another architecture needs a new compile, with a C++ compiler that does not exist
torch._inductor.config.cpp.cxx = ("/nonexistent/c++",)
narrower = dict(block1=(6, 6, 6), block2=(12,) * 5, transition=False, last_dropout=False)
other = replace(config, arch=ArchConfig.two_blocks(**narrower, pool_before_gap=True, dropout=0.05))
other_eager, _ = run(other, False)
fallback, fallback_failed = run(other, True)
print(json.dumps({
    "compiled": compiled.compiled, "failed": failed,
    "losses": [[e.train_loss for e in r.history] for r in (eager, compiled)],
    "gap": weights_gap(eager, compiled),
    "fallback_compiled": fallback.compiled, "fallback_failed": fallback_failed,
    "fallback_losses": [[e.train_loss for e in r.history] for r in (other_eager, fallback)],
    "fallback_gap": weights_gap(other_eager, fallback),
}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    cache = tmp_path_factory.mktemp("inductor")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_only_long_cpu_runs_compile() -> None:
    cpu = torch.device("cpu")
    assert compile_pays(cpu, 55_000, 80) and not compile_pays(cpu, 55_000, 15)
    least = COMPILE_MIN_IMAGE_EPOCHS
    assert compile_pays(cpu, least, 1) and not compile_pays(cpu, least - 1, 1)
    assert not compile_pays(torch.device("cuda"), 55_000, 80)  # CUDA steps run as graphs instead


def test_the_compiled_step_trains_the_eager_model(trained) -> None:
    assert trained["compiled"] and not trained["failed"]
    eager, compiled = trained["losses"]
    assert compiled == pytest.approx(eager, rel=1e-3)  # float rounding of fused kernels, nothing more
    assert trained["gap"] < 1e-2


def test_a_failed_compile_trains_eagerly(trained) -> None:
    assert not trained["fallback_compiled"] and len(trained["fallback_failed"]) == 1
    eager, fallback = trained["fallback_losses"]
    assert fallback == eager and trained["fallback_gap"] == 0  # the fallback is the eager run exactly
