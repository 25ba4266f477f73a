"""Per-sample random augmentation of a whole batch on its device (no PIL, no DataLoader)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnist_arch.config import TrainConfig
from mnist_arch.pixels import MEAN, STD

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


# Columns of a run's per-image augmentation draw: rotation (degrees), zoom factor, shift x and y (shares
# of the side), contrast factor and brightness shift (0..1 pixel scale).
AUG_COLUMNS = 6


def draw_augmentation(recipe: TrainConfig, angles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image parameters (n, AUG_COLUMNS) for an epoch, from the run's own generator.

    `angles` are the epoch's rotation draws (drawn first, as a rotation-only run draws them); images
    outside the affine share keep angle 0, zoom 1 and no shift, those outside the colour share keep
    their pixels.
    """
    n, device = len(angles), angles.device
    u = torch.rand(n, 6, generator=generator, device=device)
    affine = (u[:, 0] < recipe.affine_p).float()
    color = (u[:, 1] < recipe.color_p).float()
    signed = u[:, 2:] * 2 - 1
    return torch.stack(
        [
            angles * affine,
            1 + signed[:, 0] * recipe.scale * affine,
            signed[:, 1] * recipe.translate * affine,
            signed[:, 2] * recipe.translate * affine,
            1 + signed[:, 3] * recipe.contrast * color,
            torch.rand(n, generator=generator, device=device).mul_(2).sub_(1) * recipe.brightness * color,
        ],
        1,
    )


def augment(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Rotate, zoom and shift normalised images in one bilinear resample, then brightness/contrast."""
    radians = params[:, 0] * (math.pi / 180.0)
    zoom = params[:, 1]
    cos, sin = torch.cos(radians) * zoom, torch.sin(radians) * zoom
    # affine_grid's coordinates span [-1, 1]: a shift of s of the side is 2s there.
    theta = torch.stack(
        [torch.stack([cos, -sin, 2 * params[:, 2]], 1), torch.stack([sin, cos, 2 * params[:, 3]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images - BACKGROUND, grid, mode="bilinear", align_corners=False) + BACKGROUND
    pixels = moved * STD + MEAN
    pixels = (pixels * params[:, 4, None, None, None] + params[:, 5, None, None, None]).clamp_(0, 1)
    return (pixels - MEAN) / STD
