"""Standalone programs of a trained model: model.pt2 (torch.export) and, with the `onnx` extra, model.onnx.

Both take raw pixels and do the normalisation themselves, so nothing outside the file is needed to
use them: input uint8 (N, 1, 28, 28) grey values 0-255 (as stored in the MNIST IDX files and in
greyscale PNGs), any batch size N; output float32 logits (N, classes), the digit is their argmax.
uint8 rather than float makes the contract checkable: a float tensor (already scaled to 0-1, or
already normalised) is refused by the program's input guard instead of giving wrong answers.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mnist_arch.data import MEAN, STD
from mnist_arch.model import INPUT_SIDE

PT2 = "model.pt2"
ONNX = "model.onnx"
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"
INPUT_DTYPE = "uint8"
INPUT_SHAPE = ("N", 1, INPUT_SIDE, INPUT_SIDE)
ONNX_MISSING = "not written: install the onnx extra (pip install 'mnist-arch[onnx]') to get it"


class RawPixelModel(nn.Module):
    """`model` behind the trainer's normalisation: uint8 pixels (N, 1, 28, 28) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # The same operations, in the same order, as mnist_arch.data.normalize: bit-identical inputs.
        return self.model((pixels.float() / 255.0 - MEAN) / STD)


@dataclass(frozen=True)
class Programs:
    files: dict[str, bytes]  # file name -> content
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why it was not written

    def description(self) -> dict[str, object]:
        """What config.json says about the programs."""
        return {
            "input": f"{INPUT_NAME}: {INPUT_DTYPE} {list(INPUT_SHAPE)}, raw grey values 0-255, any batch "
            "size N; the normalisation is inside the program",
            "output": f"{OUTPUT_NAME}: float32 [N, classes]; the predicted digit is the argmax",
            "files": sorted(self.files),
            "skipped": dict(self.skipped),
        }


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def build_programs(model: nn.Module) -> Programs:
    """model.pt2, and model.onnx when onnx and onnxscript are installed, of an eval-mode copy of `model`."""
    wrapped = RawPixelModel(model).cpu().eval()
    example = torch.zeros((2, 1, INPUT_SIDE, INPUT_SIDE), dtype=torch.uint8)
    dynamic = {INPUT_NAME: {0: torch.export.Dim("batch")}}
    with torch.no_grad():
        program = torch.export.export(wrapped, (example,), dynamic_shapes=dynamic)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    files = {PT2: buffer.getvalue()}
    if not onnx_available():
        return Programs(files, {ONNX: ONNX_MISSING})
    files[ONNX] = _onnx_bytes(wrapped, example)
    return Programs(files)


def _onnx_bytes(wrapped: nn.Module, example: torch.Tensor) -> bytes:
    # The exporter reports its progress on stdout and warns about its own internals: keep both quiet.
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
        tempfile.TemporaryDirectory() as tmp,
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: "batch"}},
            verbose=False,
        )
        path = Path(tmp) / ONNX
        program.save(str(path))
        return path.read_bytes()
