"""MNIST's pixel normalisation: the one place its mean and std live."""

from __future__ import annotations

import torch

MEAN, STD = 0.1307, 0.3081  # of MNIST's 60,000 training images, on the 0..1 scale


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), standardised with MNIST's training mean and std."""
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)
