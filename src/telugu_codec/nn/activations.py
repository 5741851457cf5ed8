"""Snake activation (Ziyin et al. 2020; used by BigVGAN and DAC)."""

from __future__ import annotations

import torch
from torch import nn


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """snake(x) = x + sin^2(alpha * x) / alpha.

    Args:
        x: (B, C, T).
        alpha: (1, C, 1), positive.
    """
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


class Snake1d(nn.Module):
    """Snake with one learnable frequency `alpha` per channel (initialised to 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)
