"""An export is usable without mnist-arch: model.pt2 (and model.onnx) take raw pixels, and config.json +
weights.pt rebuild the network with torch.nn alone; both reproduce `mnist-arch evaluate` exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_arch.trainer import EVAL_BATCH
from search.export.standalone import onnx_available
from tests.helpers import skip_outside_ci
from tests.results_study import assert_usage_error, mnist_dir, run_cli

# Runs in a fresh interpreter that never imports mnist_arch or search: reads the test IDX files with
# gzip/numpy, counts the correct predictions of model.pt2 and of the torch.nn rebuild, in the batches
# `evaluate` uses.
READER = r"""
import gzip, json, sys
from pathlib import Path
import numpy as np
import torch

export, data, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

def idx(name, header):
    plain, packed = data / name, data / (name + ".gz")
    raw = plain.read_bytes() if plain.exists() else gzip.decompress(packed.read_bytes())
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=header).copy())

labels = idx("t10k-labels-idx1-ubyte", 8).long()
pixels = idx("t10k-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)  # uint8, raw 0-255

def correct(model, inputs):
    with torch.no_grad():
        return sum(
            int((model(inputs[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
            for i in range(0, len(labels), batch)
        )

program = torch.export.load(export / "model.pt2").module()

config = json.loads((export / "config.json").read_text())
layers = torch.nn.Sequential(
    *(getattr(torch.nn, layer["type"])(**layer["args"]) for layer in config["model"]["layers"])
)
prefix = config["model"]["state_dict_prefix"]
state = torch.load(export / "weights.pt", weights_only=True)
layers.load_state_dict({key[len(prefix):]: value for key, value in state.items()})
layers.eval()
contract = config["input"]
normalised = (pixels.float() / 255 - contract["mean"]) / contract["std"]

try:
    program(pixels[:4].float())
    float_refused = False
except Exception:
    float_refused = True

print(json.dumps({
    "images": len(labels),
    "program": correct(program, pixels),
    "rebuilt": correct(lambda x: torch.flatten(layers(x), 1), normalised),
    # batch size 1 takes other kernels than a batch: equal up to float rounding
    "single_image_equal": bool(torch.allclose(program(pixels[:1]), program(pixels[:batch])[:1], atol=1e-5)),
    "float_refused": float_refused,
    "package_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("mnist_arch", "search")),
}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """iteration-3 trained for 1 epoch on 2,000 images (about 70 % test accuracy), exported by `train`."""
    out = tmp_path_factory.mktemp("standalone") / "it3"
    result = run_cli(
        "train", "--config", "iteration-3", "--epochs", "1", "--subset", "2000", "--device", "cpu",
        "--data", mnist_dir(), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def evaluate_count(folder: Path) -> tuple[int, int]:
    """(correct images, test images) as `mnist-arch evaluate` measures them."""
    result = run_cli("evaluate", "--weights", str(folder), "--json", "--data", mnist_dir())
    assert result.returncode == 0, result.stderr
    accuracy = json.loads(result.stdout)["test_acc"]
    images = 10_000
    return round(accuracy * images), images


def test_model_pt2_and_a_torch_only_rebuild_reproduce_evaluate_in_a_fresh_process(trained, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", READER, str(trained), mnist_dir(), str(EVAL_BATCH)],
        cwd=tmp_path,  # not the checkout: nothing of the package is importable by accident from here
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["package_imported"] == []
    correct, images = evaluate_count(trained)
    assert measured["images"] == images
    assert measured["program"] == correct, "model.pt2 differs from `mnist-arch evaluate`"
    assert measured["rebuilt"] == correct, "the torch.nn rebuild from config.json differs from evaluate"
    assert correct > 0.5 * images  # a trained model, so an unnormalised input would show
    assert measured["single_image_equal"] is True  # the batch dimension is dynamic
    assert measured["float_refused"] is True  # the program takes uint8 pixels only


def test_config_json_states_the_input_contract_and_the_programs(trained):
    data = json.loads((trained / "config.json").read_text())
    contract = data["input"]
    assert contract["shape"] == ["N", 1, 28, 28] and contract["dtype"] == "float32"
    assert contract["classes"] == 10 and "divided by 255" in contract["pixels"]
    assert (contract["mean"], contract["std"]) == (0.1307, 0.3081)
    assert data["model"]["module"] == "torch.nn.Sequential"
    assert "model.pt2" in data["standalone"]["files"]
    assert "uint8" in data["standalone"]["input"] and "normalisation is inside" in data["standalone"]["input"]
    summary = (trained / "summary.txt").read_text()
    assert "(pixels / 255 - 0.1307) / 0.3081" in summary
    # the data the run used, identified as a study records it
    assert data["dataset"]["name"] == "MNIST" and data["dataset"]["counts"]["test"] == 10_000
    assert f"Dataset: MNIST, fingerprint {data['dataset']['fingerprint']}" in summary


def test_model_onnx_gives_the_predictions_of_model_pt2(trained):
    if not onnx_available():
        skip_outside_ci("the onnx extra is not installed (pip install -e '.[onnx]'); .ci/run installs it")
    import onnx
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(trained / "model.onnx"))
    onnx.checker.check_model(model)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and not batch.dim_value  # any number of images
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=generator)
    (logits,) = ReferenceEvaluator(model).run(None, {"pixels": pixels.numpy()})
    expected = torch.export.load(trained / "model.pt2").module()(pixels)
    assert torch.equal(torch.from_numpy(logits).argmax(1), expected.argmax(1))
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)


def test_an_export_without_the_new_keys_still_loads_and_evaluates(trained, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    data = json.loads((trained / "config.json").read_text())
    for key in ("input", "model", "standalone", "dataset"):
        data.pop(key, None)
    (old / "config.json").write_text(json.dumps(data))
    (old / "weights.pt").write_bytes((trained / "weights.pt").read_bytes())
    assert evaluate_count(old) == evaluate_count(trained)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["input"].update(mean=0.5), "normalises with 0.1307"),
        (lambda d: d["input"].update(shape=[1, 28, 28]), "'input.shape'"),
        (lambda d: d["input"].update(colour="grey"), "unknown key 'input.colour'"),
        (lambda d: d["model"]["layers"].pop(), "'model.layers' does not match 'arch'"),
        (lambda d: d["standalone"].update(files="model.pt2"), "'standalone.files'"),
        (lambda d: d.update(dataset=3), "'dataset' must be"),
    ],
)
def test_evaluate_refuses_a_contract_that_does_not_match(trained, tmp_path, change, needle):
    broken = tmp_path / "broken"
    broken.mkdir()
    data = json.loads((trained / "config.json").read_text())
    change(data)
    (broken / "config.json").write_text(json.dumps(data))
    (broken / "weights.pt").write_bytes((trained / "weights.pt").read_bytes())
    assert_usage_error(run_cli("evaluate", "--weights", str(broken), "--data", mnist_dir()), needle)


def test_the_program_matches_the_model_bit_for_bit(trained):
    from mnist_arch.data import normalize
    from search.export.export import load_export

    _, model = load_export(trained, torch.device("cpu"))
    program = torch.export.load(trained / "model.pt2").module()
    images = torch.randint(
        0, 256, (300, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        assert torch.equal(program(images.unsqueeze(1)), model(normalize(images)))
