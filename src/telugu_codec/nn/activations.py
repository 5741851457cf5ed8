"""Snake activation (Ziyin et al. 2020; used by BigVGAN and DAC)."""

from __future__ import annotations

import torch
from torch import nn


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """snake(x) = x + sin^2(alpha * x) / alpha.

    Without autograd (inference) the same operations run in place on one buffer: bit-identical
    results, one allocation instead of five, 1.2x or more faster on CPU. The `sin` itself is
    about two thirds of what is left, so the cheapest Snake is one that is not computed: keep
    the number of channels x samples per second at high frame rates small.

    Args:
        x: (B, C, T).
        alpha: (1, C, 1), positive.
    """
    inv_alpha = (alpha + 1e-9).reciprocal()
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        return x + inv_alpha * torch.sin(alpha * x).pow(2)
    s = torch.mul(alpha, x)  # (B, C, T), the only new buffer
    s.sin_().pow_(2).mul_(inv_alpha)
    return s.add_(x)


class Snake1d(nn.Module):
    """Snake with one learnable frequency `alpha` per channel (initialised to 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)
