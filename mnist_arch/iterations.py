"""The three hand-designed iterations of the seed write-up, as candidate configs.

Layer tables: 8,088 / 8,088 / 7,560 parameters. Recipes not stated in the write-up use the exercise's
usual choices (SGD momentum 0.9, batch 128, rotation +/-7 degrees, Dropout2d 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_arch.config import ArchConfig, CandidateConfig, TrainConfig


@dataclass(frozen=True)
class Iteration:
    name: str
    config: CandidateConfig
    published_test_acc: float  # best-epoch test accuracy of one run, as the write-up reports it
    published_note: str


_COMMON_ARCH = dict(block1=(8, 8, 8), block2=(12, 12, 12, 12, 12), pool_before_gap=True, dropout=0.05)

ITERATIONS: tuple[Iteration, ...] = (
    Iteration(
        "iteration-1",
        CandidateConfig(
            ArchConfig.two_blocks(transition=True, last_dropout=True, **_COMMON_ARCH),
            # "StepLR from 0.19 ... step_size 7 ... gamma 0.5", applied from the first epoch
            TrainConfig(lr=0.19, lr_step=7, lr_gamma=0.5, lr_decay_start=1),
        ),
        0.9940,
        "best test accuracy, epoch 20 of 20",
    ),
    Iteration(
        "iteration-2",
        CandidateConfig(
            ArchConfig.two_blocks(transition=True, last_dropout=True, **_COMMON_ARCH),
            TrainConfig(lr=0.04, lr_step=2, lr_gamma=0.09, lr_decay_start=8),
        ),
        0.9934,
        "best test accuracy, epoch 12 of 14",
    ),
    Iteration(
        "iteration-3",
        CandidateConfig(
            ArchConfig.two_blocks(transition=False, last_dropout=False, **_COMMON_ARCH),
            TrainConfig(lr=0.04, lr_step=2, lr_gamma=0.2, lr_decay_start=8),
        ),
        0.9946,
        "best test accuracy, epochs 11 and 14 of 14",
    ),
)

ITERATION_NAMES = tuple(it.name for it in ITERATIONS)


def get_iteration(name: str) -> Iteration:
    for iteration in ITERATIONS:
        if iteration.name == name:
            return iteration
    raise KeyError(f"unknown iteration {name!r} (known: {', '.join(ITERATION_NAMES)})")
