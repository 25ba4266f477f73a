"""Argument types and flags shared by several commands."""

from __future__ import annotations

import argparse
import math

from search.study.storage import DEFAULT_STORAGE

MAX_SEED = 2**32 - 1  # numpy's (and so Optuna's samplers') seed range
MAX_WORKERS = 64  # worker processes on one machine: each holds its own copy of the data and of torch
MAX_STUDY_NAME = 512  # Optuna's column for study names


def positive_int(text: str) -> int:
    return bounded_int(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    return bounded_int(text, 0, None, "an integer >= 0")


def seed_int(text: str) -> int:
    return bounded_int(text, 0, MAX_SEED, f"an integer from 0 to {MAX_SEED}")


def worker_count(text: str) -> int:
    return bounded_int(text, 1, MAX_WORKERS, f"an integer from 1 to {MAX_WORKERS}")


def bounded_int(text: str, low: int, high: int | None, what: str) -> int:
    """An integer in [low, high] (no upper bound when high is None), else an argparse error saying `what`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {shown(text)}") from None
    if value < low or (high is not None and value > high):
        digits = str(value)
        shown_value = digits if len(digits) <= 40 else shown(digits)
        raise argparse.ArgumentTypeError(f"must be {what}, got {shown_value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {shown(text)}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number (finite), got {shown(text)}")
    return value


def study_name(text: str) -> str:
    """A study name Optuna stores and a terminal shows as one line: printable, 1 to 512 characters."""
    if not text.strip() or len(text) > MAX_STUDY_NAME or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_STUDY_NAME} printable characters, not only spaces, got {shown(text)}"
        )
    return text


def shown(text: str, limit: int = 40) -> str:
    """A user's value quoted for a message: repr (control characters escaped), cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def add_study_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--study", type=study_name, default="mnist-arch", help="study name (default: mnist-arch)"
    )
    group.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"Optuna storage URL (default: {DEFAULT_STORAGE}, in this folder)",
    )


def add_data_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the four MNIST IDX files, gzipped or not "
        "(default: $MNIST_ARCH_DATA, else ./data via torchvision)",
    )
    group.add_argument(
        "--subset",
        type=positive_int,
        metavar="N",
        help="train on the first N training images only (quick runs)",
    )
    group.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
