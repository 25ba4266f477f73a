"""Which engine trains a search's trials: separate models, or fused banks."""

from __future__ import annotations

import torch

from mnist_arch.errors import UsageError
from mnist_arch.trainer import DeviceData
from search.run.capacity import AUTO_CONCURRENCY, auto_concurrency
from search.run.engine import Engine
from search.run.fused import FusedEngine
from search.run.separate import SeparateEngine
from space.space import SearchSpace

# separate: every trial its own model (on CUDA its own graph and stream); fused: trials of one batch
# size and depth after the pool train as one network with grouped convolutions.
ENGINES = ("separate", "fused")
ENGINE_CHOICES = ("auto", *ENGINES)


def resolve_engine(engine: str, space: SearchSpace, device: torch.device) -> str:
    """`auto`: fused on CUDA when the space fixes the architecture and the recipe family the fused banks
    train (space/recipe.toml), else separate; `fused` for another space is refused.

    Fused banks pay off when their members share a shape: on an H200, 32 copies of one model train
    at 9.4 model-epochs/s fused against 5.4 as separate graphs, but 64 random draws of the default
    space fuse into small or padded banks and train at 3.1 against 5.4 (BENCHMARKS.md). On the CPU
    fusing gains nothing.
    """
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}")
    if engine == "fused" and not space.fused_compatible:
        raise UsageError(
            "--engine fused trains the seed's layout with SGD + StepLR and rotation only, and this space "
            "draws other layers or recipes; use --engine separate, or fix the space as space/recipe.toml does"
        )
    if engine != "auto":
        return engine
    return "fused" if device.type == "cuda" and space.fused_compatible else "separate"


def make_engine(engine: str, space: SearchSpace, data: DeviceData, concurrency: int | None) -> Engine:
    """The engine `--engine ENGINE` means for this space and device; concurrency None is automatic."""
    name = resolve_engine(engine, space, data.train_x.device)
    if name == "fused":
        return FusedEngine(data, max_bank=concurrency or auto_concurrency(name, data.train_x.device))
    return SeparateEngine(data)


def expected_in_flight(concurrency: int | None, device: torch.device) -> int:
    """Trials a process will keep in flight: the number asked for, else the automatic cap (1 on CPU)."""
    if concurrency is not None:
        return concurrency
    return AUTO_CONCURRENCY if device.type == "cuda" else 1
