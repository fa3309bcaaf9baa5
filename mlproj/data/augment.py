"""Training-time augmentation of image batches, on the device where the batch already is.

torchvision's transforms would fit, but the wheel that matches the CPU build of torch 2.13.0 (0.28.0+cpu) comes
only from PyTorch's own index, which the machines of this project cannot reach; PyPI's torchvision 0.28.0 is
built against CUDA torch. These few batched ops draw their random parameters per image (torchvision's v2
transforms, applied to a batch tensor, draw one set for the whole batch) and cost one kernel or two per batch,
so augmentation keeps the on-device data path (no per-image Python loop, no DataLoader workers).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

OPS = ("hflip", "vflip", "crop", "rotate", "color")
SHIFT = 0.125  # crop: random translation by up to this fraction of the side (RandomCrop with padding H/8)
DEGREES = 15.0  # rotate: uniform in [-DEGREES, DEGREES]
JITTER = 0.2  # color: brightness and contrast factors uniform in [1 - JITTER, 1 + JITTER]


def augment(x: torch.Tensor, ops: list[str]) -> torch.Tensor:
    """A float batch (N, C, H, W) of pixels in [0, 1], each image transformed with its own random draw."""
    n = len(x)
    if n == 0 or not ops:
        return x
    if "hflip" in ops:
        x = torch.where(_coin(n, x.device), x.flip(-1), x)
    if "vflip" in ops:
        x = torch.where(_coin(n, x.device), x.flip(-2), x)
    if "crop" in ops or "rotate" in ops:
        x = _affine(x, shift="crop" in ops, rotate="rotate" in ops)
    if "color" in ops:
        brightness = 1 + JITTER * (2 * torch.rand(n, 1, 1, 1, device=x.device) - 1)
        contrast = 1 + JITTER * (2 * torch.rand(n, 1, 1, 1, device=x.device) - 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x * brightness - mean) * contrast + mean).clamp(0, 1)
    return x


def _coin(n: int, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) < 0.5).view(n, 1, 1, 1)


def _affine(x: torch.Tensor, shift: bool, rotate: bool) -> torch.Tensor:
    """One grid_sample for translation and rotation; what comes in from outside the image is black (0)."""
    n = len(x)
    angle = torch.zeros(n, device=x.device)
    if rotate:
        angle = (2 * torch.rand(n, device=x.device) - 1) * math.radians(DEGREES)
    move = torch.zeros(n, 2, device=x.device)
    if shift:
        # grid coordinates span [-1, 1]: a shift of SHIFT of the side is 2 * SHIFT, rounded to whole pixels
        side = torch.tensor([x.shape[-1], x.shape[-2]], device=x.device, dtype=x.dtype)
        pixels = torch.round((2 * torch.rand(n, 2, device=x.device) - 1) * SHIFT * side)
        move = 2 * pixels / side
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
