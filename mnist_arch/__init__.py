"""What a model is and how it trains: config, builder, parameter count, MNIST, trainer."""

from mnist_arch.config import ArchConfig, CandidateConfig, ConfigError, TrainConfig
from mnist_arch.data import Mnist, load_mnist
from mnist_arch.device import resolve_device
from mnist_arch.errors import UsageError
from mnist_arch.iterations import ITERATION_NAMES, ITERATIONS, Iteration, get_iteration
from mnist_arch.model import build_model, count_params, describe, receptive_field, summary_text
from mnist_arch.trainer import (
    DeviceData,
    DivergedError,
    EpochStats,
    TrainingRun,
    TrainResult,
    train,
    train_together,
)

__all__ = [
    "ArchConfig",
    "CandidateConfig",
    "ConfigError",
    "DeviceData",
    "DivergedError",
    "EpochStats",
    "ITERATIONS",
    "ITERATION_NAMES",
    "Iteration",
    "Mnist",
    "TrainConfig",
    "TrainResult",
    "TrainingRun",
    "UsageError",
    "build_model",
    "count_params",
    "describe",
    "get_iteration",
    "load_mnist",
    "receptive_field",
    "resolve_device",
    "summary_text",
    "train",
    "train_together",
]
