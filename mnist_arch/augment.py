"""Per-sample random rotation of a whole batch on its device (no PIL, no DataLoader)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnist_arch.data import MEAN, STD

BACKGROUND = -MEAN / STD  # a black pixel after normalisation: what rotation uncovers


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate normalised images (N, 1, H, W) by per-sample `degrees` (N,), bilinear, black corners."""
    radians = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros; shift so that zero is the background, then shift back.
    shifted = F.grid_sample(images - BACKGROUND, grid, mode="bilinear", align_corners=False)
    return shifted + BACKGROUND
