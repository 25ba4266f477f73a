"""What a model is and how it trains: config, builder, parameter count, MNIST, trainer.

The names below are re-exported lazily (on first use): most of these modules import torch, which takes
seconds, and the configs and errors are needed without it (the CLI's --help, reading a config file).
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "ArchConfig": "mnist_arch.config",
    "CandidateConfig": "mnist_arch.config",
    "ConfigError": "mnist_arch.config",
    "TrainConfig": "mnist_arch.config",
    "Mnist": "mnist_arch.data",
    "load_mnist": "mnist_arch.data",
    "resolve_device": "mnist_arch.device",
    "UsageError": "mnist_arch.errors",
    "ITERATION_NAMES": "mnist_arch.iterations",
    "ITERATIONS": "mnist_arch.iterations",
    "Iteration": "mnist_arch.iterations",
    "get_iteration": "mnist_arch.iterations",
    "build_model": "mnist_arch.model",
    "count_params": "mnist_arch.model",
    "describe": "mnist_arch.notation",
    "receptive_field": "mnist_arch.model",
    "summary_text": "mnist_arch.model",
    "DeviceData": "mnist_arch.trainer",
    "DivergedError": "mnist_arch.trainer",
    "EpochStats": "mnist_arch.trainer",
    "TrainingRun": "mnist_arch.trainer",
    "TrainResult": "mnist_arch.trainer",
    "train": "mnist_arch.trainer",
    "train_together": "mnist_arch.trainer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mnist_arch' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
