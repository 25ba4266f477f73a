"""Argument types and flags shared by several commands."""

from __future__ import annotations

import argparse

from search.storage import DEFAULT_STORAGE


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_study_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--study", default="mnist-arch", help="study name (default: mnist-arch)")
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
