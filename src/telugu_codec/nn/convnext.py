"""ConvNeXt blocks for 1-D sequences (Liu et al. 2022; as used by Vocos, Siuzdak 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of (B, C, T)."""
    return norm(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> MLP (GELU) -> layer scale, residual (ConvNeXt, Vocos).

    With `causal`, the depthwise conv is padded `kernel_size - 1` on the left only, so output
    frame t depends on no input frame after t (the LayerNorm and the MLP are per frame).

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self,
        dim: int,
        intermediate_dim: int,
        kernel_size: int,
        layer_scale: float,
        causal: bool = False,
    ):
        super().__init__()
        self.left = kernel_size - 1 if causal else 0
        padding = 0 if causal else kernel_size // 2
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x, (self.left, 0)) if self.left else x
        h = self.dwconv(h).transpose(1, 2)  # (B, T, C)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class ConvNeXtStack(nn.Module):
    """LayerNorm -> `layers` ConvNeXt blocks (layer scale 1 / layers) -> LayerNorm.

    Shape: (B, C, T) -> (B, C, T); causal blocks with `causal`.
    """

    def __init__(
        self, dim: int, intermediate_dim: int, kernel_size: int, layers: int, causal: bool = False
    ):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, kernel_size, 1.0 / max(1, layers), causal)
            for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = channel_norm(self.norm_in, x)
        for block in self.blocks:
            h = block(h)
        return channel_norm(self.norm_out, h)
